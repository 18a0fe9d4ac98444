"""`hybridtune data`: public data sets by name (list, get, path).

    hybridtune data list
    hybridtune data get annomi cactus
    hybridtune data get esconv --accept-license esconv
    hybridtune data get annomi --mirror http://127.0.0.1:8000   # same <repo>/<commit>/<path> layout
    hybridtune data path annomi
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from . import catalogue, get, local_dir, source

DirOpt = Annotated[Path | None, typer.Option("--dir", help="data folder (default $HYBRIDTUNE_DATA_DIR or ~/.cache/hybridtune/data)")]


def register(app: typer.Typer) -> None:
    data_app = typer.Typer(help="Public counselling data sets by name: download, verify, locate.", no_args_is_help=True)
    app.add_typer(data_app, name="data")

    @data_app.command("list")
    def list_(dir_: DirOpt = None):
        """Every catalogue data set: repo@commit, licence, what it feeds, and whether it is here."""
        for ds in catalogue().values():
            here = "downloaded" if source(ds.name, dir_) else "not downloaded"
            nc = " NON-COMMERCIAL" if ds.non_commercial else ""
            typer.echo(f"{ds.name}: {ds.repo}@{ds.commit[:7]}, {ds.licence}{nc}; feeds {ds.feeds.stage} "
                       f"({ds.feeds.format}); {here}")
            for f in ds.files:
                typer.echo(f"    {ds.url(f)}")

    @data_app.command("get")
    def get_(
        names: Annotated[list[str], typer.Argument(help="catalogue names (hybridtune data list)")],
        accept_license: Annotated[list[str] | None, typer.Option(
            "--accept-license", help="accept the (non-commercial) licence of this data set; repeatable")] = None,
        dir_: DirOpt = None,
        mirror: Annotated[str | None, typer.Option(help="base URL instead of https://raw.githubusercontent.com")] = None,
        timeout: Annotated[float, typer.Option(min=0.1, help="seconds per request")] = 60.0,
    ):
        """Download at the pinned commit, verify SHA-256, keep the licence beside the data; resumable."""
        from .download import Offline, fetch

        for n in names:
            get(n)  # unknown names fail before anything is downloaded
        failed = False
        for n in names:
            try:
                where = fetch(n, accept_license or [], dir_, mirror, timeout, log=typer.echo)
            except Offline as e:
                for line in e.lines:
                    print(line, file=sys.stderr)
                failed = True
                continue
            ds = get(n)
            typer.echo(f"{ds.name}: ready in {where} (licence: {ds.licence}; text in {where / ds.licence_file})")
        if failed:
            raise typer.Exit(1)

    @data_app.command("path")
    def path_(name: str, dir_: DirOpt = None):
        """Print the local folder of a data set (where `data get` puts it)."""
        typer.echo(str(local_dir(name, dir_)))
