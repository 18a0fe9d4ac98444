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
from ..records import Message, QuarantineEntry, Record, Session, stable_id
from ..store import StageDir
from .select import mean_score, session_techniques

DECISIONS = "decisions.jsonl"
BASE_FILES = {"selected": "selected.jsonl", "review": "review.jsonl", "rejected": "rejected.jsonl"}


class Decision(Record):
    """One reviewer action. `edit` replaces the content of message `index` of the session."""

    session_id: str
    action: Literal["accept", "reject", "edit"]
    reviewer: str = Field(min_length=1, max_length=80)
    time: str
    index: int | None = None
    content: str | None = None
    note: str = Field("", max_length=2000)


class DecisionIn(BaseModel):
    """What a reviewer submits (web app body, CSV row, JSONL line)."""

    action: Literal["accept", "reject", "edit"]
    reviewer: str = Field(min_length=1, max_length=80)
    index: int | None = None
    content: str | None = Field(None, max_length=20000)
    note: str = Field("", max_length=2000)


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
                    content=d.content if d.action == "edit" else None, note=d.note)


def fold(decisions: list[Decision]) -> dict[str, dict]:
    """Per session: the last accept/reject (`verdict`), the latest edit of each turn, the history."""
    state: dict[str, dict] = {}
    for d in decisions:  # file order = time order (append-only)
        s = state.setdefault(d.session_id, {"verdict": None, "edits": {}, "history": []})
        if d.action == "edit":
            s["edits"][d.index] = d.content
        else:
            s["verdict"] = d.action
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
            "reasons": ";".join(s.meta.get("curate", {}).get("reasons", [])),
            "mean_score": mean_score(s), "techniques": ";".join(session_techniques(s)),
            "decision": (state.get(sid) or {}).get("verdict") or "",
            "reviewer": "", "note": "", "index": "", "content": "",
        })
    return rows


def export_queue(st: StageDir, out: Path, which: str = "review") -> int:
    """CSV (one row per session; fill `decision`) or JSONL (rows plus the full dialogue)."""
    rows = export_rows(st, which)
    if out.suffix.lower() == ".csv":
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=CSV_FIELDS)
        w.writeheader()
        w.writerows(rows)
        out.write_text(buf.getvalue(), encoding="utf-8")
    elif out.suffix.lower() == ".jsonl":
        cands = load_candidates(st)
        lines = [json.dumps({**r, "messages": [m.model_dump() for m in cands[r["session_id"]][1].messages]},
                            ensure_ascii=False) for r in rows]
        out.write_text("".join(x + "\n" for x in lines), encoding="utf-8")
    else:
        raise UserError(f"{out}: unknown export format; name the file .csv or .jsonl")
    return len(rows)


def _read_rows(path: Path) -> list[tuple[int, dict]]:
    if not path.is_file():
        raise UserError(f"{path}: file not found; pass a .csv or .jsonl written by review-export")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start}); re-save the file as UTF-8") from None
    if path.suffix.lower() == ".csv":
        return [(i + 2, row) for i, row in enumerate(csv.DictReader(io.StringIO(text)))]  # line 1 = header
    if path.suffix.lower() == ".jsonl":
        rows = []
        for i, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append((i, json.loads(line)))
                except json.JSONDecodeError:
                    rows.append((i, {"_bad": "not valid JSON"}))
        return rows
    raise UserError(f"{path}: unknown import format; use a .csv or .jsonl file")


def import_decisions(st: StageDir, path: Path, reviewer: str | None = None) -> tuple[int, list[QuarantineEntry]]:
    """Append the decisions of filled rows; bad rows are returned as quarantine entries (the rest go in)."""
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
        except (ValueError, ValidationError) as e:
            msg = str(e).splitlines()[0][:200]
            bad.append(QuarantineEntry(id=stable_id(str(path), line), file=str(path), line=line,
                                       reason=f"{msg}; fix this row (decision accept|reject|edit, a known session_id)"))
    st.append_many(DECISIONS, added)
    if bad:
        st.append_many("quarantine.jsonl", bad)
    return len(added), bad
