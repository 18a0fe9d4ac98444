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
is 1,000,000 characters) sees it. A dropped session's `Drop` says why (`filters.DropKind`).
Resume: pass 1 is a `store.CheckpointedPass` over the input files (`_ingest.json`: byte offsets
of `_clean.jsonl`, `quarantine.jsonl` and the dedup journal `_dedup.jsonl`, plus the counters),
so a killed ingest with the same inputs and config continues after the last finished file and
writes the same bytes as an uninterrupted one; pass 2 resumes from its records and the
response cache.

    hybridtune ingest data/demo --out runs/x/real --no-llm
    hybridtune run configs/demo.yaml --stage real
"""
from __future__ import annotations

import itertools
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..context import Context
from ..errors import UserError
from ..meta import RealMeta
from ..records import QuarantineEntry, Session, TurnAnnotation, stable_id
from ..safety.policy import fixed_texts
from ..safety.screen import build_screener
from ..store import CheckpointedPass, StageDir, StreamWriter, fingerprint
from .annotate import annotate_enabled, annotate_sessions, ask_llm_about_speakers, attribute_with_llm, score_quality
from .clean import clean_turns, merge_turns
from .config import RealConfig
from .dedup import Deduper
from .filters import Drop, DropKind, first_failure
from .formats import BadInput, RawSession, expand_inputs, read_file
from .pii import Scrubber
from .report import write_reports
from .segment import segment


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


STATE, CLEAN, QUARANTINE, JOURNAL = "_ingest.json", "_clean.jsonl", "quarantine.jsonl", "_dedup.jsonl"


@dataclass(frozen=True)
class BrokenFile:
    """A file that stops parsing here: the sessions read before it are kept."""
    line: int | None
    reason: str


def _records(path: Path, cfg: RealConfig, fmt: str | None,
             scrub: Scrubber) -> Iterator[RawSession | BadInput | BrokenFile]:
    """The file's sessions and bad records (BadInput values), then a BrokenFile if parsing breaks."""
    sessions = read_file(path, cfg, fmt)
    while True:
        try:
            yield next(sessions)
        except StopIteration:
            return
        except UserError:
            raise
        except BadInput as e:
            yield BrokenFile(e.line, e.reason)
            return
        except Exception as e:  # a reader that breaks on odd input never stops the call
            detail = scrub.scrub_text(str(e)[:150])
            yield BrokenFile(None, f"could not parse ({type(e).__name__}: {detail}); check the format")
            return


def _too_long(texts: list[str], limit: int) -> Drop | None:
    """The drop when a turn is over the limit (checked before any spaCy call)."""
    for i, t in enumerate(texts):
        if len(t) > limit:
            return Drop(DropKind.TURN_TOO_LONG,
                        f"turn_too_long: turn {i + 1} has {len(t)} characters, "
                        f"over real.filters.max_turn_chars={limit}; "
                        "split it into turns (or raise the limit, at most 900000)")
    return None


def _unsure_attribution(att: dict | None, cfg: RealConfig) -> Drop | None:
    """Captions whose roles came from words alone, below real.attribution.min_confidence, with no LLM verdict."""
    if not (att and att.get("method") == "words" and att.get("llm") not in ("agreed", "flipped")):
        return None
    if att.get("confidence", 1) >= cfg.attribution.min_confidence:
        return None
    return Drop(DropKind.ATTRIBUTION_UNSURE,
                f"speaker attribution unsure: confidence {att['confidence']:.2f} < real.attribution.min_confidence="
                f"{cfg.attribution.min_confidence}; add '>>' marks or voice tags, or review the roles by hand")


async def _attribute(ctx: Context, raw: RawSession, turns: list, scrub: Scrubber, sid: str) -> Counter | None:
    """Ask the annotator about unsure caption roles; the turns are scrubbed first (never raw PII to a model).
    Returns the PII counts when it scrubbed, None when it did not ask."""
    att, below = raw.meta.get("attribution"), ctx.cfg.real.attribution.llm_below
    if not (att and ask_llm_about_speakers(ctx) and att.get("method") == "words"
            and (att.get("confidence", 1) < below or below >= 1)):
        return None
    texts, counts = scrub.scrub_session([t.text for t in turns], sid)
    for t, x in zip(turns, texts, strict=True):
        t.text = x
    raw.turns = turns
    await attribute_with_llm(ctx, raw)
    return counts


