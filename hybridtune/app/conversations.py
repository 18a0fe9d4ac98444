"""Conversations that come back: `serve` and `chat` keep their conversations with real users
(off by default), scrubbed of PII by the ingest scrubber, with thumbs up/down and a comment per
reply. `hybridtune review` shows them beside the synthetic sessions; accepted ones are a real-data
source (`real.inputs: [runs/<name>/conversations]`), and a later run's report says how the
counselor did with real users.

Folder runs/<name>/conversations/ (only created when keeping is on; 0700, every file 0600):
  _conversations.json  marks the folder: `real.inputs` reads only accepted.jsonl from it
  sessions.jsonl       Session (source real, meta.kind conversation), a snapshot after every reply,
                       already scrubbed (the fixed safety wording is never rewritten); the latest
                       snapshot of an id counts for review, `meta.turns` numbers the snapshots
  feedback.jsonl       Feedback per reply (rating up|down, comment scrubbed); the latest per reply counts
  withdrawn.jsonl      opt-outs (and opt-ins after one) per conversation id: the last one counts
  decisions.jsonl      review decisions (the curate Decision records, each naming the snapshot reviewed)
  accepted.jsonl       accepted conversations as the reviewer saw them (that snapshot, edits applied),
                       as chat JSONL, rewritten per decision

A user who opts a conversation out has every record of it removed at once (files rewritten
atomically), and nothing more of it is written; opting back in keeps only what is said after.

    log = ConversationLog.open(cfg, domain)          # None unless conversations.keep is on
    log.save(engine, surface="chat")                 # after a reply
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

from ..errors import UserError
from ..records import Message, Record, Session, stable_id
from ..store import StageDir, atomic_write, read_jsonl_dicts

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..domain import Domain
    from ..real.pii import Scrubber
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


def privacy_scrubber(cfg: ExperimentConfig, domain: Domain | None) -> Scrubber:
    """The ingest scrubber (config `real.pii`) that leaves the fixed safety wording as it is: what
    chat and serve write of a person's words goes through it first."""
    from ..real.pii import Scrubber
    from ..safety.policy import fixed_texts

    return Scrubber(cfg.real.pii, seed=cfg.seed, protected=fixed_texts(cfg.safety, domain))


class ConversationLog:
    """The kept conversations of one run (one writer process: serve or chat)."""

    def __init__(self, folder: Path, cfg: ExperimentConfig, domain: Domain | None = None):
        self.st = StageDir(Path(folder), "conversations", private=True)
        self.cfg = cfg
        self.domain = domain
        self.lock = threading.Lock()  # scrubbing runs in a worker thread; one write at a time
        self._scrubber = None
        self._last: dict[tuple[str, int], Feedback] = {}  # a rating and a comment sent apart make one record
        if not self.st.file(MANIFEST).exists():
            self.st.write_json(MANIFEST, {"kind": "hybridtune conversations", "created": time.time(),
                                          "scrubbed_with": "hybridtune.real.pii (real.pii config)",
                                          "ingest": "real.inputs reads accepted.jsonl only"})
        if cfg.conversations.retention_days:
            delete(self.st.path, older_than_days=cfg.conversations.retention_days)

    @classmethod
    def open(cls, cfg: ExperimentConfig, domain: Domain | None = None) -> ConversationLog | None:
        return cls(folder_of(cfg), cfg, domain) if cfg.conversations.keep else None

    @property
    def scrubber(self) -> Scrubber:
        if self._scrubber is None:
            self._scrubber = privacy_scrubber(self.cfg, self.domain)
        return self._scrubber

    def save(self, engine: ChatEngine, surface: str) -> Session | None:
        """Scrub and append the kept part of the conversation (a snapshot; the latest counts)."""
        turns = [m for m in engine.messages[engine.kept_from:] if m.role != "system"]
        if not turns:
            return None
        with self.lock:
            cid = engine.session_id
            if cid in self.withdrawn():
                return None
            texts, counts = self.scrubber.scrub_session([m.content for m in turns], key=cid)
            risks = [{**r, "index": r["index"] - engine.kept_from} for r in engine.turn_risks
                     if r["index"] >= engine.kept_from]
            s = Session(id=cid, source="real", messages=[Message(role=m.role, content=t) for m, t in zip(turns, texts, strict=True)],
                        meta={"kind": "conversation", "surface": surface, "variant": engine.variant,
                              "started": engine.started, "updated": time.time(), "safety": risks,
                              "turns": len(turns), "pii": dict(counts)})
            self.st.append("sessions.jsonl", s)
            return s

    def feedback(self, cid: str, index: int, rating: str | None, comment: str) -> Feedback:
        """Record a rating and/or comment of reply `index` (the comment scrubbed like the conversation);
        what is not given keeps its earlier value."""
        with self.lock:
            if cid in self.withdrawn():
                raise UserError("this conversation was opted out: nothing of it is kept, feedback included")
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
            self.st.append("withdrawn.jsonl", {"id": cid, "withdrawn": True, "time": time.time()})
            self._last = {k: v for k, v in self._last.items() if k[0] != cid}
            purge(self.st.path, {cid})

    def rejoin(self, cid: str) -> None:
        """The user opted back in: what they say from now on may be kept (nothing from before)."""
        with self.lock:
            self.st.append("withdrawn.jsonl", {"id": cid, "withdrawn": False, "time": time.time()})

    def withdrawn(self) -> set[str]:
        return withdrawn(self.st.path)


