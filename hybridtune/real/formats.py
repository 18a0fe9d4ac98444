"""Readers of real transcript formats: each yields `RawSession`s (speaker-labelled turns), streaming.

Input: files (AnnoMI CSV, generic CSV, speaker-labelled text, WebVTT/SRT captions, JSON/JSONL
chat, ESConv JSON). Output: `RawSession`s in file order. A file that cannot be read raises
`BadInput(reason, line)`, which the stage turns into a quarantine entry and goes on to the
next file; one bad record of a file made of records (a JSONL line, an ESConv conversation)
is *yielded* as a `BadInput` instead, so the stage quarantines it and reads on.

    for raw in read_file(Path("x.vtt"), cfg.real): ...

A format is one `Reader` subclass: its name, the file suffixes it claims, a detection rule
(`sniff`) and `read`; defining the class registers it (`READERS`; another package can add
one through the entry-point group `hybridtune.formats`). Detection scores each reader:
2 for a claimed suffix plus its `sniff` of the file's start; the highest wins, ties go to
the earlier reader, and with no score at all the `fallback` reader (text) reads the file.
"""
from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

from ..errors import UserError
from ..plugins import Registry
from .captions import counselor_score, read_srt, read_vtt
from ..safeparse import BadJSON, loads_json
from .config import RealConfig
from .raw import BadInput, RawSession, RawTurn, decode, label_role

__all__ = ["READERS", "Reader", "BadInput", "RawSession", "RawTurn", "decode", "detect", "expand_inputs",
           "formats", "label_role", "read_file"]

READERS: Registry[type["Reader"]] = Registry("format", group="hybridtune.formats")


class Reader:
    """One transcript format. Subclasses register themselves under `name`."""

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]] = ()
    pattern: ClassVar[re.Pattern | None] = None  # found in the file's first 2000 characters: this format...
    weight: ClassVar[int] = 1                    # ...this surely (3: whatever the suffix)
    fallback: ClassVar[bool] = False             # reads files no reader recognises
    parse: ClassVar[Callable[[str, str], Iterator[RawSession]] | None] = None  # (text, file) -> sessions

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        READERS.add(cls.name, cls)

    @classmethod
    def sniff(cls, head: str) -> int:
        """How surely the first 2000 characters are this format: 0 (no opinion) up to 3 (whatever the suffix)."""
        return cls.weight if cls.pattern is not None and cls.pattern.search(head) else 0

    @classmethod
    def read(cls, text: str, file: str, cfg: RealConfig) -> Iterator[RawSession]:
        """The sessions of one file (override when the reader needs the config; else set `parse`)."""
        assert cls.parse is not None, f"reader {cls.name}: set parse = staticmethod(fn) or override read()"
        return cls.parse(text, file)


def formats() -> list[str]:
    """Names of the registered formats (for `--format` and `real.format`)."""
    return READERS.names()


def detect(path: Path, text: str, forced: str = "auto") -> str:
    """The format of a file: `forced` unless "auto", else the best-scoring reader (see the module doc)."""
    if forced != "auto":
        return READERS.get(forced, key="real.format / --format").name
    suffix, head = path.suffix.lower(), text.lstrip()[:2000]
    best, score = None, 0
    for _, r in READERS.items():
        s = 2 * (suffix in r.suffixes) + r.sniff(head)
        if s > score:
            best, score = r, s
    if best is None:
        best = next(r for _, r in READERS.items() if r.fallback)
    return best.name


# -- CSV ---------------------------------------------------------------------
def _csv_rows(text: str, required: list[str]) -> Iterator[tuple[int, dict]]:
    reader = csv.DictReader(text.splitlines(keepends=True), strict=True)  # an unterminated quote is an error, not one giant field
    cols = reader.fieldnames or []
    missing = [c for c in required if c not in cols]
    if missing:
        raise BadInput(f"CSV missing column(s) {missing} (has {cols[:8]}); set real.csv.* to map your columns", 1)
    try:
        for row in reader:
            yield reader.line_num, row
    except csv.Error as e:
        raise BadInput(f"malformed CSV ({e}); fix the quoting there", reader.line_num) from None


_PART = r"(?:\d+|one|two|three|four|five|i{1,3}|iv|v)"
_LEAD_PART = re.compile(rf"(?i)^\s*part\s*{_PART}\s*[:\-]\s*")
_TAIL_PART = re.compile(rf"(?i)(?:\s*[-:,(]\s*|\s+)(?:part\s*)?{_PART}\)?\s*$")
_EFFECTIVE = re.compile(r"(?i)^the (?:in)?effective\b([^:]*)")  # 'The Ineffective Physician: Non-...'
_WITH_MI = re.compile(r"(?i)\bwith(?:out)? mi\s*$")  # 'ComMIt Asthma Dialogue without MI'