async def process(ctx: Context, raw: RawSession, scrub: Scrubber, stats: Stats, dd: Deduper) -> Session | Drop:
    """One raw session -> a clean, scrubbed Session, or the Drop saying why not.

    Dedup runs before scrubbing: per-session surrogates would make two copies of a transcript
    differ. Only hashes and MinHash signatures of the text are kept, never the text.
    """
    cfg = ctx.cfg.real
    sid = stable_id("real", Path(raw.file).name, raw.key, [t.text[:80] for t in raw.turns[:3]])
    turns = clean_turns(raw.turns, cfg.clean)
    if not turns:
        return Drop(DropKind.EMPTY, "empty: no text after cleaning")
    if drop := _too_long([t.text for t in turns], cfg.filters.max_turn_chars):
        return drop
    counts = await _attribute(ctx, raw, turns, scrub, sid)
    att = raw.meta.get("attribution")
    msgs = merge_turns(turns)
    drop = (_unsure_attribution(att, cfg) or _too_long([m.content for m in msgs], cfg.filters.max_turn_chars)
            or first_failure(msgs, cfg.filters))
    if drop:
        return drop
    if (dup := dd.check(sid, "\n".join(f"{m.role}: {m.content}" for m in msgs))) is not None:
        return Drop(DropKind.DUPLICATE, f"duplicate: of session {dup}")
    if counts is None:  # not scrubbed for attribution: scrub now
        texts, counts = scrub.scrub_session([m.content for m in msgs], sid)
        for m, x in zip(msgs, texts, strict=True):
            m.content = x
    stats.pii.update(counts)
    meta = RealMeta.model_validate({"file": raw.file, "format": raw.format, "source_key": raw.key, **raw.meta,
                                    "pii": dict(counts)}).dump()
    if att:
        stats.attribution.append(att.get("confidence", 1.0))
    return Session(id=sid, source="real", messages=msgs, meta=meta)


async def ingest(ctx: Context, st: StageDir, files: list[Path], fmt: str | None = None) -> dict:
    """Run the whole stage over `files` into `st`; returns the summary (also in summary.json)."""
    cfg = ctx.cfg.real
    t0 = time.time()
    run = CheckpointedPass(st, STATE, fingerprint([cfg.model_dump(mode="json"), ctx.cfg.seed, fmt], files),
                           (CLEAN, QUARANTINE, JOURNAL))
    stats = Stats.from_json(run.state.counters)
    dd = Deduper(cfg.dedup, "sessions")
    for event in run.lines(JOURNAL):
        dd.replay(event)
    if run.committed:
        ctx.log(f"real: pass 1 done already ({len(files)} files), resuming after it")
    else:
        await _pass1(ctx, files, fmt, run, stats, dd)
    llm = await llm_steps(ctx, st) if cfg.llm else {}
    out = finish(ctx, st, llm)
    summary = {
        "files_in": stats.steps["files_in"], "files_quarantined": stats.quarantined_files,
        "records_quarantined": stats.quarantined_records,
        "quarantine_entries": run.state.writers[QUARANTINE].n, "sessions_in": stats.steps["sessions_in"],
        "after_filters": stats.steps["after_filters"], "after_dedup": stats.steps["after_dedup"],
        **out, "llm": llm, "seconds": round(time.time() - t0, 2),
    }
    write_reports(st, summary, stats, dd, llm, out)
    return summary


