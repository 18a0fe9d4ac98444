"""CLI verbs of the evaluation package beyond the stage verbs (registered by hybridtune/cli.py):

    hybridtune plan configs/cpu-study.yaml [--pilot runs/x]   # smallest detectable difference per test
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import RunArg, SetOpt, load, pick


def register(app: typer.Typer) -> None:
    """Add this package's verbs to the main app."""

    @app.command()
    def plan(config: RunArg = None,
             set_: SetOpt = None,
             pilot: Annotated[Path | None, typer.Option(help="finished pilot run dir whose score and likelihood "
                                                           "files give the SDs")] = None,
             judge_sd: Annotated[float | None, typer.Option(help="stated SD of judge score differences")] = None,
             nll_sd: Annotated[float | None, typer.Option(help="stated SD of NLL differences (nats/token)")] = None):
        """State the smallest difference each test can detect at the configured sizes (no model call)."""
        from .power import lines, plan as make_plan

        cfg = load(pick(config, None), set_, True)
        if pilot is not None and not pilot.is_dir():
            from ..errors import UserError

            raise UserError(f"--pilot {pilot}: not a run directory; give a finished run's folder, e.g. runs/demo")
        for line in lines(make_plan(cfg, pilot, judge_sd, nll_sd)):
            typer.echo(line)