def series_of(title: str) -> str:
    """The series an AnnoMI video belongs to, from its title: part numbers dropped ('Monkey on My
    Back - Part 2', 'Part Two: ... (Counselor Scenario)' with its subtitle) and the good/poor
    demonstration pairs joined ('ComMIt Diabetes Dialogue with MI' / 'without MI', 'The
    Effective ...' / 'The Ineffective ...'): transcripts of one series share a client or a script,
    so a grouped split (mix.group_by) keeps them on one side."""
    s = title.strip()
    if _LEAD_PART.match(s):
        s = re.split(r"[,(]", _LEAD_PART.sub("", s))[0]
    prev = None
    while prev != s:
        prev, s = s, _TAIL_PART.sub("", s).strip()
    if m := _EFFECTIVE.match(s):
        s = "the" + m[1]
    s = _WITH_MI.sub("", s)
    return re.sub(r"\W+", " ", s.lower()).strip()


def read_csv(text: str, file: str, fmt: str, cfg: RealConfig) -> Iterator[RawSession]:
    if fmt == "annomi":
        sid, spk, txt, order = "transcript_id", "interlocutor", "utterance_text", "utterance_id"
        extra = ("topic", "mi_quality", "video_title", "video_url")
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
        if fmt == "annomi" and meta.get("video_title"):
            meta["series"] = series_of(meta["video_title"])
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


def read_jsonl(text: str, file: str) -> Iterator[RawSession | BadInput]:
    """One session per line; a bad line is yielded as a BadInput (quarantined), the next lines are read."""
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield _chat_session(loads_json(line), file, str(n), n, "jsonl")
        except BadJSON as e:
            yield BadInput(f"{e}; fix or remove that line", n)
        except BadInput as e:
            yield e


def _load_json(text: str) -> Any:
    """A JSON document, or a list of JSON lines (ESConv's published splits are JSONL named .json)."""
    try:
        return loads_json(text)
    except BadJSON as e:
        if "Extra data" not in str(e):
            raise BadInput(f"invalid, truncated or too deeply nested JSON ({e}); fix the file", e.line or 1) from None
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                out.append(loads_json(line))
            except BadJSON as e:
                raise BadInput(f"invalid JSON line ({e}); fix or remove it", n) from None
    return out


def read_json(text: str, file: str) -> Iterator[RawSession]:
    data = _load_json(text)
    items = data if isinstance(data, list) and data and isinstance(data[0], dict) and "role" not in data[0] else [data]
    for i, obj in enumerate(items):
        yield _chat_session(obj, file, str(i), None, "json")


ESCONV_ROLE = {"usr": "user", "seeker": "user", "speaker": "user", "sys": "assistant", "supporter": "assistant",
               "listener": "assistant"}


def read_esconv(text: str, file: str) -> Iterator[RawSession | BadInput]:
    """ESConv: a list of {situation, emotion_type, problem_type, dialog: [{speaker, text|content, strategy}]}."""
    data = _load_json(text)
    if not isinstance(data, list):
        raise BadInput("ESConv: expected a JSON list of conversations", 1)
    for i, conv in enumerate(data):
        if not isinstance(conv, dict) or not isinstance(conv.get("dialog"), list) \
                or not all(isinstance(d, dict) for d in conv["dialog"]):
            yield BadInput(f"ESConv: conversation {i} has no 'dialog' list of objects; fix or remove it", None)
            continue
        turns = []
        for d in conv["dialog"]:
            ann = d.get("annotation") or {}
            strategy = d.get("strategy") or ann.get("strategy")
            turns.append(RawTurn(speaker=str(d.get("speaker", "")), role=ESCONV_ROLE.get(str(d.get("speaker", "")).lower()),
                                 text=str(d.get("text", d.get("content", ""))),
                                 meta={"strategy": strategy} if strategy else {}))
        meta = {k: conv[k] for k in ("emotion_type", "problem_type", "experience_type") if k in conv}
        yield RawSession(key=str(i), file=file, format="esconv", turns=turns, meta=meta)


# -- the registered formats, in detection-tie order ------------------------------------------


