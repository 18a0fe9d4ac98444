"""CLI verbs of the `real` stage (registered by hybridtune/cli.py).

    hybridtune ingest ../shared/data/annomi/AnnoMI-simple.csv --out runs/x/real --no-llm
    hybridtune ingest data/demo --out runs/demo-ingest -c configs/demo.yaml
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import QuietOpt, SetOpt, load
from .formats import READERS, expand_inputs


def ingest_cmd(
    inputs: Annotated[list[Path], typer.Argument(help=f"transcript files or folders ({', '.join(READERS.names())})")],
    out: Annotated[Path, typer.Option("--out", help="output folder: sessions.jsonl, samples.jsonl, quarantine.jsonl, report.*")],
    format: Annotated[str, typer.Option("--format", help=f"force a format: {'|'.join(READERS.names())} (default: auto)")] = "auto",
    config: Annotated[Path | None, typer.Option("--config", "-c", help="experiment YAML (default: built-in defaults)")] = None,
    set_: SetOpt = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="skip the LLM steps (annotation, unsure speaker attribution, quality score)")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Ingest real transcripts: clean, scrub PII, dedup, filter, segment and annotate them into OUT.

    Exits 1 when any input file was quarantined (see OUT/quarantine.jsonl), 0 otherwise.
    """
    from ..context import open_run
    from ..stages import get
    from ..store import StageDir
    from .stage import ingest

    if format != "auto":
        READERS.get(format, key="--format")  # unknown: one line listing the formats
    cfg = load(config, [*(set_ or []), *(["real.llm=false"] if no_llm else [])], quiet)
    cfg.real.inputs = [str(p) for p in inputs]
    files = expand_inputs(cfg.real.inputs)
    with open_run(cfg, root=Path(out)) as ctx:  # OUT is both the run and the stage folder
        ctx.llms.check(get("real").roles_for(cfg))
        ctx.llms.usage.stage = "real"
        s = ctx.arun(ingest(ctx, StageDir(Path(out), "real"), files, None if format == "auto" else format))
    typer.echo(f"{s['sessions_in']} sessions in, {s['sessions_out']} out, {s['samples_out']} samples; "
               f"{s['files_quarantined']} of {s['files_in']} files quarantined, "
               f"{s['quarantine_entries']} quarantine entries -> {out}")
    if s["files_quarantined"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""
    app.command("ingest")(ingest_cmd)
