"""The `real` stage: real transcripts -> clean, de-identified, deduplicated, annotated sessions and samples.

Input: `cfg.real.inputs` (files/folders; formats in formats.py, captions.py).
Output in the stage dir (runs/<name>/real/ or `hybridtune ingest --out DIR`):
  sessions.jsonl   Session(source="real"), scrubbed, with meta (file, format, attribution, pii, safety)
                   and per-turn annotations
  samples.jsonl    Sample(kind=session|qa) in the `messages` format, deduplicated
  quarantine.jsonl QuarantineEntry: unusable files and dropped sessions, with file, line, reason
  annotations.jsonl, quality.jsonl   LLM results (resumable; merged into sessions.jsonl)
  summary.json, report.md            counts per step, PII by type, duplicates, distributions

Pass 1 streams sessions one at a time (memory stays flat): parse -> clean -> [LLM speaker
attribution when unsure] -> merge turns -> filters -> dedup -> PII scrub -> safety screen ->
`_clean.jsonl`. Pass 2 runs the bounded LLM steps (annotation, optional quality score).
Pass 3 streams `_clean.jsonl` into sessions.jsonl + samples.jsonl. Nothing unscrubbed is
written, logged or sent to a model (attribution scrubs first).

Bad input never stops the call: an unreadable file, one bad record of a file (a JSONL line)
and a session that fails to process are each one quarantine entry, and the rest goes on;
a turn longer than `real.filters.max_turn_chars` is quarantined before spaCy (whose limit
is 1,000,000 characters) sees it. Resume: after each input file pass 1 checkpoints
(`_ingest.json`: byte offsets of its temp files, counters, and the dedup journal
`_dedup.jsonl`), so a killed ingest with the same inputs and config continues after the
last finished file and writes the same bytes as an uninterrupted one; pass 2 resumes from
its records and the response cache.

    hybridtune ingest ../shared/data/annomi/AnnoMI-simple.csv --out runs/x/real --no-llm
    hybridtune run configs/demo.yaml --stage real
"""
from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..context import Context
from ..errors import UserError
from ..meta import RealMeta
from ..records import QuarantineEntry, Session, TurnAnnotation, stable_id
from ..safety.policy import fixed_texts
from ..safety.screen import build_screener
from ..store import StageDir, dump_json
from .annotate import annotate_enabled, annotate_sessions, ask_llm_about_speakers, attribute_with_llm, score_quality
from .clean import clean_turns, merge_turns
from .dedup import Deduper
from .filters import first_failure
from .formats import BadInput, RawSession, expand_inputs, read_file
from .pii import Scrubber
from .report import write_reports
from .segment import segment


class StreamWriter:
    """JSONL written to a temp file and renamed on commit: a killed pass leaves the old file intact.

    `resume` (a `checkpoint()` of a killed pass) reopens its temp file cut back to that point."""

    def __init__(self, st: StageDir, name: str, resume: dict | None = None):
        self.path = st.file(name)
        self.tmp = self.path.with_name(f".{name}.tmp")
        if resume is not None:
            self.f: IO[bytes] = self.tmp.open("r+b")
            self.f.truncate(resume["bytes"])
            self.f.seek(resume["bytes"])
            self.n = resume["n"]
        else:
            self.f = self.tmp.open("wb")
            self.n = 0

    def write(self, rec: Any) -> None:
        self.f.write((dump_json(rec) + "\n").encode("utf-8"))
        self.n += 1

    def checkpoint(self) -> dict:
        self.f.flush()
        os.fsync(self.f.fileno())
        return {"bytes": self.f.tell(), "n": self.n}

    def commit(self) -> int:
        self.checkpoint()
        self.f.close()
        os.replace(self.tmp, self.path)
        return self.n


@dataclass
class Stats:
    steps: Counter = field(default_factory=Counter)
    filters: Counter = field(default_factory=Counter)
    pii: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    safety: Counter = field(default_factory=Counter)
    attribution: list[float] = field(default_factory=list)
    quarantined_files: int = 0
    quarantined_records: int = 0  # bad records and sessions that failed, not ordinary filter drops

    def to_json(self) -> dict:
        return {k: dict(v) if isinstance(v, Counter) else v for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, d: dict) -> Stats:
        return cls(**{k: Counter(v) if isinstance(getattr(cls(), k), Counter) else v for k, v in d.items()})


STATE, JOURNAL = "_ingest.json", "_dedup.jsonl"


