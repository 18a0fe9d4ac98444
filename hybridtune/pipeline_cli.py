"""`hybridtune run`: every stage in order, resumable; `--dry-run` checks without spending."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .cli_common import SetOpt, load
from .pipeline import STAGE_NAMES, run_pipeline


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        config: Annotated[Path, typer.Argument(help="experiment YAML, e.g. configs/demo.yaml")],
        set_: SetOpt = None,
        stage: Annotated[list[str] | None, typer.Option("--stage", help=f"only these stages: {', '.join(STAGE_NAMES)}")] = None,
        start: Annotated[str | None, typer.Option(help="start from this stage")] = None,
        force: Annotated[bool, typer.Option(help="rerun the selected stages even if done (records are reused)")] = False,
        dry_run: Annotated[bool, typer.Option("--dry-run", help="check config, data and credentials; call no model")] = False,
        quiet: Annotated[bool, typer.Option("--quiet", "-q")] = False,
    ):
        """Run the whole experiment (or some stages); rerun to resume after a crash."""
        cfg = load(config, set_, quiet)
        if dry_run:
            from .preflight import preflight

            for line in preflight(cfg):
                typer.echo(line)
            return
        summaries = run_pipeline(cfg, only=stage, start=start, force=force)
        table = Table(title=f"run {cfg.name}: {cfg.run_dir}")
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        table.add_column("summary")
        for name, s in summaries.items():
            rest = {k: v for k, v in s.items() if k not in ("stage", "seconds") and not isinstance(v, dict | list)}
            table.add_row(name, str(s.get("seconds", "")), ", ".join(f"{k}={v}" for k, v in list(rest.items())[:6]))
        Console(stderr=True).print(table)
