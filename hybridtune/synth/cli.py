"""CLI verbs of the synthetic-data stages (registered by hybridtune/cli.py).

    hybridtune personas   -c configs/demo.yaml [--set synth.personas=20]
    hybridtune scenarios  -c configs/demo.yaml
    hybridtune synthesize -c configs/demo.yaml [--set synth.mode=single_pass] [--force]

Each verb runs one stage of the pipeline (resumable: rerun after a crash to continue).
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import ConfigOpt, QuietOpt, SetOpt, load

ForceOpt = Annotated[bool, typer.Option("--force", help="rerun even if the stage is done (finished items are reused)")]


def _stage(name: str, target: str, config: Path, sets: list[str] | None, quiet: bool, force: bool) -> None:
    from ..context import open_run
    from ..pipeline import stage_fn

    cfg = load(config, sets, quiet)
    with open_run(cfg) as ctx:
        ctx.llms.check()
        summary = ctx.run_stage(name, stage_fn(name), force=force)
    shown = {k: v for k, v in summary.items() if not isinstance(v, dict | list)}
    typer.echo(f"{name}: " + ", ".join(f"{k}={v}" for k, v in shown.items()))
    typer.echo(f"wrote {cfg.run_dir / name / target}")


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""

    @app.command()
    def personas(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, quiet: QuietOpt = False,
                 force: ForceOpt = False):
        """Generate quota-sampled personas with quality checks -> runs/<name>/personas/personas.jsonl."""
        _stage("personas", "personas.jsonl", config, set_, quiet, force)

    @app.command()
    def scenarios(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, quiet: QuietOpt = False,
                  force: ForceOpt = False):
        """Write CBT scenarios for each persona (distortions checked, near-duplicates replaced) -> scenarios/scenarios.jsonl."""
        _stage("scenarios", "scenarios.jsonl", config, set_, quiet, force)

    @app.command()
    def synthesize(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, quiet: QuietOpt = False,
                   force: ForceOpt = False):
        """Generate synthetic sessions by role-play (or single pass) -> synth/sessions.jsonl + synth_report.md."""
        _stage("synth", "sessions.jsonl", config, set_, quiet, force)
