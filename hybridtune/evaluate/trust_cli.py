"""CLI verbs of the trust stages (wire with `"evaluate.trust_cli"` in hybridtune/cli.py STAGE_CLIS):

    hybridtune likelihood -c configs/demo.yaml    # held-out NLL / perplexity of every variant, paired CIs
    hybridtune calibrate -c configs/demo.yaml     # judge validation (AUC) + patient-simulator check

Each verb runs one pipeline stage through `Context.run_stage` (resumable; `--force` reruns a
finished stage, reusing the records it already has) and prints its verdict line.
"""
from __future__ import annotations

from pathlib import Path

import typer

from ..cli_common import ConfigOpt, QuietOpt, SetOpt
from .cli import ForceOpt, _stage


def register(app: typer.Typer) -> None:
    """Add the `likelihood` and `calibrate` verbs to the main app."""

    @app.command()
    def likelihood(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, force: ForceOpt = False,
                   quiet: QuietOpt = False):
        """Score held-out real and synthetic sessions with every variant: NLL per counselor token, paired CIs."""
        _stage(config, set_, quiet, "likelihood", "hybridtune.evaluate.likelihood:run", force)

    @app.command()
    def calibrate(config: ConfigOpt = Path("configs/demo.yaml"), set_: SetOpt = None, force: ForceOpt = False,
                  quiet: QuietOpt = False):
        """Validate the judge on real vs degraded counselor turns (AUC per metric) and check the simulated patient."""
        _stage(config, set_, quiet, "calibrate", "hybridtune.evaluate.calibrate:run", force)
