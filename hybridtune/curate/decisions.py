"""Human review decisions: append-only records, their fold into an effective state, and the
CSV/JSONL export-import path for teams who review outside the web app.

Input : runs/<name>/curate/{selected,review,rejected}.jsonl (Session, from the curate stage)
        runs/<name>/curate/decisions.jsonl (Decision, append-only, one line per action)
Output: Decision records appended; effective sessions (edits applied) for the mix stage.

    hybridtune review-export runs/demo queue.csv      # edit the `decision` column elsewhere
    hybridtune review-import runs/demo queue.csv --reviewer alice
"""
from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from ..errors import UserError
from ..paths import input_file, output_file
from ..meta import CurateMeta
from ..records import Message, QuarantineEntry, Record, Session, stable_id
from ..safeparse import BadJSON, loads_json
from ..store import StageDir, atomic_write
from .select import mean_score, session_techniques

DECISIONS = "decisions.jsonl"
BASE_FILES = {"selected": "selected.jsonl", "review": "review.jsonl", "rejected": "rejected.jsonl"}
WHICH = ("review", "selected", "rejected", "all")


class Decision(Record):
    """One reviewer action. `edit` replaces the content of message `index` of the session."""

    session_id: str
    action: Literal["accept", "reject", "edit"]
    reviewer: str = Field(min_length=1, max_length=80)
    time: str
    index: int | None = None
    content: str | None = None
    note: str = Field("", max_length=2000)
    snapshot: int | None = None  # a kept conversation: the number of turns of the snapshot reviewed


class DecisionIn(BaseModel):
    """What a reviewer submits (web app body, CSV row, JSONL line)."""

    action: Literal["accept", "reject", "edit"]
    reviewer: str = Field(min_length=1, max_length=80)
    index: int | None = None
    content: str | None = Field(None, max_length=20000)
    note: str = Field("", max_length=2000)
    snapshot: int | None = Field(None, ge=1)


def load_candidates(st: StageDir) -> dict[str, tuple[str, Session]]:
    """Every curated session by id with the policy's status (selected | review | rejected)."""
    out: dict[str, tuple[str, Session]] = {}
    for status, file in BASE_FILES.items():
        for s in st.read(file, Session):
            out.setdefault(s.id, (status, s))
    return out


def make_decision(session: Session, d: DecisionIn) -> Decision:
    """Validate a submitted decision against the session (edits only to existing turns)."""
    if d.action == "edit":
        if d.index is None or d.content is None:
            raise ValueError("edit needs `index` and `content`")
        if not 0 <= d.index < len(session.messages):
            raise ValueError(f"index {d.index} out of range (session has {len(session.messages)} messages)")
        if not d.content.strip():
            raise ValueError("edited content is empty; reject the session instead")
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    return Decision(id=stable_id(session.id, d.action, d.reviewer, now, d.index, d.content),
                    session_id=session.id, action=d.action, reviewer=d.reviewer.strip(), time=now,
                    index=d.index if d.action == "edit" else None,
                    content=d.content if d.action == "edit" else None, note=d.note, snapshot=d.snapshot)


def fold(decisions: list[Decision]) -> dict[str, dict]:
    """Per session: the last accept/reject (`verdict`) and the snapshot it was given on (kept
    conversations), the latest edit of each turn, the history."""
    state: dict[str, dict] = {}
    for d in decisions:  # file order = time order (append-only)
        s = state.setdefault(d.session_id, {"verdict": None, "snapshot": None, "edits": {}, "history": []})
        if d.action == "edit":
            s["edits"][d.index] = d.content
        else:
            s["verdict"], s["snapshot"] = d.action, d.snapshot
        s["history"].append(d.model_dump(exclude={"id"}))
    return state


def apply_edits(session: Session, state: dict | None) -> Session:
    if not state or not state["edits"]:
        return session
    msgs = [Message(role=m.role, content=state["edits"].get(i, m.content)) for i, m in enumerate(session.messages)]
    meta = {**session.meta, "review_edited_turns": sorted(state["edits"])}
    return session.model_copy(update={"messages": msgs, "meta": meta})


def effective(st: StageDir, include_pending: bool = False) -> list[Session]:
    """Sessions to use for training: policy status overridden by reviewer verdicts, edits applied."""
    state = fold(list(st.read(DECISIONS, Decision)))
    keep = []
    for sid, (status, s) in load_candidates(st).items():
        verdict = (state.get(sid) or {}).get("verdict")
        by_policy = status == "selected" or (include_pending and status == "review")
        use = verdict == "accept" or (verdict is None and by_policy)
        if use:
            keep.append(apply_edits(s, state.get(sid)))
    return keep


# -- export / import ----------------------------------------------------------------------
CSV_FIELDS = ["session_id", "source", "status", "reasons", "mean_score", "techniques", "decision",
              "reviewer", "note", "index", "content"]


