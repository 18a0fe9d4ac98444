"""The `hybridtune` command: thin typer verbs over library functions.

    hybridtune --help
    hybridtune config check configs/demo.yaml --set synth.sessions=20
    hybridtune ask "How do I handle worry?" --role counselor -c configs/demo.yaml
    hybridtune run configs/demo.yaml

The stage verbs (`personas`, `judge`, `train`, ... and `run`) come from the declaration in
hybridtune/stages.py (see cli_stages.py); packages with further verbs (ingest, review,
export, safety, chat...) add them in `hybridtune/<package>/cli.py: register(app)`.
User errors print one `error:` line (no traceback) and exit non-zero.
"""
from __future__ import annotations

import asyncio
import errno
import importlib
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.console import Console

from .cli_common import ConfigArg, ConfigOpt, SetOpt, load, pick
from .errors import UserError

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no model hub at run time: models come from installed packages

app = typer.Typer(
    name="hybridtune",
    help="Fine-tune domain chatbots on a blend of real and synthetic conversations, and prove the gain.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Validate and show experiment configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")
domain_app = typer.Typer(help="Check domain packs.", no_args_is_help=True)
app.add_typer(domain_app, name="domain")
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            v = version("hybridtune")
        except PackageNotFoundError:  # run from a checkout that was not pip-installed
            import tomllib

            v = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]["version"]
        typer.echo(f"hybridtune {v}")
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="print the version and exit")] = False,
          verbose: Annotated[bool, typer.Option("--verbose", "-v", help="show the libraries' own output (Hugging "
                                                "Face logs and warnings, dataset bars): hybridtune -v VERB")] = False
          ) -> None:
    """Fine-tune domain chatbots on a blend of real and synthetic conversations, and prove the gain."""
    from . import noise

    noise.configure(verbose)

@config_app.command("check")
def config_check(config: ConfigArg, set_: SetOpt = None, show: bool = typer.Option(False, help="print resolved YAML")):
    """Validate a config (keys, types, role bindings, endpoints, domain pack, input paths) without calling any model."""
    cfg = load(config, set_)
    from .llm import LLMPool
    from .preflight import config_problems

    _, problems = config_problems(cfg)  # the dry run's own checks: every problem at once
    try:
        LLMPool(cfg.pool_config()).check()
    except UserError as e:
        problems.append(str(e))
    if problems:
        raise UserError(f"config check found {len(problems)} problem(s):\n  " + "\n  ".join(problems))
    if show:
        typer.echo(yaml.safe_dump(cfg.resolved_dict(), sort_keys=False))
    console.print(f"[green]ok[/green] {config}: run dir {cfg.run_dir}, roles -> "
                  + ", ".join(f"{r}={rc.endpoint}" for r, rc in cfg.roles.items()))


@domain_app.command("check")
def domain_check(
    pack: Annotated[str, typer.Argument(help="a pack name under hybridtune/domains (cbt, sales_coach) or a folder")],
    config: Annotated[Path | None, typer.Option("--config", "-c", help="experiment YAML: its judge metrics (besides the pack's own)")] = None,
    set_: SetOpt = None,
):
    """List, per stage, the files of a domain pack a full run needs that are missing or invalid (exit 1 if any)."""
    from .domain import load_domain
    from .stages import domain_manifest

    cfg = load(config, set_)
    dom = load_domain(pack)
    missing = 0
    metrics = list(dict.fromkeys([*cfg.evaluate.metrics, *(m.name for m in dom.metrics)]))  # and the pack's own rubrics
    for stage, files in domain_manifest(metrics).items():
        problems = dom.check(files)
        missing += len(problems)
        typer.echo(f"{stage}: " + ("ok" if not problems else f"{len(problems)} problem(s)") + f" ({len(files)} files)")
        for p in problems:
            typer.echo(f"  {p}")
    typer.echo(f"domain {dom.name} ({dom.root}): " + ("complete" if not missing else f"{missing} problem(s)"))
    if missing:
        raise typer.Exit(1)


@app.command()
def ask(
    prompt: Annotated[str, typer.Argument(help="user message")],
    config: ConfigOpt = None,
    role: Annotated[str, typer.Option(help="role whose binding answers")] = "counselor",
    set_: SetOpt = None,
):
    """Send one message through a role's binding (a quick endpoint check; not cached)."""
    cfg = load(pick(None, config), [*(set_ or []), "llm.cache=false"])
    from .llm import LLMPool

    pool = LLMPool(cfg.pool_config())

    async def go():
        try:
            return await pool.role(role).chat([{"role": "user", "content": prompt}])
        finally:
            await pool.aclose()

    reply = asyncio.run(go())
    typer.echo(reply.text)
    console.print(f"[dim]{reply.model}: {reply.prompt_tokens} in / {reply.completion_tokens} out[/dim]")


# Packages with verbs beyond the stage verbs; each has `cli.py` with `register(app)`.
PACKAGE_CLIS = ("real", "curate", "train", "evaluate", "safety", "app", "catalogue")


def _register_stages() -> None:
    from . import cli_stages

    cli_stages.register(app)
    for name in PACKAGE_CLIS:
        importlib.import_module(f".{name}.cli", __package__).register(app)


_register_stages()


def main() -> None:
    try:
        # without standalone mode click returns (not raises) the code of `typer.Exit(n)`
        rc = app(standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume", file=sys.stderr)
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as e:  # click usage errors come through here in standalone_mode=False
        sys.exit(report_unexpected(e))


def _click_classes(name: str) -> tuple[type, ...]:
    """`name` from click and from typer's vendored click, where each has it (typer's lacks Abort)."""
    import click
    from typer import _click as typer_click

    found = (getattr(click.exceptions, name, None), getattr(typer_click.exceptions, name, None))
    return tuple(c for c in found if isinstance(c, type))


def report_unexpected(e: Exception) -> int:
    """One line on stderr for anything a command did not turn into a UserError; returns the exit code.
    HYBRIDTUNE_DEBUG=1 shows the traceback as well."""
    if isinstance(e, _click_classes("ClickException")):
        e.show()
        return e.exit_code
    if isinstance(e, _click_classes("Abort")):
        return 1
    if os.environ.get("HYBRIDTUNE_DEBUG"):
        import traceback

        traceback.print_exception(e)
    if isinstance(e, OSError):
        where = f"{e.filename}: " if e.filename else ""
        hint = {errno.ENOSPC: "free some disk space and rerun (finished work is kept)",
                errno.EISDIR: "give a file, not a folder", errno.ENOTDIR: "a part of the path is not a folder",
                errno.EACCES: "choose a path you may write", errno.EROFS: "choose a writable location",
                errno.EPERM: "choose a path you may write"}.get(e.errno, "check the path and rerun")
        print(f"error: {where}{e.strerror or type(e).__name__}; {hint}", file=sys.stderr)
        return 1
    print(f"error: unexpected {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''} "
          "(rerun with HYBRIDTUNE_DEBUG=1 for the traceback, and please report it)", file=sys.stderr)
    return 1

if __name__ == "__main__":
    main()
