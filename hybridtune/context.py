"""The run context every stage receives, and the resumable per-item stage runner.

    with open_run(cfg) as ctx:                  # lock, resolved config, cache, usage
        ctx.run_stage("synth", sessions.run)     # hybridtune.synth.sessions; skipped when done, marker written last

Inside a stage, `map_items` runs an async `fn(key, item)` over work items with bounded
concurrency, appends each result the moment it is ready, skips items already done (so a
killed stage resumes), records failures with their raw text, and fails loudly when the
failure rate passes `llm.max_failure_rate`. `regenerate` retries one item's bad model
output (next sample index) and keeps the replaced attempts in failures.jsonl.

    res = await map_items(ctx, st, [(p.id, p) for p in personas], one, "drafts.jsonl")
    drafts = res.records(Draft)              # in key order, including those done before a crash
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import ExperimentConfig
from .domain import Domain, load_domain
from .errors import StructuredOutputError, TooManyFailures, UserError
from .llm import LLM, LLMPool, ResponseCache, Usage
from .records import Failure, stable_id
from .stages import batches
from .store import RunStore, StageDir, atomic_write

T = TypeVar("T")
R = TypeVar("R", bound=BaseModel)


@dataclass
class Context:
    cfg: ExperimentConfig
    store: RunStore
    llms: LLMPool
    domain: Domain
    console: Console = field(default_factory=lambda: Console(stderr=True))

    @property
    def quiet(self) -> bool:
        return self.cfg.quiet

    def llm(self, role: str) -> LLM:
        return self.llms.role(role)

    def log(self, msg: str) -> None:
        if not self.quiet:
            self.console.print(msg)

    @property
    def system_prompt(self) -> str:
        return (self.cfg.system_prompt or self.domain.system_prompt).strip()

    def progress(self) -> Progress:
        return Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            console=self.console, disable=self.quiet, transient=False,
        )

    def record_failure(self, st: StageDir, item: str, err: Exception, attempt: int | None = None) -> None:
        """An item's failure in `st`/failures.jsonl, with the model's raw text when there is one.

        `attempt` given: a failed attempt that will be replaced (regenerated), kept and counted."""
        raw, attempts = (err.raw[:4000], err.attempts) if isinstance(err, StructuredOutputError) else ("", 1)
        error = str(err) if isinstance(err, StructuredOutputError) else f"{type(err).__name__}: {str(err)[:500]}"
        key = (st.name, item, "attempt", attempt) if attempt is not None else (st.name, item, time.time())
        extra = {"replaced": True} if attempt is not None else {}
        st.append("failures.jsonl", Failure(id=stable_id(*key), stage=st.name, item=item, error=error, raw=raw,
                                            attempts=attempts, **extra))

    def arun(self, coro: Awaitable[T]) -> T:
        """Run a coroutine to the end, then close the HTTP clients made in its event loop."""
        return asyncio.run(self._closing(coro))

    def enter_stage(self, name: str) -> None:
        """Count the model calls that follow under stage `name`, and let them wait for a provider batch
        (`llm.batch`) when that stage's declaration says it batches."""
        self.llms.usage.stage = name
        self.llms.batching = batches(name)

    def run_stage(self, name: str, fn: Callable[[Context, StageDir], Any], *, force: bool = False) -> dict:
        """Run one stage unless its completion marker exists; the marker is written last, after the
        stage's summary.json (the stage's own, or else the dict it returned)."""
        st = self.store.stage(name)
        if st.is_done() and not force:
            self.log(f"[dim]{name}: done already, skipped[/dim]")
            return st.summary()
        st.reset()
        self.enter_stage(name)
        t0 = time.time()
        try:
            result = fn(self, st)
            if asyncio.iscoroutine(result):
                result = self.arun(result)
        finally:
            self.llms.usage.save()
        summary = {"stage": name, "seconds": round(time.time() - t0, 2), **(result or {})}
        if not st.file(st.SUMMARY).exists():  # a stage with nothing more to say: its summary is what it returned
            st.write_summary(summary)
        st.mark_done(summary)
        return summary

    async def _closing(self, coro):
        """Run a stage's coroutine, then close the HTTP clients made in its event loop
        (they cannot be closed once the loop is gone)."""
        try:
            return await coro
        finally:
            await self.llms.aclose()


