"""CLI verbs around the curate and mix stages (registered by hybridtune/cli.py).

The stage verbs themselves (`judge` = stage curate, `mix`) come from hybridtune/stages.py.

    hybridtune review runs/demo                          # web app on http://127.0.0.1:8765 (or a config)
    hybridtune review-export runs/demo queue.csv         # review elsewhere...
    hybridtune review-import runs/demo queue.csv         # ...and bring the decisions back
    hybridtune export -c configs/demo.yaml               # re-export the mixed sets
"""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import ConfigOpt, QuietOpt, RunArg, SetOpt, load, pick, require_run, run_folder

RunDirArg = Annotated[Path, typer.Argument(help="run folder (runs/NAME) or the experiment YAML that made it")]


def register(app: typer.Typer) -> None:
    @app.command()
    def export(target: RunArg = None, config: ConfigOpt = None, set_: SetOpt = None, quiet: QuietOpt = False):
        """Re-export the mixed sets: OpenAI JSONL, Parquet and dataset card per variant."""
        from ..context import open_run
        from .export import export_all

        cfg = load(pick(target, config), set_, quiet)
        require_run(cfg, "export")
        with open_run(cfg) as ctx:
            st = ctx.store.stage("mix")
            first = next((v.name for v in cfg.variant_list() if v.trained), None)
            if first is None or not st.file(f"{first}/train.jsonl").exists():
                from ..errors import UserError

                raise UserError(f"{st.file(f'{first}/train.jsonl')}: missing; run `hybridtune mix` first")
            for variant, counts in export_all(ctx, st).items():
                typer.echo(f"{variant}: {counts} -> {st.file(variant)}")

    @app.command()
    def review(
        run_dir: RunDirArg,
        host: Annotated[str, typer.Option(help="address to bind; anything but 127.0.0.1 needs --token")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port to listen on")] = 8765,
        token: Annotated[str | None, typer.Option(
            help="API token (default: $HYBRIDTUNE_REVIEW_TOKEN); open the page as http://HOST:PORT/#token=...")] = None,
        reviewer: Annotated[str | None, typer.Option(
            help="default reviewer name shown in the page (default: login name)")] = None,
    ):
        """Open the review web app for a run's curated sessions and kept conversations (decisions are saved at once)."""
        from .review.app import check_bind, curate_dir, serve

        token = token or os.environ.get("HYBRIDTUNE_REVIEW_TOKEN") or None
        check_bind(host, token)
        run_dir = run_folder(run_dir)
        curate_dir(run_dir, conversations_ok=True)
        typer.echo(f"review: http://{f'[{host}]' if ':' in host else host}:{port}/ (Ctrl+C to stop)", err=True)
        serve(run_dir, host, port, token, reviewer or getpass.getuser())

    @app.command("review-export")
    def review_export(
        run_dir: RunDirArg,
        out: Annotated[Path, typer.Argument(
            help="file to write: .csv (fill the `decision` column) or .jsonl (with dialogues)")],
        which: Annotated[str, typer.Option(help="review | selected | rejected | all")] = "review",
    ):
        """Write the review queue for reviewing elsewhere (exit 2 on a bad --which or path)."""
        from .decisions import export_queue
        from .review.app import curate_dir

        n = export_queue(curate_dir(run_folder(run_dir)), out, which)
        typer.echo(f"{n} sessions -> {out}")

    @app.command("review-import")
    def review_import(
        run_dir: RunDirArg,
        file: Annotated[Path, typer.Argument(
            help=".csv or .jsonl rows: session_id, decision (accept|reject|edit), reviewer, note, index, content")],
        reviewer: Annotated[str | None, typer.Option(help="reviewer name for rows without one")] = None,
    ):
        """Append decisions made elsewhere; bad rows are reported and quarantined, the rest go in.

        Exit code: 0 every filled row imported, 1 some rows quarantined (RUN/curate/quarantine.jsonl),
        2 a usage error (nothing imported).
        """
        from .decisions import import_decisions
        from .review.app import curate_dir

        n, bad = import_decisions(curate_dir(run_folder(run_dir)), file, reviewer)
        for q in bad:
            typer.echo(f"{q.file}:{q.line}: {q.reason}", err=True)
        typer.echo(f"{n} decisions imported, {len(bad)} rows skipped")
        if bad:
            raise typer.Exit(1)
