"""Conversations that come back: `serve` and `chat` keep their conversations with real users
(off by default), scrubbed of PII by the ingest scrubber, with thumbs up/down and a comment per
reply. `hybridtune review` shows them beside the synthetic sessions; accepted ones are a real-data
source (`real.inputs: [runs/<name>/conversations]`), and a later run's report says how the
counselor did with real users.

Folder runs/<name>/conversations/ (only created when keeping is on):
  _conversations.json  marks the folder: `real.inputs` reads only accepted.jsonl from it
  sessions.jsonl       Session (source real, meta.kind conversation), a snapshot after every reply,
                       already scrubbed; the latest snapshot of an id counts
  feedback.jsonl       Feedback per reply (rating up|down, comment scrubbed); the latest per reply counts
  decisions.jsonl      review decisions (the curate Decision records)
  accepted.jsonl       accepted conversations (reviewer edits applied) as chat JSONL, rewritten per decision

A user who opts a conversation out has every record of it removed at once (files rewritten
atomically), and nothing more of it is written.

    log = ConversationLog.open(cfg)                  # None unless conversations.keep is on
    log.save(engine)                                 # after a reply
    log.feedback(conv_id, index, "up", "helpful")
    summarize(Path("runs/demo/conversations"), cfg.safety)   # for the report
"""
from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ..records import Message, Record, Session, stable_id
from ..store import StageDir, atomic_write, read_jsonl_dicts

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..safety.config import SafetyConfig
    from .transcript import ChatTranscript as ChatEngine  # what save() reads of an engine

MANIFEST = "_conversations.json"


class Feedback(Record):
    """A user's rating of one counselor reply (`index` into the conversation's messages)."""

    conversation_id: str
    index: int
    rating: Literal["up", "down"] | None = None
    comment: str = ""
    time: float


def folder_of(cfg: ExperimentConfig) -> Path:
    return cfg.run_dir / "conversations"


class ConversationLog:
    """The kept conversations of one run (one writer process: serve or chat)."""

    def __init__(self, folder: Path, cfg: ExperimentConfig):
        self.st = StageDir(Path(folder), "conversations")
        self.cfg = cfg
        self.lock = threading.Lock()  # scrubbing runs in a worker thread; one write at a time
        self._scrubber = None
        self._last: dict[tuple[str, int], Feedback] = {}  # a rating and a comment sent apart make one record
        if not self.st.file(MANIFEST).exists():
            self.st.write_json(MANIFEST, {"kind": "hybridtune conversations", "created": time.time(),
                                          "scrubbed_with": "hybridtune.real.pii (real.pii config)",
                                          "ingest": "real.inputs reads accepted.jsonl only"})

    @classmethod
    def open(cls, cfg: ExperimentConfig) -> ConversationLog | None:
        return cls(folder_of(cfg), cfg) if cfg.conversations.keep else None

    @property
    def scrubber(self):
        if self._scrubber is None:
            from ..real.pii import Scrubber

            self._scrubber = Scrubber(self.cfg.real.pii, seed=self.cfg.seed)
        return self._scrubber

    def save(self, engine: ChatEngine, surface: str) -> Session | None:
        """Scrub and append the conversation so far (its latest snapshot counts)."""
        turns = [m for m in engine.messages if m.role != "system"]
        if not turns:
            return None
        with self.lock:
            cid = engine.session_id
            if cid in self.withdrawn():
                return None
            texts, counts = self.scrubber.scrub_session([m.content for m in turns], key=cid)
            s = Session(id=cid, source="real", messages=[Message(role=m.role, content=t) for m, t in zip(turns, texts, strict=True)],
                        meta={"kind": "conversation", "surface": surface, "variant": engine.variant,
                              "started": engine.started, "updated": time.time(), "safety": engine.turn_risks,
                              "pii": dict(counts)})
            self.st.append("sessions.jsonl", s)
            return s

    def feedback(self, cid: str, index: int, rating: str | None, comment: str) -> Feedback:
        """Record a rating and/or comment of reply `index` (the comment scrubbed like the conversation);
        what is not given keeps its earlier value."""
        with self.lock:
            prev = self._last.get((cid, index))
            comment = self.scrubber.scrub_text(comment.strip(), key=cid) if comment.strip() else ""
            fb = Feedback(id=stable_id("feedback", cid, index), conversation_id=cid, index=index,
                          rating=rating or (prev.rating if prev else None),
                          comment=comment or (prev.comment if prev else ""), time=time.time())
            self.st.append("feedback.jsonl", fb)
            self._last[(cid, index)] = fb
            return fb

    def forget(self, cid: str) -> None:
        """The user opted out: remove every record of the conversation and keep it out."""
        with self.lock:
            self.st.append("withdrawn.jsonl", {"id": cid})
            self._last = {k: v for k, v in self._last.items() if k[0] != cid}
            for name, key in (("sessions.jsonl", "id"), ("feedback.jsonl", "conversation_id")):
                p = self.st.file(name)
                if p.exists():
                    keep = [d for d in read_jsonl_dicts(p) if d.get(key) != cid]
                    atomic_write(p, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in keep))

    def withdrawn(self) -> set[str]:
        p = self.st.file("withdrawn.jsonl")
        return {d["id"] for d in read_jsonl_dicts(p)} if p.exists() else set()