def fingerprint(ctx: Context, files: list[Path], fmt: str | None) -> str:
    """What pass 1's output depends on: the input files (path, size, mtime), the real config, seed, format."""
    h = hashlib.sha256(json.dumps([ctx.cfg.real.model_dump(mode="json"), ctx.cfg.seed, fmt]).encode())
    for f in files:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _quarantine(q: StreamWriter, scrub: Scrubber, file: str, line: int | None, reason: str, excerpt: str = "") -> None:
    q.write(QuarantineEntry(id=stable_id("quarantine", file, line, reason), file=file, line=line, reason=reason,
                            excerpt=scrub.scrub_text(excerpt[:200]) if excerpt and scrub.cfg.enabled else ""))


def _too_long(texts: list[str], limit: int) -> str | None:
    """The drop reason when a turn is over the limit (checked before any spaCy call)."""
    for i, t in enumerate(texts):
        if len(t) > limit:
            return (f"turn_too_long: turn {i + 1} has {len(t)} characters, over real.filters.max_turn_chars={limit}; "
                    "split it into turns (or raise the limit, at most 900000)")
    return None


async def process(ctx: Context, raw: RawSession, scrub: Scrubber, st_: Stats, dd: Deduper) -> tuple[Session | None, str | None]:
    """One raw session -> a clean, scrubbed Session, or (None, reason it was dropped).

    Dedup runs before scrubbing: per-session surrogates would make two copies of a transcript
    differ. Only hashes and MinHash signatures of the text are kept, never the text.
    """
    cfg = ctx.cfg.real
    sid = stable_id("real", Path(raw.file).name, raw.key, [t.text[:80] for t in raw.turns[:3]])
    turns = clean_turns(raw.turns, cfg.clean)
    if not turns:
        return None, "empty: no text after cleaning"
    if too_long := _too_long([t.text for t in turns], cfg.filters.max_turn_chars):
        return None, too_long
    att = raw.meta.get("attribution")
    scrubbed = False
    below = cfg.attribution.llm_below
    if att and ask_llm_about_speakers(ctx) and att.get("method") == "words" and (att.get("confidence", 1) < below or below >= 1):
        texts, counts = scrub.scrub_session([t.text for t in turns], sid)  # never send raw PII to a model
        for t, x in zip(turns, texts, strict=True):
            t.text = x
        scrubbed = True
        raw.turns = turns
        await attribute_with_llm(ctx, raw)
    if (att and att.get("method") == "words" and att.get("llm") not in ("agreed", "flipped")
            and att.get("confidence", 1) < cfg.attribution.min_confidence):  # captions whose roles came from words alone
        return None, (f"speaker attribution unsure: confidence {att['confidence']:.2f} < real.attribution.min_confidence="
                      f"{cfg.attribution.min_confidence}; add '>>' marks or voice tags, or review the roles by hand")
    msgs = merge_turns(turns)
    reason = _too_long([m.content for m in msgs], cfg.filters.max_turn_chars) or first_failure(msgs, cfg.filters)
    if reason:
        return None, reason
    dup = dd.check(sid, "\n".join(f"{m.role}: {m.content}" for m in msgs))
    if dup is not None:
        return None, f"duplicate: of session {dup}"
    if not scrubbed:
        texts, counts = scrub.scrub_session([m.content for m in msgs], sid)
        for m, x in zip(msgs, texts, strict=True):
            m.content = x
    else:
        msgs = merge_turns(turns)
    st_.pii.update(counts)
    meta = RealMeta.model_validate({"file": raw.file, "format": raw.format, "source_key": raw.key, **raw.meta,
                                    "pii": dict(counts)}).dump()
    if att:
        st_.attribution.append(att.get("confidence", 1.0))
    return Session(id=sid, source="real", messages=msgs, meta=meta), None


