"""Shared CLI option types and the config-loading first step of every verb."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from .config import ExperimentConfig, load_config

ConfigArg = Annotated[Path, typer.Argument(help="experiment YAML, e.g. configs/demo.yaml")]
ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="experiment YAML")]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="dotted override KEY=VALUE, repeatable")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars (CI)")]
ForceOpt = Annotated[bool, typer.Option("--force", help="rerun even if the stage is done (finished records are reused)")]


def load(path: Path | None, sets: list[str] | None, quiet: bool = False) -> ExperimentConfig:
    """Config from file + `--set` overrides (+ quiet)."""
    extra = list(sets or [])
    if quiet:
        extra.append("quiet=true")
    return load_config(path, extra)