# -- reading (review app, real ingest, report) ---------------------------------------------------

def sessions(folder: Path) -> dict[str, Session]:
    """The latest snapshot of every kept conversation (withdrawn ones excluded)."""
    folder = Path(folder)
    p = folder / "sessions.jsonl"
    gone = {d["id"] for d in read_jsonl_dicts(folder / "withdrawn.jsonl")} if (folder / "withdrawn.jsonl").exists() else set()
    out: dict[str, Session] = {}
    for d in read_jsonl_dicts(p) if p.exists() else []:
        if d.get("id") not in gone:
            out[d["id"]] = Session.model_validate(d)
    return out


def feedback(folder: Path) -> dict[str, dict[int, Feedback]]:
    """{conversation id: {reply index: latest Feedback}}."""
    p = Path(folder) / "feedback.jsonl"
    out: dict[str, dict[int, Feedback]] = {}
    for d in read_jsonl_dicts(p) if p.exists() else []:
        fb = Feedback.model_validate(d)
        out.setdefault(fb.conversation_id, {})[fb.index] = fb
    return out


def export_accepted(folder: Path) -> int:
    """Rewrite accepted.jsonl from the review decisions (edits applied); returns the count."""
    from ..curate.decisions import DECISIONS, Decision, fold

    st = StageDir(Path(folder), "conversations")
    folded = fold(list(st.read(DECISIONS, Decision)))
    fbs = feedback(folder)
    lines = []
    for cid, s in sessions(folder).items():
        state = folded.get(cid) or {}
        if state.get("verdict") != "accept":
            continue
        edits = state.get("edits", {})
        ratings = Counter(f.rating for f in fbs.get(cid, {}).values() if f.rating)
        lines.append(json.dumps({
            "id": cid, "source": "hybridtune conversations", "variant": s.meta.get("variant", ""),
            "helpful": ratings["up"], "unhelpful": ratings["down"],
            "messages": [{"role": m.role, "content": edits.get(i, m.content)} for i, m in enumerate(s.messages)]},
            ensure_ascii=False) + "\n")
    atomic_write(st.file("accepted.jsonl"), "".join(lines))
    return len(lines)


def is_folder(p: Path) -> bool:
    return p.is_dir() and (p / MANIFEST).is_file()


def summarize(folder: Path, safety: SafetyConfig) -> dict:
    """How the counselor did with real users: conversations, replies rated helpful, crisis events, per variant."""
    from ..curate.decisions import DECISIONS, Decision, fold
    from ..safety.rules import RISK_ORDER

    folder = Path(folder)
    convs = sessions(folder)
    fbs = feedback(folder)
    folded = fold(list(StageDir(folder, "conversations").read(DECISIONS, Decision))) if (folder / DECISIONS).exists() else {}
    by: dict[str, Counter] = {}
    for cid, s in convs.items():
        c = by.setdefault(str(s.meta.get("variant", "?")), Counter())
        c["conversations"] += 1
        c["replies"] += sum(m.role == "assistant" for m in s.messages)
        ratings = [f.rating for f in fbs.get(cid, {}).values() if f.rating]
        c["up"] += ratings.count("up")
        c["down"] += ratings.count("down")
        c["comments"] += sum(1 for f in fbs.get(cid, {}).values() if f.comment)
        c["crisis_turns"] += sum(RISK_ORDER.get(r.get("risk", "none"), 0) >= RISK_ORDER[safety.crisis_level]
                                 for r in s.meta.get("safety", []))
        c["accepted"] += (folded.get(cid) or {}).get("verdict") == "accept"
        c["rejected"] += (folded.get(cid) or {}).get("verdict") == "reject"
    out = {}
    for v, c in by.items():
        rated = c["up"] + c["down"]
        out[v] = {**c, "rated": rated, "helpful_share": c["up"] / rated if rated else None}
    return out


def report_section(ctx) -> tuple[str, str] | None:
    """The report's 'Real users' section: every kept-conversations folder this run reads
    (real.inputs) or wrote (serve/chat of this run); None when there is none."""
    from ..evaluate.render import join, para, table

    folders = [Path(x).expanduser() for x in ctx.cfg.real.inputs if is_folder(Path(x).expanduser())]
    if is_folder(folder_of(ctx.cfg)) and folder_of(ctx.cfg).resolve() not in {f.resolve() for f in folders}:
        folders.append(folder_of(ctx.cfg))
    if not folders:
        return None
    rows = []
    for f in folders:
        for v, c in summarize(f, ctx.cfg.safety).items():
            share = None if c["helpful_share"] is None else f"{c['helpful_share']:.0%} of {c['rated']}"
            rows.append([str(f), v, c["conversations"], c["replies"], share, c["comments"], c["crisis_turns"],
                         c["accepted"], c["rejected"]])
    return join(para("How the counselor did with real users: conversations kept by `serve`/`chat` (users were told "
                     "and could opt out; PII-scrubbed), the share of rated replies users found helpful (thumbs up), "
                     f"and user turns that reached the crisis level ({ctx.cfg.safety.crisis_level} or above)."),
                table(["Folder", "Variant", "Conversations", "Counselor replies", "Rated helpful", "Comments",
                       "Crisis turns", "Accepted", "Rejected"], rows))