def export_rows(st: StageDir, which: str = "review") -> list[dict]:
    state = fold(list(st.read(DECISIONS, Decision)))
    rows = []
    for sid, (status, s) in load_candidates(st).items():
        if which != "all" and status != which:
            continue
        rows.append({
            "session_id": sid, "source": s.source, "status": status,
            "reasons": ";".join(CurateMeta.of(s).reasons),
            "mean_score": mean_score(s), "techniques": ";".join(session_techniques(s)),
            "decision": (state.get(sid) or {}).get("verdict") or "",
            "reviewer": "", "note": "", "index": "", "content": "",
        })
    return rows


def export_queue(st: StageDir, out: Path, which: str = "review") -> int:
    """CSV (one row per session; fill `decision`) or JSONL (rows plus the full dialogue)."""
    if which not in WHICH:
        raise UserError(f"--which {which}: unknown; use one of {', '.join(WHICH)}")
    if out.suffix.lower() not in (".csv", ".jsonl"):
        raise UserError(f"{out}: unknown export format; name the file .csv or .jsonl")
    output_file(out, [st.file(f) for f in (DECISIONS, *BASE_FILES.values())], parent_must_exist=True)
    rows = export_rows(st, which)
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
        atomic_write(out, buf.getvalue())
    else:
        cands = load_candidates(st)
        lines = [json.dumps({**r, "messages": [m.model_dump() for m in cands[r["session_id"]][1].messages]},
                            ensure_ascii=False) for r in rows]
        atomic_write(out, "".join(x + "\n" for x in lines))
    return len(rows)


def _not_utf8(values) -> bool:
    """Undecodable bytes survive decoding as lone surrogates (surrogateescape): that row is bad."""
    return any(isinstance(v, str) and any("\udc80" <= ch <= "\udcff" for ch in v) for v in values)


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line, row) pairs; a row that cannot be used is {"_bad": reason} so it is quarantined, not fatal."""
    input_file(path, "a .csv or .jsonl file written by review-export")
    if path.suffix.lower() not in (".csv", ".jsonl"):
        raise UserError(f"{path}: unknown import format; use a .csv or .jsonl file")
    text = path.read_bytes().decode("utf-8", "surrogateescape")
    not_utf8 = {"_bad": "not UTF-8 text; re-save the file as UTF-8"}
    rows: list[tuple[int, dict]] = []
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as e:
                rows.append((line, {"_bad": f"not valid CSV ({e}); check the quotes on this row"}))
                continue  # the reader resumes at the next line (an unterminated quote has eaten the rest)
            rows.append((line, not_utf8 if _not_utf8([*row.values(), *row.keys()]) else row))
        return rows
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if _not_utf8([line]):
            rows.append((i, not_utf8))
            continue
        try:
            obj = loads_json(line)
        except BadJSON as e:
            obj = {"_bad": str(e)}
        rows.append((i, obj if isinstance(obj, dict) else {"_bad": f"expected a JSON object, got {type(obj).__name__}"}))
    return rows


def import_decisions(st: StageDir, path: Path, reviewer: str | None = None) -> tuple[int, list[QuarantineEntry]]:
    """Append the decisions of filled rows; bad rows are returned as quarantine entries (the rest go in)."""
    output_file(st.file(DECISIONS), [path])  # importing the decisions file into itself would duplicate it
    cands = load_candidates(st)
    added, bad = [], []
    for line, row in _read_rows(path):
        action = str(row.get("decision") or row.get("action") or "").strip().lower()
        if not action and "_bad" not in row:
            continue  # an unfilled row: no decision yet
        try:
            if "_bad" in row:
                raise ValueError(row["_bad"])
            sid = str(row.get("session_id", "")).strip()
            if sid not in cands:
                raise ValueError(f"unknown session_id {sid[:40]!r}")
            idx = row.get("index")
            d = DecisionIn(action=action, reviewer=str(row.get("reviewer") or reviewer or "").strip() or "?",
                           index=int(idx) if str(idx if idx is not None else "").strip() else None,
                           content=row.get("content") or None, note=str(row.get("note") or ""))
            added.append(make_decision(cands[sid][1], d))
        except (ValueError, TypeError, ValidationError) as e:
            if isinstance(e, ValidationError):  # name the column, not the pydantic model
                msg = "; ".join(f"{'.'.join(map(str, x['loc'])) or 'row'}: {x['msg']}" for x in e.errors()[:3])
            else:
                msg = str(e)
            msg = msg.splitlines()[0][:200]
            bad.append(QuarantineEntry(id=stable_id(str(path), line), file=str(path), line=line,
                                       reason=f"{msg}; fix this row (decision accept|reject|edit, a known session_id)"))
    st.append_many(DECISIONS, added)
    if bad:
        st.append_many("quarantine.jsonl", bad)
    return len(added), bad