@dataclass
class _Pass1:
    """Pass 1 over one file at a time: read -> process -> safety screen -> `_clean.jsonl`, drops quarantined."""
    ctx: Context
    stats: Stats
    dd: Deduper
    clean: StreamWriter
    quarantine: StreamWriter
    scrub: Scrubber
    screener: Any

    def full(self) -> bool:
        """real.max_sessions reached."""
        limit = self.ctx.cfg.real.max_sessions
        return bool(limit) and self.stats.steps["sessions_in"] >= limit

    async def file(self, path: Path, fmt: str | None) -> None:
        self.stats.steps["files_in"] += 1
        for item in _records(path, self.ctx.cfg.real, fmt, self.scrub):
            if self.full():
                break
            if isinstance(item, BrokenFile):
                self.stats.quarantined_files += 1
                self._quarantine(str(path), item.line, item.reason, log=True)
            elif isinstance(item, BadInput):  # one bad record: quarantined, the rest of the file is read
                self.stats.quarantined_records += 1
                self._quarantine(str(path), item.line, item.reason, log=True)
            else:
                await self._session(item)

    async def _session(self, raw: RawSession) -> None:
        self.stats.steps["sessions_in"] += 1
        self.stats.formats[raw.format] += 1
        try:
            got = await process(self.ctx, raw, self.scrub, self.stats, self.dd)
        except UserError:
            raise
        except Exception as e:  # one session that breaks a library never stops the call
            got = Drop(DropKind.FAILED, f"failed: could not process it ({type(e).__name__}); check its text")
        if isinstance(got, Drop):
            self._drop(raw, got)
            return
        self.stats.steps["after_filters"] += 1
        await self._screen(got)
        self.stats.steps["after_dedup"] += 1
        self.clean.write(got)

    def _drop(self, raw: RawSession, drop: Drop) -> None:
        if drop.kind is DropKind.DUPLICATE:  # past the filters; reported in the duplicate clusters
            self.stats.steps["after_filters"] += 1
            return
        self.stats.filters[drop.kind.value] += 1
        self.stats.quarantined_records += drop.bad_record
        self._quarantine(raw.file, raw.line, f"session {raw.key} dropped: {drop.reason}")

    async def _screen(self, session: Session) -> None:
        """The same layered screen and policy as chat; a person's risk is the max over their turns. Only a
        `crisis_reply` action sends the session to review as a crisis session; a `check_in` is recorded."""
        if self.screener is None:
            session.meta["safety"] = {"risk": "unscreened"}
            return
        risk = await self.screener.screen_session(session)
        session.meta["safety"] = {"risk": risk.risk, "categories": list(risk.categories),
                                  "evidence": [e[:160] for e in risk.evidence],
                                  "action": risk.model_extra["action"],
                                  "action_turns": risk.model_extra["action_turns"],
                                  "review": risk.model_extra["action"] == "crisis_reply",
                                  "source": risk.source, "turns": risk.model_extra.get("turns", [])}
        self.stats.safety[risk.risk] += 1

    def _quarantine(self, file: str, line: int | None, reason: str, log: bool = False) -> None:
        self.quarantine.write(QuarantineEntry(id=stable_id("quarantine", file, line, reason), file=file, line=line,
                                              reason=reason))
        if log:
            self.ctx.log(f"[yellow]quarantined[/yellow] {file}{f':{line}' if line else ''}: {reason}")


async def _pass1(ctx: Context, files: list[Path], fmt: str | None, run: CheckpointedPass, stats: Stats,
                 dd: Deduper) -> None:
    """Pass 1 over the files not done yet, checkpointing after each, then committed."""
    cfg = ctx.cfg.real
    writers = run.open()
    dd.journal = writers[JOURNAL].write
    screener = build_screener(ctx.cfg, ctx.llms, ctx.domain) if cfg.safety_screen else None
    scrub = Scrubber(cfg.pii, seed=ctx.cfg.seed, protected=fixed_texts(ctx.cfg.safety, ctx.domain))
    p = _Pass1(ctx, stats, dd, writers[CLEAN], writers[QUARANTINE], scrub, screener)
    if run.done:
        ctx.log(f"real: resuming after {run.done} of {len(files)} files (checkpoint {run.st.file(STATE)})")
    with ctx.progress() as bar:  # files done with an ETA, sessions read so far
        task = bar.add_task("real: read, clean, scrub", total=len(files), completed=run.done, rate="")
        for i, path in enumerate(files[run.done:], run.done):
            if p.full():
                break
            await p.file(path, fmt)
            run.checkpoint(i + 1, stats.to_json())
            bar.update(task, advance=1, rate=f"{stats.steps['sessions_in']} sessions")
    run.commit(len(files), stats.to_json())


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
