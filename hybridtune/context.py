"""The run context every stage receives, and the resumable per-item stage runner.

    with open_run(cfg) as ctx:                  # lock, resolved config, cache, usage
        ctx.run_stage("synth", synth.stage.run)  # skipped when done; marker written last

Inside a stage, `map_items` runs an async function over work items with bounded
concurrency, appends each result the moment it is ready, skips items already done (so a
killed stage resumes), records failures with their raw text, and fails loudly when the
failure rate passes `llm.max_failure_rate`.
"""
from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
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
from .store import RunStore, StageDir

T = TypeVar("T")


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

    def run_stage(self, name: str, fn: Callable[[Context, StageDir], Any], *, force: bool = False) -> dict:
        """Run one stage unless its completion marker exists; the marker is written last."""
        st = self.store.stage(name)
        if st.is_done() and not force:
            self.log(f"[dim]{name}: done already, skipped[/dim]")
            return st.summary()
        st.reset()
        self.llms.usage.stage = name
        t0 = time.time()
        try:
            result = fn(self, st)
            if asyncio.iscoroutine(result):
                result = asyncio.run(self._closing(result))
        finally:
            self.llms.usage.save()
        summary = {"stage": name, "seconds": round(time.time() - t0, 2), **(result or {})}
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
def open_run(cfg: ExperimentConfig, *, pool: LLMPool | None = None) -> Iterator[Context]:
    """Lock the run directory, write the resolved config, open cache and usage ledger."""
    store = RunStore(cfg.run_dir)
    with store.locked():
        (store.root / "config.yaml").write_text(yaml.safe_dump(cfg.resolved_dict(), sort_keys=False))
        if pool is None:
            cache = ResponseCache(store.path("cache.sqlite")) if cfg.llm.cache else None
            usage = Usage(cfg.llm.prices, cfg.llm.budget_usd, store.path("usage.json"))
            pool = LLMPool(cfg, cache=cache, usage=usage)
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

    def as_dict(self) -> dict:
        return {"done": self.done, "skipped": self.skipped, "failed": self.failed}


async def map_items(
    ctx: Context,
    stage: StageDir,
    items: Sequence[tuple[str, T]],
    fn: Callable[[T], Awaitable[BaseModel | None]],
    out_file: str,
    *,
    label: str | None = None,
    concurrency: int = 4,
    role: str = "-",
) -> MapResult:
    """Apply `fn` to each (key, item); the record it returns must have `id == key`.

    Items whose key is already in `out_file` are skipped (resume). `fn` returning None
    means "nothing to keep" and is recorded in `skipped.jsonl` so it is not redone.
    """
    have = stage.ids(out_file) | stage.ids("skipped.jsonl")
    todo = [(k, it) for k, it in items if k not in have]
    res = MapResult(skipped=len(items) - len(todo))
    sem = asyncio.Semaphore(concurrency)
    t0 = time.time()
    with ctx.progress() as bar:
        task = bar.add_task(label or f"{stage.name}", total=len(items), completed=res.skipped, rate="")

        async def one(key: str, item: T) -> None:
            async with sem:
                try:
                    rec = await fn(item)
                except (UserError, asyncio.CancelledError):
                    raise
                except StructuredOutputError as e:
                    res.failed += 1
                    stage.append("failures.jsonl", Failure(
                        id=stable_id(stage.name, key, time.time()), stage=stage.name, item=key, error=str(e),
                        raw=e.raw[:4000], attempts=e.attempts,
                    ))
                except Exception as e:  # one bad item never stops the stage
                    res.failed += 1
                    stage.append("failures.jsonl", Failure(
                        id=stable_id(stage.name, key, time.time()), stage=stage.name, item=key,
                        error=f"{type(e).__name__}: {str(e)[:500]}",
                    ))
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