class CSVReader(Reader):
    """Utterance CSV with the columns mapped by `real.csv`; subclasses are CSV exports known by their header."""

    name, suffixes = "csv", (".csv", ".tsv")
    columns: ClassVar[tuple[str, ...]] = ()  # lower-cased header names that identify a subclass's export

    @classmethod
    def sniff(cls, head: str) -> int:
        first = head.splitlines()[0].lower() if head else ""
        return int(bool(cls.columns) and all(c in first for c in cls.columns))

    @classmethod
    def read(cls, text: str, file: str, cfg: RealConfig) -> Iterator[RawSession]:
        return read_csv(text, file, cls.name, cfg)


class AnnoMIReader(CSVReader):
    name, columns = "annomi", ("transcript_id", "interlocutor", "utterance_text")


class CounselChatReader(CSVReader):
    name, columns = "counselchat", ("questionid", "questiontext", "answertext")

    @classmethod
    def read(cls, text: str, file: str, cfg: RealConfig) -> Iterator[RawSession]:
        return read_counselchat(text, file)


class TextReader(Reader):
    name, suffixes, fallback = "text", (".txt", ".md"), True
    parse = staticmethod(read_text)


class VTTReader(Reader):
    name, suffixes, pattern, weight = "vtt", (".vtt",), re.compile(r"\AWEBVTT"), 3

    @classmethod
    def read(cls, text: str, file: str, cfg: RealConfig) -> Iterator[RawSession]:
        yield read_vtt(text, file, cfg.attribution)


class SRTReader(Reader):
    name, suffixes, pattern = "srt", (".srt",), re.compile(r"\A\d+\s*\n\d\d:\d\d:\d\d,\d{3}\s*-->")

    @classmethod
    def read(cls, text: str, file: str, cfg: RealConfig) -> Iterator[RawSession]:
        yield read_srt(text, file, cfg.attribution)


class JSONLReader(Reader):
    name, suffixes, pattern = "jsonl", (".jsonl",), re.compile(r"\A[{\[].*\n\{", re.S)  # several lines of {...}
    parse = staticmethod(read_jsonl)


class JSONReader(Reader):
    name, suffixes, pattern = "json", (".json",), re.compile(r"\A[{\[](?!.*\n\{)", re.S)  # one document
    parse = staticmethod(read_json)


class ESConvReader(Reader):
    # weight 2: beats plain JSON (.json suffix + JSON start), loses the tie without "dialog"
    name, suffixes, pattern, weight = "esconv", (".json",), re.compile(r'"dialog"\s*:'), 2
    parse = staticmethod(read_esconv)


def read_file(path: Path, cfg: RealConfig, forced: str | None = None) -> Iterator[RawSession | BadInput]:
    """All sessions of one file. Raises BadInput for an unusable file (before or while reading);
    yields a BadInput for one unusable record of it."""
    text = decode(path)
    yield from READERS.get(detect(path, text, forced or cfg.format)).read(text, str(path), cfg)


OUTPUT_MARKERS = ("_ingest.json", "_done.json")  # what hybridtune writes into every ingest/stage folder


def expand_inputs(inputs: list[str], exclude: Path | None = None) -> list[Path]:
    """Files of the inputs (folders recursively, sorted), skipping README/hidden files and anything
    under `exclude` (the output folder: ingest must never read its own outputs) or in any folder that
    an earlier ingest or stage wrote (it holds one of OUTPUT_MARKERS).

    A catalogue name (`annomi`, `esconv`, ...; hybridtune/catalogue) stands for its downloaded files;
    a kept-conversations folder (runs/<name>/conversations) for its reviewer-accepted conversations only."""
    from ..app.conversations import export_accepted, is_folder
    from ..catalogue import resolve_inputs
    from ..paths import WHY, path_kind

    skip = exclude.resolve() if exclude is not None else None

    def keep(f: Path) -> bool:
        if skip is not None and (f.resolve() == skip or skip in f.resolve().parents):
            return False
        return f.is_file() and not f.name.startswith((".", "README", "LICENSE"))

    out: list[Path] = []
    for item in resolve_inputs(inputs):
        p = Path(item).expanduser()
        kind = path_kind(p)
        if kind == "dir" and is_folder(p):  # never the unreviewed ones: accepted.jsonl, refreshed from the decisions
            export_accepted(p)
            out.append(p / "accepted.jsonl")
        elif kind == "dir":  # an earlier ingest's or stage's output folder inside an input is output, not input
            made = {m.parent.resolve() for marker in OUTPUT_MARKERS for m in p.rglob(marker)}
            out += sorted(f for f in p.rglob("*") if keep(f) and not made & set(f.resolve().parents))
        elif kind == "file":
            if keep(p):
                out.append(p)
        else:
            raise UserError(f"real.inputs: '{item}' {WHY[kind]}; pass transcript files or folders")
    return out
