"""CLI verbs of the evaluation package beyond the stage verbs (registered by hybridtune/cli.py):

    hybridtune plan configs/cpu-study.yaml [--pilot runs/x]   # smallest detectable difference per test
    hybridtune rate runs/demo [--rater ana]                   # blind side-by-side rating page
    hybridtune rate-export runs/demo /tmp/for-ana             # a folder a remote rater opens with `rate`
    hybridtune rate-import runs/demo /tmp/for-ana/rate/ratings.jsonl
"""
from __future__ import annotations

import getpass
import os
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

    @app.command()
    def rate(
        run_dir: Annotated[Path, typer.Argument(help="run directory (after simulate), or a rate-export folder")],
        host: Annotated[str, typer.Option(help="address to bind; anything but 127.0.0.1 needs --token")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="port to listen on")] = 8766,
        token: Annotated[str | None, typer.Option(
            help="API token (default: $HYBRIDTUNE_RATE_TOKEN); open the page as http://HOST:PORT/#token=...")] = None,
        rater: Annotated[str | None, typer.Option(help="default rater id shown in the page (default: login name)")] = None,
    ):
        """Open the blind side-by-side rating page: two variants' replies to one client turn (ratings saved at once)."""
        from ..curate.review.app import check_bind
        from .rate.app import serve
        from .rate.ratings import load_units

        token = token or os.environ.get("HYBRIDTUNE_RATE_TOKEN") or None
        check_bind(host, token)
        load_units(run_dir)  # a folder without anything to rate fails here, in one line
        typer.echo(f"rate: http://{f'[{host}]' if ':' in host else host}:{port}/ (Ctrl+C to stop)", err=True)
        serve(run_dir, host, port, token, rater or getpass.getuser())

    @app.command("rate-export")
    def rate_export(run_dir: Annotated[Path, typer.Argument(help="run directory")],
                    out: Annotated[Path, typer.Argument(help="empty folder for the remote rater")]):
        """Write the reply pairs, variants renamed to codes, for a remote rater (`hybridtune rate OUT`)."""
        from .rate.ratings import export

        typer.echo(f"{export(run_dir, out)} client turns -> {out} (rate with: hybridtune rate {out})")

    @app.command("rate-import")
    def rate_import(run_dir: Annotated[Path, typer.Argument(help="run directory the pairs were exported from")],
                    files: Annotated[list[Path], typer.Argument(help="rate/ratings.jsonl files from remote raters")]):
        """Add remote raters' ratings to the run (codes mapped back; duplicates skipped)."""
        from .rate.ratings import import_ratings

        r = import_ratings(run_dir, files)
        typer.echo(f"{r['imported']} ratings imported from {r['files']} file(s)")
