"""The stage verbs, derived from hybridtune/stages.py: one verb per declared stage, and `run`.

    hybridtune personas -c configs/demo.yaml [--set synth.personas=20] [--force] [-q]
    hybridtune train -c configs/demo.yaml --variant hybrid --no-resume
    hybridtune report runs/demo                  # a run folder or a config, as the argument or with -c
    hybridtune run configs/demo.yaml [--stage mix --stage train] [--start score] [--force] [--dry-run]

Every stage verb takes the same arguments (a run folder or config, --set, --force, --quiet,
plus the stage's declared `options`), checks the roles the stage calls, runs it through
`Context.run_stage` (resumable; `--force` reruns a finished stage, reusing the records it
already has) and prints its summary. A stage that reads earlier stages (all but those declared
`starts_run`) refuses a run that does not exist, creating nothing.
"""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from . import stages
from .cli_common import ConfigOpt, ForceOpt, QuietOpt, RunArg, SetOpt, load, pick, require_run
from .stages import Stage, resolve


def summary_line(name: str, summary: dict) -> str:
    """`name: k=v, ...` for the scalar entries of a stage summary."""
    return f"{name}: " + ", ".join(f"{k}={v}" for k, v in summary.items() if not isinstance(v, dict | list))


def stage_row(summary: dict, limit: int = 6) -> str:
    """A stage's summary in the final table: its first `limit` scalar and list entries, k=v."""
    rest = {k: ",".join(map(str, v)) if isinstance(v, list) else v for k, v in summary.items()
            if k not in ("stage", "seconds") and not isinstance(v, dict)}
    return ", ".join(f"{k}={v}" for k, v in list(rest.items())[:limit])


def run_one(stage: Stage, config: Path | None, sets: list[str] | None, quiet: bool, force: bool,
            **options: Any) -> dict:
    """Run one stage as its verb does: load config, open the run, check roles, run, print."""
    from functools import partial

    from .context import open_run

    cfg = load(config, sets, quiet)
    if not stage.starts_run:
        earlier = [s.verb for s in stages.STAGES[:stages.names().index(stage.name)] if s.verb]
        require_run(cfg, stage.verb or stage.name, before=earlier[-1] if earlier else None)
    with open_run(cfg) as ctx:
        ctx.llms.check(stage.roles_for(cfg))
        fn = partial(stage.fn, **options) if options else stage.fn
        summary = ctx.run_stage(stage.name, fn, force=force or stage.rerun)
        typer.echo(summary_line(stage.name, summary))
        if stage.output:
            typer.echo(f"wrote {cfg.run_dir / stage.name / stage.output}")
        if stage.show:
            typer.echo(resolve(stage.show)(ctx))
    return summary


def stage_verb(stage: Stage):
    """A typer command for `stage` with the shared options and its own."""

    def verb(**kw: Any) -> None:
        where = pick(kw.pop("target"), kw.pop("config"))
        run_one(stage, where, kw.pop("set_"), kw.pop("quiet"), kw.pop("force", False), **kw)

    P = inspect.Parameter
    params = [P("target", P.KEYWORD_ONLY, default=None, annotation=RunArg),
              P("config", P.KEYWORD_ONLY, default=None, annotation=ConfigOpt),
              P("set_", P.KEYWORD_ONLY, default=None, annotation=SetOpt)]
    params += [P(o.name, P.KEYWORD_ONLY, default=o.default,
                 annotation=Annotated[o.type, typer.Option(*o.flags, help=o.help)]) for o in stage.options]
    if not stage.rerun:
        params.append(P("force", P.KEYWORD_ONLY, default=False, annotation=ForceOpt))
    params.append(P("quiet", P.KEYWORD_ONLY, default=False, annotation=QuietOpt))
    verb.__signature__ = inspect.Signature(params)  # typer reads the options from the signature
    verb.__annotations__ = {p.name: p.annotation for p in params}
    verb.__name__ = stage.verb.replace("-", "_")
    verb.__doc__ = stage.help
    return verb


def run(
    config: Annotated[Path, typer.Argument(help="experiment YAML, e.g. configs/demo.yaml (or a run folder)")],
    set_: SetOpt = None,
    stage: Annotated[list[str] | None, typer.Option("--stage", help=f"only these stages: {', '.join(stages.names())}")] = None,
    start: Annotated[str | None, typer.Option(help="start from this stage")] = None,
    force: Annotated[bool, typer.Option(help="rerun the selected stages even if done (records are reused)")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="check config, data and credentials; call no model")] = False,
    quiet: QuietOpt = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show the libraries' own output too")] = False,
):
    """Run the whole experiment (or some stages); rerun to resume after a crash."""
    from . import noise
    from .pipeline import run_pipeline

    if verbose:
        noise.configure(True)

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
        table.add_row(name, str(s.get("seconds", "")), stage_row(s))
    Console(stderr=True).print(table)
    if "report" in summaries:  # the run's last lines: the answer and where to read it
        from .evaluate.report import describe_run

        typer.echo(describe_run(cfg.run_dir) or "")


def register(app: typer.Typer) -> None:
    """Add `run` and one verb per declared stage."""
    app.command("run")(run)
    for stage in stages.STAGES:
        if stage.verb:
            app.command(stage.verb)(stage_verb(stage))