@contextlib.contextmanager
def open_run(cfg: ExperimentConfig, *, pool: LLMPool | None = None, root: Path | None = None,
             lock: bool = True) -> Iterator[Context]:
    """The only way to make a Context: over `cfg.run_dir` (or `root`), with its pool and domain.

    lock=True (a run that writes): lock the directory, write the resolved config, open the
    cache and usage ledger in it, save usage and close the pool on exit.
    lock=False (a long-lived reader such as chat, which must not block a run): no lock, no
    files written, nothing closed on exit; the caller owns `pool`.
    """
    store = RunStore(root or cfg.run_dir)
    if not lock:
        yield Context(cfg=cfg, store=store, llms=pool or LLMPool(cfg.pool_config()), domain=load_domain(cfg.domain))
        return
    with store.locked():
        # atomic_write's temp file is created 0600 and renamed: the resolved config is readable by its owner only
        atomic_write(store.path("config.yaml"), yaml.safe_dump(cfg.resolved_dict(), sort_keys=False))
        if pool is None:
            cache = ResponseCache(store.path("cache.sqlite")) if cfg.llm.cache else None
            usage = Usage(cfg.llm.prices, cfg.llm.budget_usd, store.path("usage.json"))
            pool = LLMPool(cfg.pool_config(), cache=cache, usage=usage)
        elif pool.usage.path is None:
            pool.usage.path = store.path("usage.json")
        ctx = Context(cfg=cfg, store=store, llms=pool, domain=load_domain(cfg.domain))
        try:
            yield ctx
        finally:
            pool.usage.save()
            with contextlib.suppress(Exception):
                asyncio.run(pool.aclose())


@dataclass
class MapResult:
    done: int = 0
    skipped: int = 0
    failed: int = 0
    keys: list[str] = field(default_factory=list)
    stage: StageDir | None = None
    out_file: str = ""

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed}

    def records(self, model: type[R]) -> list[R]:
        """The items' records that exist (made now or in an earlier run), in key order."""
        assert self.stage is not None
        have = {r.id: r for r in self.stage.read(self.out_file, model)}
        return [have[k] for k in self.keys if k in have]


async def map_items(
    ctx: Context,
    stage: StageDir,
    items: Sequence[tuple[str, T]],
    fn: Callable[[str, T], Awaitable[BaseModel | None]],
    out_file: str,
    *,
    label: str | None = None,
    concurrency: int = 4,
) -> MapResult:
    """Apply `fn(key, item)` to each (key, item); the record it returns must have `id == key`.

    Items whose key is already in `out_file` are skipped (resume). `fn` returning None
    means "nothing to keep" and is recorded in `skipped.jsonl` so it is not redone.
    `.records(Model)` of the result reads them back in key order.
    """
    have = stage.ids(out_file) | stage.ids("skipped.jsonl")
    todo = [(k, it) for k, it in items if k not in have]
    res = MapResult(skipped=len(items) - len(todo), keys=[k for k, _ in items], stage=stage, out_file=out_file)
    if ctx.cfg.llm.batch and ctx.llms.batching:
        concurrency = max(concurrency, len(todo))  # every item's request goes into one provider batch
    sem = asyncio.Semaphore(concurrency)
    t0 = time.time()
    with ctx.progress() as bar:
        task = bar.add_task(label or f"{stage.name}", total=len(items), completed=res.skipped, rate="")

        async def one(key: str, item: T) -> None:
            async with sem:
                try:
                    rec = await fn(key, item)
                except (UserError, asyncio.CancelledError):
                    raise
                except Exception as e:  # one bad item never stops the stage
                    res.failed += 1
                    ctx.record_failure(stage, key, e)
                else:
                    if rec is None:
                        stage.append("skipped.jsonl", {"id": key})
                    else:
                        assert getattr(rec, "id", None) == key, f"{stage.name}: record id {rec.id!r} != item key {key!r}"
                        stage.append(out_file, rec)
                    res.done += 1
                n = res.done + res.failed
                bar.update(task, advance=1, rate=f"{n / max(time.time() - t0, 1e-9):.2f}/s")

        await asyncio.gather(*(one(k, it) for k, it in todo))
    total = len(items)  # the rate is over the whole stage, including items done in an earlier run
    if total and res.failed / total > ctx.cfg.llm.max_failure_rate:
        raise TooManyFailures(
            f"{stage.name}: {res.failed} of {total} items failed (> llm.max_failure_rate="
            f"{ctx.cfg.llm.max_failure_rate}); see {stage.file('failures.jsonl')}. Rerun to retry them."
        )
    return res


async def regenerate(
    ctx: Context,
    st: StageDir | None,
    key: str,
    attempt_fn: Callable[[int], Awaitable[T]],
    tries: int,
    *,
    ok: Callable[[T], bool] = lambda _: True,
    rank: Callable[[T], float] | None = None,
    first: int = 0,
) -> T:
    """Ask for one item's output up to `tries` times until `ok(result)`; bad model output is retried.

    `attempt_fn(n)` makes attempt n (use n as the sample index: first, first+1, ...). An attempt
    that raises StructuredOutputError is recorded as replaced in failures.jsonl and the next one
    is made. When no result is ok, the best valid one is returned (highest `rank`, earliest on
    ties; without `rank`, the last); when none was valid the last error is raised (and
    `map_items` records the item as failed).
    """
    best: T | None = None
    have = False
    last_err: StructuredOutputError | None = None
    for n in range(first, first + tries):
        try:
            result = await attempt_fn(n)
        except StructuredOutputError as e:
            if st is not None:
                ctx.record_failure(st, key, e, attempt=n)
            last_err = e
            continue
        if not have or rank is None or rank(result) > rank(best):  # type: ignore[arg-type]
            best, have = result, True
        if ok(result):
            return result
    if not have:
        assert last_err is not None
        raise last_err
    return best  # type: ignore[return-value]
