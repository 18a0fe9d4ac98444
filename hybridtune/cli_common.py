"""Shared CLI option types and the config-loading first step of every verb.

One convention for what a verb works on: an experiment YAML or a run folder, both accepted,
as the verb's argument or with `-c`; with neither, configs/demo.yaml when it is there (in the
checkout), else the built-in defaults. Verbs that read a finished run call `require_run`
first, so a missing run is one error line and no folder is created.

    cfg = load(pick(target, config), ["synth.sessions=20"])   # target: runs/demo or configs/x.yaml
    require_run(cfg, "report")
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from .config import ExperimentConfig, load_config
from .errors import UserError

DEMO = Path("configs/demo.yaml")
DEFAULT_HELP = "default: configs/demo.yaml when it exists, else the built-in defaults"
ConfigArg = Annotated[Path, typer.Argument(help="experiment YAML, e.g. configs/demo.yaml")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", show_default=False,
                                                help=f"experiment YAML or run folder ({DEFAULT_HELP})")]
RunArg = Annotated[Path | None, typer.Argument(help=f"run folder (runs/NAME) or experiment YAML ({DEFAULT_HELP})",
                                               show_default=False)]
SetOpt = Annotated[list[str] | None, typer.Option("--set", help="dotted override KEY=VALUE, repeatable")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="no progress bars (CI)")]
ForceOpt = Annotated[bool, typer.Option("--force", help="rerun even if the stage is done (finished records are reused)")]


def pick(target: Path | None, config: Path | None) -> Path | None:
    """The run folder or config a verb was given (argument or -c), else the default (None: built-ins)."""
    if target is not None and config is not None and target != config:
        raise UserError(f"{target} and -c {config}: give the run folder or config once, as the argument or with -c")
    given = target or config
    if given is not None:
        return given
    return DEMO if DEMO.is_file() else None


def load(path: Path | None, sets: list[str] | None, quiet: bool = False) -> ExperimentConfig:
    """Config from a YAML file or a run folder (its resolved config.yaml) + `--set` overrides (+ quiet)."""
    extra = list(sets or [])
    if quiet:
        extra.append("quiet=true")
    if path is not None and Path(path).is_dir():
        return load_run(Path(path), extra)
    return load_config(path, extra)


def load_run(folder: Path, sets: list[str]) -> ExperimentConfig:
    """The config a run was made with, pointed at `folder` wherever it now lies."""
    saved = folder / "config.yaml"
    if not saved.is_file():
        raise UserError(f"{folder}: not a run folder (no config.yaml in it); give a run folder such as runs/demo "
                        "or an experiment YAML")
    here = [f"runs_dir={json.dumps(str(folder.resolve().parent))}", f"name={json.dumps(folder.name)}"]
    return load_config(saved, [*here, *sets])


def run_folder(target: Path | None, sets: list[str] | None = None) -> Path:
    """The run folder a verb works on, given a run folder or the config that made it (nothing is created)."""
    where = pick(target, None)
    if where is not None and Path(where).is_dir():
        return Path(where)
    return load(where, sets).run_dir


def require_run(cfg: ExperimentConfig, verb: str, needs: str | None = None, before: str | None = None) -> None:
    """A UserError (creating nothing) when the run, or the file `needs` in it, is not there;
    `before`: the verb that makes what this one reads."""
    root = cfg.run_dir
    if not root.is_dir():
        first = f"run `hybridtune {before}` first (and the stages before it), or " if before else "make it first with "
        raise UserError(f"{root}: no such run; `hybridtune {verb}` reads a run: give its folder (runs/NAME) or the "
                        f"config that made it, or {first}`hybridtune run CONFIG`")
    if needs and not (root / needs).exists():
        raise UserError(f"{root / needs}: missing; the run has not got that far: finish it with "
                        "`hybridtune run CONFIG` (the config that made it)")
