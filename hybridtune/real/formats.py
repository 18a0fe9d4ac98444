"""Readers of real transcript formats: each yields `RawSession`s (speaker-labelled turns), streaming.

Input: files (AnnoMI CSV, generic CSV, speaker-labelled text, WebVTT/SRT captions, JSON/JSONL
chat, ESConv JSON). Output: `RawSession`s in file order. A file that cannot be read raises
`BadInput(line, reason)`, which the stage turns into a quarantine entry and goes on.

    for raw in read_file(Path("x.vtt"), cfg.real): ...
"""
from __future__ import annotations

import csv
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .config import RealConfig

FORMATS = ("annomi", "counselchat", "csv", "text", "vtt", "srt", "jsonl", "json", "esconv")
SUFFIXES = {".csv": "csv", ".tsv": "csv", ".txt": "text", ".md": "text", ".vtt": "vtt", ".srt": "srt",
            ".jsonl": "jsonl", ".json": "json"}

COUNSELOR_LABELS = {"therapist", "t", "counselor", "counsellor", "th", "doctor", "dr", "clinician", "interviewer",
                    "coach", "helper", "supporter", "psychologist", "psychiatrist", "assistant", "sys", "system_counselor",
                    "practitioner", "provider", "mi practitioner", "nurse", "cl", "co", "psychotherapist"}
CLIENT_LABELS = {"client", "patient", "p", "pt", "cl", "user", "usr", "seeker", "member", "caller",
                 "participant", "pa", "interviewee", "customer"}
CLIENT_LABELS -= {"cl"}  # 'CL' is ambiguous (client vs clinician): never guessed