# -- reading (review app, real ingest, report) ---------------------------------------------------

# where a conversation's id appears, file by file (relative to the conversations folder), and under which key
TRACES = (("sessions.jsonl", "id"), ("feedback.jsonl", "conversation_id"), ("decisions.jsonl", "session_id"),
          ("accepted.jsonl", "id"), ("../chat/safety_events.jsonl", "ref"), ("../chat/sessions.jsonl", "meta.chat_id"))


def _key(d: dict, key: str):
    for part in key.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def purge(folder: Path, ids: set[str]) -> int:
    """Remove every record of these conversations from the kept folder and the run's chat folder
    (snapshots, feedback, review decisions, the accepted export, safety events, saved copies);
    files are rewritten atomically. Returns how many records went."""
    gone = 0
    for name, key in TRACES:
        p = (Path(folder) / name).resolve()
        if not p.is_file():
            continue
        rows = list(read_jsonl_dicts(p))
        keep = [d for d in rows if _key(d, key) not in ids]
        if len(keep) != len(rows):
            atomic_write(p, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in keep))
            gone += len(rows) - len(keep)
    return gone


def expired(folder: Path, days: float, now: float | None = None) -> set[str]:
    """Kept conversations whose latest snapshot is older than `days`."""
    cutoff = (now or time.time()) - days * 86400
    return {cid for cid, s in sessions(folder).items() if float(s.meta.get("updated", 0)) < cutoff}


def delete(folder: Path, ids: set[str] = frozenset(), older_than_days: float | None = None) -> set[str]:
    """The operator's delete: these ids and/or everything not updated for `older_than_days`;
    the deleted ids are recorded as withdrawn so nothing of them comes back. Returns the ids."""
    st = StageDir(Path(folder), "conversations", private=True)
    chosen = set(ids) | (expired(folder, older_than_days) if older_than_days else set())
    for cid in sorted(chosen):
        st.append("withdrawn.jsonl", {"id": cid, "withdrawn": True, "time": time.time(), "by": "delete"})
    purge(folder, chosen)
    return chosen


def withdrawn(folder: Path) -> set[str]:
    """Conversation ids whose last opt-out record withdraws them."""
    last: dict[str, bool] = {}
    for d in read_jsonl_dicts(Path(folder) / "withdrawn.jsonl"):
        last[str(d.get("id"))] = d.get("withdrawn", True) is not False
    return {cid for cid, out in last.items() if out}


def snapshots(folder: Path) -> dict[str, dict[int, Session]]:
    """{conversation id: {number of turns: snapshot}} of every kept conversation (withdrawn excluded)."""
    gone = withdrawn(folder)
    out: dict[str, dict[int, Session]] = {}
    for d in read_jsonl_dicts(Path(folder) / "sessions.jsonl"):
        if d.get("id") not in gone:
            s = Session.model_validate(d)
            out.setdefault(s.id, {})[len(s.messages)] = s
    return out


def sessions(folder: Path) -> dict[str, Session]:
    """The latest snapshot of every kept conversation (withdrawn ones excluded)."""
    return {cid: snaps[max(snaps)] for cid, snaps in snapshots(folder).items()}


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
    for cid, snaps in snapshots(folder).items():
        state = folded.get(cid) or {}
        s = snaps.get(state.get("snapshot") or 0)  # exactly what the reviewer saw, never turns added since
        if state.get("verdict") != "accept" or s is None:
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
