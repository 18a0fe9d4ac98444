"""CLI verbs of the `real` stage (registered by hybridtune/cli.py).

    hybridtune ingest annomi --out runs/x/real --no-llm       # a catalogue name: after `hybridtune data get annomi`
    hybridtune ingest data/demo --out runs/demo-ingest -c configs/demo.yaml
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import QuietOpt, SetOpt, load
from .formats import READERS, expand_inputs


def ingest_cmd(
    inputs: Annotated[list[Path], typer.Argument(help=f"transcript files or folders ({', '.join(READERS.names())})")],
    out: Annotated[Path, typer.Option("--out", help="output folder: sessions.jsonl, samples.jsonl, quarantine.jsonl, report.*")],
    format: Annotated[str, typer.Option("--format", help=f"force a format: {'|'.join(READERS.names())} (default: auto)")] = "auto",
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="experiment YAML (default: the built-in defaults; this verb reads no run)")] = None,
    set_: SetOpt = None,
    no_llm: Annotated[bool, typer.Option("--no-llm", help="skip the LLM steps (annotation, unsure speaker attribution, quality score)")] = False,
    quiet: QuietOpt = False,
) -> None:
    """Ingest real transcripts: clean, scrub PII, dedup, filter, segment and annotate them into OUT.

    OUT is locked like a run directory (and so is the run around it, when OUT is a stage folder of
    one); files under OUT are never read as inputs; a killed ingest resumes when rerun.
    Exit code: 0 nothing quarantined; 1 some files or records were quarantined (OUT/quarantine.jsonl;
    ordinary filter drops do not count); 2 a usage error.
    """
    from ..context import open_run
    from ..errors import UserError
    from ..paths import output_dir
    from ..stages import get
    from ..store import RunStore, StageDir
    from .stage import ingest

    if format != "auto":
        READERS.get(format, key="--format")  # unknown: one line listing the formats
    cfg = load(config, [*(set_ or []), *(["real.llm=false"] if no_llm else [])], quiet)
    cfg.real.inputs = [str(p) for p in inputs]
    out = output_dir(Path(out))
    files = expand_inputs(cfg.real.inputs, exclude=out)
    if not files:
        raise UserError(f"no input files found in {', '.join(cfg.real.inputs)} (files under --out {out} are skipped)")
    with contextlib.ExitStack() as locks:
        if (out.parent / ".lock").exists():  # OUT is a stage folder of a run: a run there would write it too
            locks.enter_context(RunStore(out.parent).locked())
        ctx = locks.enter_context(open_run(cfg, root=out))  # OUT is both the run and the stage folder (locked)
        ctx.llms.check(get("real").roles_for(cfg))
        ctx.enter_stage("real")
        s = ctx.arun(ingest(ctx, StageDir(out, "real"), files, None if format == "auto" else format))
    typer.echo(f"{s['sessions_in']} sessions in, {s['sessions_out']} out, {s['samples_out']} samples; "
               f"{s['files_quarantined']} of {s['files_in']} files quarantined, {s['records_quarantined']} bad records quarantined, "
               f"{s['quarantine_entries']} quarantine entries -> {out}")
    if s["files_quarantined"] or s["records_quarantined"]:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""
    app.command("ingest")(ingest_cmd)
