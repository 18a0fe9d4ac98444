"""CLI verbs of the evaluation stages (registered by hybridtune/cli.py):

    hybridtune eval-scenarios -c configs/demo.yaml     # held-out scenarios (generate or load)
    hybridtune simulate -c configs/demo.yaml           # simulated client x every variant
    hybridtune score -c configs/demo.yaml              # judge empathy / relevance
    hybridtune report -c configs/demo.yaml             # report.md + report.html (cached results only)

Each verb runs one pipeline stage through `Context.run_stage` (resumable; `--force` reruns a
finished stage, reusing the records it already has).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import ConfigOpt, QuietOpt, SetOpt, load

ForceOpt = Annotated[bool, typer.Option("--force", help="rerun even if the stage is done (finished records are reused)")]


def _stage(config: Path, sets: list[str] | None, quiet: bool, name: str, target: str, force: bool) -> dict:
    import importlib

    from ..context import open_run

    cfg = load(config, sets, quiet)
    mod, fn = target.split(":")
    with open_run(cfg) as ctx:
        summary = ctx.run_stage(name, getattr(importlib.import_module(mod), fn), force=force)
    typer.echo(", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, dict | list)))
    return summary


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""

    @app.command("eval-scenarios")
    def eval_scenarios(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, force: ForceOpt = False,
                       quiet: QuietOpt = False):
        """Make the held-out evaluation scenarios (generated on their own seed, or from evaluate.scenarios_file)."""
        _stage(config, set_, quiet, "eval_scenarios", "hybridtune.evaluate.scenarios:run", force)

    @app.command()
    def simulate(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, force: ForceOpt = False,
                 quiet: QuietOpt = False):
        """Simulate a client talking with every counselor variant on every evaluation scenario."""
        _stage(config, set_, quiet, "simulate", "hybridtune.evaluate.simulate:run", force)

    @app.command()
    def score(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, force: ForceOpt = False,
              quiet: QuietOpt = False):
        """Judge every simulated conversation (empathy and relevance 1-10, optional CTRS)."""
        _stage(config, set_, quiet, "score", "hybridtune.evaluate.score:run", force)

    @app.command()
    def report(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, quiet: QuietOpt = False):
        """Write report.md and a self-contained report.html from cached results (no model calls)."""
        s = _stage(config, set_, quiet, "report", "hybridtune.evaluate.report:run", True)
        typer.echo(f"report: {s.get('report')}")
