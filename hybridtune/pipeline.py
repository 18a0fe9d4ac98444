"""The experiment, stage by stage: real -> synthetic -> curate -> mix -> train -> evaluate -> report.

Each stage is a function `run(ctx, stage_dir) -> summary dict` in its package, resumable:
a completed stage is skipped, a killed one continues from the records it has.

    from hybridtune.pipeline import run_pipeline
    run_pipeline(cfg)                       # every stage
    run_pipeline(cfg, only=["mix", "train"])
"""
from __future__ import annotations

import importlib
import time
from collections.abc import Callable

from .config import ExperimentConfig
from .context import Context, open_run
from .errors import UserError

# (stage folder, "module:function") in run order. Evaluation scenarios come before mixing,
# so the training sets can be checked for contamination against them.
STAGES: list[tuple[str, str]] = [
    ("real", "hybridtune.real.stage:run"),
    ("personas", "hybridtune.synth.personas:run"),
    ("scenarios", "hybridtune.synth.scenarios:run"),
    ("synth", "hybridtune.synth.sessions:run"),
    ("curate", "hybridtune.curate.judge:run"),
    ("eval_scenarios", "hybridtune.evaluate.scenarios:run"),
    ("mix", "hybridtune.curate.mix:run"),
    ("train", "hybridtune.train.stage:run"),
    ("simulate", "hybridtune.evaluate.simulate:run"),
    ("score", "hybridtune.evaluate.score:run"),
    ("likelihood", "hybridtune.evaluate.likelihood:run"),
    ("calibrate", "hybridtune.evaluate.calibrate:run"),
    ("report", "hybridtune.evaluate.report:run"),
]
STAGE_NAMES = [s for s, _ in STAGES]


def stage_fn(name: str) -> Callable:
    target = dict(STAGES)[name]
    mod, fn = target.split(":")
    return getattr(importlib.import_module(mod), fn)


def select(only: list[str] | None = None, start: str | None = None) -> list[str]:
    for n in [*(only or []), *([start] if start else [])]:
        if n not in STAGE_NAMES:
            raise UserError(f"--stage {n}: unknown stage; stages are {', '.join(STAGE_NAMES)}")
    names = STAGE_NAMES[STAGE_NAMES.index(start):] if start else STAGE_NAMES
    return [n for n in names if not only or n in only]


def run_pipeline(cfg: ExperimentConfig, only: list[str] | None = None, start: str | None = None,
                 force: bool = False, ctx: Context | None = None) -> dict[str, dict]:
    names = select(only, start)
    summaries: dict[str, dict] = {}

    def go(c: Context) -> None:
        c.llms.check()
        t0 = time.time()
        for i, name in enumerate(names, 1):
            c.log(f"[bold cyan]== stage {i}/{len(names)}: {name}[/bold cyan]  (elapsed {time.time() - t0:.0f}s)")
            summaries[name] = c.run_stage(name, stage_fn(name), force=force and (not only or name in only))

    if ctx is not None:
        go(ctx)
    else:
        with open_run(cfg) as c:
            go(c)
    return summaries
