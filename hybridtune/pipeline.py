"""The experiment, stage by stage: real -> synthetic -> curate -> mix -> train -> evaluate -> report.

The stages and their order are declared in hybridtune/stages.py. Each is resumable: a
completed stage is skipped, a killed one continues from the records it has.

    from hybridtune.pipeline import run_pipeline
    run_pipeline(cfg)                       # every stage
    run_pipeline(cfg, only=["mix", "train"])
"""
from __future__ import annotations

import time
from collections.abc import Callable

from .config import ExperimentConfig
from .context import Context, open_run
from .errors import UserError
from .stages import domain_manifest, get, names, roles_needed


def stage_fn(name: str) -> Callable:
    return get(name).fn


def select(only: list[str] | None = None, start: str | None = None) -> list[str]:
    for n in [*(only or []), *([start] if start else [])]:
        get(n)  # unknown names: one clear error listing the stages
    order = names()
    order = order[order.index(start):] if start else order
    return [n for n in order if not only or n in only]


def check_domain(ctx: Context, chosen: list[str]) -> None:
    """Fail before any stage runs when the domain pack lacks a file a chosen stage reads."""
    files = sorted({f for fs in domain_manifest(ctx.cfg.evaluate.metrics, chosen).values() for f in fs})
    problems = ctx.domain.check(files)
    if problems:
        raise UserError(f"domain {ctx.domain.name}: {len(problems)} file(s) the selected stages need: "
                        + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
                        + f". See `hybridtune domain check {ctx.domain.root}`; copy what is missing from domains/cbt")


def run_pipeline(cfg: ExperimentConfig, only: list[str] | None = None, start: str | None = None,
                 force: bool = False, ctx: Context | None = None) -> dict[str, dict]:
    chosen = select(only, start)
    summaries: dict[str, dict] = {}
    if "train" in chosen:  # in seconds, before the run folder is even opened
        from .train.hardware import check_device

        check_device(cfg.train)

    def go(c: Context) -> None:
        from .preflight import check_before_run

        roles = roles_needed(chosen, cfg)
        c.llms.check(roles)
        check_domain(c, chosen)
        for line in check_before_run(cfg, chosen, roles):  # before the first model call, not at the train stage
            c.log(f"[dim]{line}[/dim]")
        t0 = time.time()
        for i, name in enumerate(chosen, 1):
            c.log(f"[bold cyan]== stage {i}/{len(chosen)}: {name}[/bold cyan]  (elapsed {time.time() - t0:.0f}s)")
            summaries[name] = c.run_stage(name, stage_fn(name), force=force and (not only or name in only))

    if ctx is not None:
        go(ctx)
    else:
        with open_run(cfg) as c:
            go(c)
    return summaries