async def ingest(ctx: Context, st: StageDir, files: list[Path], fmt: str | None = None) -> dict:
    """Run the whole stage over `files` into `st`; returns the summary (also in summary.json)."""
    cfg = ctx.cfg.real
    t0 = time.time()
    fp = fingerprint(ctx, files, fmt)
    state = st.read_json(STATE) or {}
    if state.get("fingerprint") != fp or not (state.get("committed") or all(
            (w := st.file(f".{name}.tmp")).exists() and w.stat().st_size >= state["writers"][name]["bytes"]
            for name in ("_clean.jsonl", "quarantine.jsonl", JOURNAL))):
        state = {}  # other inputs or config, or nothing to resume: start over
    stats = Stats.from_json(state["stats"]) if state else Stats()
    journal_file = st.file(JOURNAL if state.get("committed") else f".{JOURNAL}.tmp")
    dd = Deduper(cfg.dedup, "sessions")
    if state:
        with journal_file.open("rb") as f:
            for line in itertools.islice(f, state["writers"][JOURNAL]["n"]):
                dd.replay(json.loads(line))
    if state.get("committed"):
        ctx.log(f"real: pass 1 done already ({len(files)} files), resuming after it")
        n_quarantine = state["writers"]["quarantine.jsonl"]["n"]
    else:
        n_quarantine = await _pass1(ctx, st, files, fmt, fp, state, stats, dd)
    llm = await llm_steps(ctx, st) if cfg.llm else {}
    out = finish(ctx, st, llm)
    summary = {
        "files_in": stats.steps["files_in"], "files_quarantined": stats.quarantined_files,
        "records_quarantined": stats.quarantined_records,
        "quarantine_entries": n_quarantine, "sessions_in": stats.steps["sessions_in"],
        "after_filters": stats.steps["after_filters"], "after_dedup": stats.steps["after_dedup"],
        **out, "llm": llm, "seconds": round(time.time() - t0, 2),
    }
    write_reports(st, summary, stats, dd, llm, out)
    return summary


async def _pass1(ctx: Context, st: StageDir, files: list[Path], fmt: str | None, fp: str, state: dict,
                 stats: Stats, dd: Deduper) -> int:
    """Pass 1 over the files not done yet, checkpointing after each; returns the quarantine count."""
    cfg = ctx.cfg.real
    scrub = Scrubber(cfg.pii, seed=ctx.cfg.seed, protected=fixed_texts(ctx.cfg.safety, ctx.domain))
    screener = build_screener(ctx.cfg, ctx.llms, ctx.domain) if cfg.safety_screen else None
    w = state.get("writers", {})
    clean = StreamWriter(st, "_clean.jsonl", w.get("_clean.jsonl"))
    q = StreamWriter(st, "quarantine.jsonl", w.get("quarantine.jsonl"))
    journal = StreamWriter(st, JOURNAL, w.get(JOURNAL))
    dd.journal = journal.write
    done = state.get("files_done", 0)
    if done:
        ctx.log(f"real: resuming after {done} of {len(files)} files (checkpoint {st.file(STATE)})")

    def checkpoint(files_done: int, committed: bool = False) -> None:
        writers = {"_clean.jsonl": clean, "quarantine.jsonl": q, JOURNAL: journal}
        st.write_json(STATE, {"fingerprint": fp, "files_done": files_done, "committed": committed,
                              "stats": stats.to_json(),
                              "writers": {k: ({"bytes": v.path.stat().st_size, "n": v.n} if committed else v.checkpoint())
                                          for k, v in writers.items()}})

    with ctx.progress() as bar:  # files done with an ETA, sessions read so far
        task = bar.add_task("real: read, clean, scrub", total=len(files), completed=done, rate="")
        for i, path in enumerate(files[done:], done):
            if cfg.max_sessions and stats.steps["sessions_in"] >= cfg.max_sessions:
                break
            stats.steps["files_in"] += 1
            sessions = read_file(path, cfg, fmt)
            while not (cfg.max_sessions and stats.steps["sessions_in"] >= cfg.max_sessions):
                try:
                    raw = next(sessions)
                except StopIteration:
                    break
                except (BadInput, Exception) as e:  # the file breaks here; sessions before it are kept
                    if isinstance(e, UserError):
                        raise
                    line, reason = (e.line, e.reason) if isinstance(e, BadInput) else (
                        None, f"could not parse ({type(e).__name__}: {scrub.scrub_text(str(e)[:150])}); check the format")
                    stats.quarantined_files += 1
                    _quarantine(q, scrub, str(path), line, reason)
                    ctx.log(f"[yellow]quarantined[/yellow] {path}{f':{line}' if line else ''}: {reason}")
                    break
                if isinstance(raw, BadInput):  # one bad record: quarantined, the rest of the file is read
                    stats.quarantined_records += 1
                    _quarantine(q, scrub, str(path), raw.line, raw.reason)
                    ctx.log(f"[yellow]quarantined[/yellow] {path}{f':{raw.line}' if raw.line else ''}: {raw.reason}")
                    continue
                stats.steps["sessions_in"] += 1
                stats.formats[raw.format] += 1
                try:
                    session, reason = await process(ctx, raw, scrub, stats, dd)
                except UserError:
                    raise
                except Exception as e:  # one session that breaks a library never stops the call
                    session, reason = None, f"failed: could not process it ({type(e).__name__}); check its text"
                if reason and reason.startswith("duplicate"):
                    stats.steps["after_filters"] += 1
                    continue  # reported in the duplicate clusters
                if session is None:
                    stats.filters[reason.split(":")[0]] += 1
                    if reason.startswith(("turn_too_long", "failed")):
                        stats.quarantined_records += 1
                    _quarantine(q, scrub, raw.file, raw.line, f"session {raw.key} dropped: {reason}")
                    continue
                stats.steps["after_filters"] += 1
                if screener is not None:  # the same layered screen as chat; a person's risk = max over their turns
                    risk = await screener.screen_session(session)
                    session.meta["safety"] = {"risk": risk.risk, "categories": list(risk.categories),
                                              "evidence": [e[:160] for e in risk.evidence], "review": risk.risk in ("high", "imminent"),
                                              "source": risk.source, "turns": risk.model_extra.get("turns", [])}
                    stats.safety[risk.risk] += 1
                else:
                    session.meta["safety"] = {"risk": "unscreened"}
                stats.steps["after_dedup"] += 1
                clean.write(session)
            checkpoint(i + 1)
            bar.update(task, advance=1, rate=f"{stats.steps['sessions_in']} sessions")
    for wr in (clean, q, journal):
        wr.commit()
    checkpoint(len(files), committed=True)
    return q.n