class BadInput(Exception):
    """A file that cannot be used: `line` (1-based, or None) and a reason that says what to do."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass
class RawTurn:
    speaker: str              # label as written ('' when unknown)
    text: str
    role: str | None = None   # 'assistant' (counselor) | 'user' (client) | None (to attribute)
    line: int | None = None
    start_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawSession:
    key: str                  # id within the file (transcript id, index...)
    file: str
    format: str
    turns: list[RawTurn]
    meta: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


def label_role(label: str) -> str | None:
    """'Therapist', 'T', 'Dr. Smith', 'Patient'... -> assistant / user / None."""
    s = re.sub(r"[^a-z ]", "", label.lower().replace(".", " ")).strip()
    s = re.sub(r"\s+\d*$", "", s)
    if not s:
        return None
    if s in COUNSELOR_LABELS or s.split()[0] in {"dr", "doctor", "therapist", "counselor", "counsellor"}:
        return "assistant"
    if s in CLIENT_LABELS or s.split()[0] in {"client", "patient"}:
        return "user"
    return None


def decode(path: Path) -> str:
    """File text as UTF-8; empty, binary and wrongly encoded files raise BadInput with the line."""
    data = path.read_bytes()
    if not data.strip():
        raise BadInput("empty file; remove it or add a transcript")
    if b"\x00" in data[:8192]:
        raise BadInput("binary file (NUL bytes), not a transcript; remove it from the inputs")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BadInput(f"not valid UTF-8 (byte 0x{data[e.start]:02x}); re-save the file as UTF-8", line) from None


def detect(path: Path, text: str, forced: str = "auto") -> str:
    if forced != "auto":
        assert forced in FORMATS, f"format {forced!r}: use one of {FORMATS}"
        return forced
    fmt = SUFFIXES.get(path.suffix.lower())
    head = text.lstrip()[:2000]
    if head.startswith("WEBVTT"):
        return "vtt"
    if fmt == "csv":
        first = head.splitlines()[0].lower() if head else ""
        if all(c in first for c in ("questionid", "questiontext", "answertext")):
            return "counselchat"
        return "annomi" if all(c in first for c in ("transcript_id", "interlocutor", "utterance_text")) else "csv"
    if fmt == "json":
        return "esconv" if re.search(r'"dialog"\s*:', head) else "json"
    if fmt is None:
        if re.match(r"\d+\s*\n\d\d:\d\d:\d\d,\d{3}\s*-->", head):
            return "srt"
        if head.startswith(("{", "[")):
            return "jsonl" if "\n{" in head else "json"
        return "text"
    return fmt


# -- CSV ---------------------------------------------------------------------
def _csv_rows(text: str, required: list[str]) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    cols = reader.fieldnames or []
    missing = [c for c in required if c not in cols]
    if missing:
        raise BadInput(f"CSV missing column(s) {missing} (has {cols[:8]}); set real.csv.* to map your columns", 1)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as e:
        raise BadInput(f"malformed CSV ({e}); fix the quoting there", reader.line_num) from None


def read_csv(text: str, file: str, fmt: str, cfg: RealConfig) -> Iterator[RawSession]:
    if fmt == "annomi":
        sid, spk, txt, order = "transcript_id", "interlocutor", "utterance_text", "utterance_id"
        extra = ("topic", "mi_quality", "video_title")
    else:
        m = cfg.csv
        sid, spk, txt, order, extra = m.session, m.speaker, m.text, m.order, ()
    rows = _csv_rows(text, [sid, spk, txt])
    # rows of a transcript are contiguous in these exports: group without holding the file
    for key, group in itertools.groupby(rows, key=lambda r: r[1][sid]):
        group = list(group)
        if order:
            group.sort(key=lambda r: _num(r[1].get(order)))
        turns = [RawTurn(speaker=r[spk] or "", role=label_role(r[spk] or ""), text=r[txt] or "", line=n,
                         meta={"timestamp": r.get("timestamp")} if r.get("timestamp") else {})
                 for n, r in group]
        meta = {k: group[0][1][k] for k in extra if group[0][1].get(k)}
        yield RawSession(key=str(key), file=file, format=fmt, turns=turns, meta=meta, line=group[0][0])


def read_counselchat(text: str, file: str) -> Iterator[RawSession]:
    """CounselChat: one row per therapist answer -> a two-turn session (question, answer)."""
    for n, r in _csv_rows(text, ["questionID", "questionTitle", "questionText", "answerText"]):
        question = " ".join(x.strip() for x in (r["questionTitle"], r["questionText"]) if x and x.strip())
        turns = [RawTurn(speaker="client", role="user", text=question, line=n),
                 RawTurn(speaker="therapist", role="assistant", text=r["answerText"] or "", line=n)]
        meta = {k: r[k] for k in ("topic", "upvotes", "split") if r.get(k)}
        yield RawSession(key=f"{r['questionID']}:{r.get('') or n}", file=file, format="counselchat", turns=turns,
                         meta=meta, line=n)


def _num(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return 0.0


# -- speaker-labelled text ---------------------------------------------------
LABEL_RE = re.compile(r"^\s*(?:\*\*)?(?P<label>(?:Dr\.?\s+)?[A-Za-z][\w.' -]{0,24}?)(?:\*\*)?\s*(?:\(\d[\d:.]*\))?\s*:\s*(?P<text>.*)$")


def read_text(text: str, file: str) -> Iterator[RawSession]:
    turns: list[RawTurn] = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.strip().startswith("#"):
            continue
        m = LABEL_RE.match(line)
        if m and len(m.group("label").split()) <= 3:
            label = m.group("label").strip()
            turns.append(RawTurn(speaker=label, role=label_role(label), text=m.group("text"), line=n))
        elif turns:
            turns[-1].text += " " + line.strip()  # a wrapped line continues the turn
        else:
            turns.append(RawTurn(speaker="", text=line.strip(), line=n))
    labelled = [t for t in turns if t.speaker]
    if len(labelled) < max(2, len(turns) // 2):
        raise BadInput("no speaker labels found (expected lines like 'Therapist: ...' / 'Client: ...'); "
                       "label the speakers or use a caption/CSV format", 1)
    meta = _attribute_names(turns)
    yield RawSession(key="0", file=file, format="text", turns=turns, line=1, meta=meta)


def _attribute_names(turns: list[RawTurn]) -> dict:
    """Labels that are names ('Anna:', 'Ben:'): the one whose turns sound most like a counselor is the counselor."""
    from .captions import counselor_score

    unknown = sorted({t.speaker for t in turns if t.speaker and t.role is None})
    known = {t.role for t in turns if t.role}
    if not unknown or len(unknown) > 2:
        return {}
    score = {lab: sum(counselor_score(t.text) for t in turns if t.speaker == lab) for lab in unknown}
    if len(unknown) == 1:
        roles = {unknown[0]: "user" if "assistant" in known else "assistant" if "user" in known else
                 ("assistant" if score[unknown[0]] > 0 else "user")}
    else:
        c = max(unknown, key=score.get)
        roles = {lab: "assistant" if lab == c else "user" for lab in unknown}
    for t in turns:
        if t.role is None and t.speaker in roles:
            t.role = roles[t.speaker]
    margin = abs(score[unknown[0]] - score.get(unknown[-1], 0)) if len(unknown) == 2 else abs(score[unknown[0]])
    return {"attribution": {"method": "names+cues", "confidence": round(1 / (1 + 2.718 ** (-margin / 2)), 3)}}


# -- JSON chat / ESConv --------------------------------------------------------
ROLE_NAMES = {"user": "user", "client": "user", "patient": "user", "human": "user", "seeker": "user", "usr": "user",
              "assistant": "assistant", "counselor": "assistant", "counsellor": "assistant", "therapist": "assistant",
              "gpt": "assistant", "bot": "assistant", "supporter": "assistant", "sys": "assistant", "system": "system"}


def _chat_session(obj: Any, file: str, key: str, line: int | None, fmt: str) -> RawSession:
    if isinstance(obj, list):
        obj = {"messages": obj}
    msgs = obj.get("messages") or obj.get("conversation") or obj.get("conversations") if isinstance(obj, dict) else None
    if not isinstance(msgs, list) or not msgs:
        raise BadInput("expected an object with a non-empty 'messages' list of {role, content}", line)
    turns = []
    for m in msgs:
        if not isinstance(m, dict):
            raise BadInput("each message must be an object {role, content}", line)
        who = str(m.get("role") or m.get("from") or m.get("speaker") or "")
        content = m.get("content", m.get("value", m.get("text")))
        if not isinstance(content, str):
            raise BadInput(f"message without text content (role {who!r})", line)
        role = ROLE_NAMES.get(who.lower(), label_role(who))
        if role == "system":
            continue
        turns.append(RawTurn(speaker=who, role=role, text=content, line=line))
    meta = {k: v for k, v in obj.items() if k not in ("messages", "conversation", "conversations") and isinstance(v, str | int | float)}
    return RawSession(key=str(obj.get("id", key)), file=file, format=fmt, turns=turns, meta=meta, line=line)


def read_jsonl(text: str, file: str) -> Iterator[RawSession]:
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise BadInput(f"invalid JSON ({e.msg}, column {e.colno}); fix or remove that line", n) from None
        yield _chat_session(obj, file, str(n), n, "jsonl")


def _load_json(text: str) -> Any:
    """A JSON document, or a list of JSON lines (ESConv's published splits are JSONL named .json)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if e.msg != "Extra data":
            raise BadInput(f"invalid or truncated JSON ({e.msg}, column {e.colno}); fix the file", e.lineno) from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise BadInput(f"invalid JSON line ({e.msg}, column {e.colno}); fix or remove it", n) from None
    return out


def read_json(text: str, file: str) -> Iterator[RawSession]:
    data = _load_json(text)
    items = data if isinstance(data, list) and data and isinstance(data[0], dict) and "role" not in data[0] else [data]
    for i, obj in enumerate(items):
        yield _chat_session(obj, file, str(i), None, "json")


ESCONV_ROLE = {"usr": "user", "seeker": "user", "speaker": "user", "sys": "assistant", "supporter": "assistant",
               "listener": "assistant"}


def read_esconv(text: str, file: str) -> Iterator[RawSession]:
    """ESConv: a list of {situation, emotion_type, problem_type, dialog: [{speaker, text|content, strategy}]}."""
    data = _load_json(text)
    if not isinstance(data, list):
        raise BadInput("ESConv: expected a JSON list of conversations", 1)
    for i, conv in enumerate(data):
        if not isinstance(conv, dict) or not isinstance(conv.get("dialog"), list):
            raise BadInput(f"ESConv: conversation {i} has no 'dialog' list", None)
        turns = []
        for d in conv["dialog"]:
            ann = d.get("annotation") or {}
            strategy = d.get("strategy") or ann.get("strategy")
            turns.append(RawTurn(speaker=str(d.get("speaker", "")), role=ESCONV_ROLE.get(str(d.get("speaker", "")).lower()),
                                 text=str(d.get("text", d.get("content", ""))),
                                 meta={"strategy": strategy} if strategy else {}))
        meta = {k: conv[k] for k in ("emotion_type", "problem_type", "experience_type") if k in conv}
        yield RawSession(key=str(i), file=file, format="esconv", turns=turns, meta=meta)


def read_file(path: Path, cfg: RealConfig, forced: str | None = None) -> Iterator[RawSession]:
    """All sessions of one file. Raises BadInput for an unusable file (before or while reading)."""
    from .captions import read_srt, read_vtt

    text = decode(path)
    fmt = detect(path, text, forced or cfg.format)
    file = str(path)
    if fmt in ("annomi", "csv"):
        yield from read_csv(text, file, fmt, cfg)
    elif fmt == "counselchat":
        yield from read_counselchat(text, file)
    elif fmt == "text":
        yield from read_text(text, file)
    elif fmt == "vtt":
        yield read_vtt(text, file, cfg.attribution)
    elif fmt == "srt":
        yield read_srt(text, file, cfg.attribution)
    elif fmt == "jsonl":
        yield from read_jsonl(text, file)
    elif fmt == "json":
        yield from read_json(text, file)
    elif fmt == "esconv":
        yield from read_esconv(text, file)


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Files of the inputs (folders recursively, sorted), skipping README/hidden files.

    A catalogue name (`annomi`, `esconv`, ...; hybridtune/catalogue) stands for its downloaded files;
    a kept-conversations folder (runs/<name>/conversations) for its reviewer-accepted conversations only."""
    from ..app.conversations import export_accepted, is_folder
    from ..catalogue import resolve_inputs
    from ..errors import UserError

    out: list[Path] = []
    for item in resolve_inputs(inputs):
        p = Path(item).expanduser()
        if is_folder(p):  # never the unreviewed ones: accepted.jsonl, refreshed from the decisions
            export_accepted(p)
            out.append(p / "accepted.jsonl")
        elif p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith((".", "README", "LICENSE")))
        elif p.is_file():
            out.append(p)
        else:
            raise UserError(f"real.inputs: '{item}' does not exist; pass transcript files or folders")
    return out