async def llm_steps(ctx: Context, st: StageDir) -> dict:
    cfg = ctx.cfg.real
    res: dict = {}
    if annotate_enabled(ctx):
        n = cfg.annotate.max_sessions
        sessions = list(itertools.islice(st.read("_clean.jsonl", Session), n))
        res["annotate"] = await annotate_sessions(ctx, st, sessions)
    if cfg.filters.llm_quality_min is not None:
        res["quality"] = await score_quality(ctx, st, list(st.read("_clean.jsonl", Session)))
    return res


def finish(ctx: Context, st: StageDir, llm: dict) -> dict:
    """Stream `_clean.jsonl` into sessions.jsonl (+annotations, quality filter) and samples.jsonl."""
    cfg = ctx.cfg.real
    anns: dict[str, list[TurnAnnotation]] = {}
    prompt = ""
    for rec in st.read_dicts("annotations.jsonl"):
        anns.setdefault(rec["session_id"], []).append(TurnAnnotation.model_validate(rec["annotation"]))
        prompt = rec.get("prompt", prompt)
    quality = {r["session_id"]: r for r in st.read_dicts("quality.jsonl")}
    sdd = Deduper(cfg.dedup, "samples")
    sessions_w, samples_w = StreamWriter(st, "sessions.jsonl"), StreamWriter(st, "samples.jsonl")
    dist = {"techniques": Counter(), "emotions": Counter(), "distortions": Counter()}
    kinds: Counter = Counter()
    low_quality = 0
    for s in st.read("_clean.jsonl", Session):
        if s.id in quality:
            s.meta["quality"] = {k: quality[s.id][k] for k in ("score", "reason", "prompt")}
            if cfg.filters.llm_quality_min and quality[s.id]["score"] < cfg.filters.llm_quality_min:
                low_quality += 1
                continue
        if s.id in anns:
            s.annotations = sorted(anns[s.id], key=lambda a: a.index)
            s.meta["annotation"] = {"prompt": prompt, "turns": len(s.annotations)}
            for a in s.annotations:
                dist["techniques"].update(a.techniques)
                dist["distortions"].update(a.distortions)
                if a.emotion:
                    dist["emotions"][a.emotion] += 1
        sessions_w.write(s)
        for sample in segment(s, cfg.segment, ctx.system_prompt):
            kinds[f"{sample.kind}_in"] += 1
            body = "\n".join(f"{m.role}: {m.content}" for m in sample.messages if m.role != "system")
            if sdd.check(sample.id, f"{sample.kind}\n{body}") is None:
                samples_w.write(sample)
                kinds[sample.kind] += 1
    return {
        "sessions_out": sessions_w.commit(), "samples_out": samples_w.commit(),
        "dropped_llm_quality": low_quality, "samples": dict(kinds), "sample_duplicates": sdd.counts(),
        "distributions": {k: dict(v.most_common()) for k, v in dist.items()},
    }


async def run(ctx: Context, st: StageDir) -> dict:
    """Pipeline stage `real`: ingest `cfg.real.inputs` (never the run's own folder)."""
    if not ctx.cfg.real.inputs:
        raise UserError("real.inputs: no transcripts configured; set real.inputs to files or folders (e.g. [data/demo])")
    return await ingest(ctx, st, expand_inputs(ctx.cfg.real.inputs, exclude=st.path))
