"""CLI verbs of the `app` stage (registered by hybridtune/cli.py): talk to a counselor.

    hybridtune chat runs/demo --variant hybrid        # terminal, streaming (or: chat -c configs/demo.yaml)
    hybridtune serve runs/demo [--variant hybrid] [--port 8765]
    hybridtune serve -c configs/demo.yaml --keep-conversations   # keep them (scrubbed) for review
    hybridtune conversations delete runs/demo --id ID --older-than 30   # an operator's delete
"""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import ConfigOpt, RunArg, SetOpt, load, pick, require_run
VariantOpt = Annotated[str | None, typer.Option(
    help="a variant registered in runs/<name>/models.json (base, real, hybrid...); default: the counselor role")]
KeepOpt = Annotated[bool, typer.Option(
    "--keep-conversations", help="keep conversations, PII-scrubbed, in runs/<name>/conversations for review "
    "(users see a notice and can opt out; same as --set conversations.keep=true)")]


def _keep(cfg, keep: bool):
    if keep:
        cfg.conversations.keep = True
    return cfg


def _config(target: Path | None, config: Path | None, sets: list[str] | None, variant: str | None, verb: str):
    """The config; a --variant needs the run that registered it (a missing one is an error, nothing is created)."""
    cfg = load(pick(target, config), sets)
    if variant:
        require_run(cfg, verb, "models.json")
    return cfg


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""

    @app.command()
    def chat(target: RunArg = None, config: ConfigOpt = None, variant: VariantOpt = None, keep: KeepOpt = False,
             set_: SetOpt = None):
        """Chat with a counselor in the terminal (/save, /reset, /quit); every turn is safety-screened."""
        cfg = _keep(_config(target, config, set_, variant, "chat"), keep)
        from .engine import open_engine
        from .terminal import run_terminal

        engine = open_engine(cfg, variant)
        if hasattr(sys.stdin, "reconfigure"):  # undecodable bytes become U+FFFD instead of crashing the chat
            sys.stdin.reconfigure(errors="replace")

        async def go():
            try:
                await run_terminal(engine, sys.stdin, sys.stdout, interactive=sys.stdin.isatty())
            finally:
                await engine.counselor.pool.aclose()

        try:
            asyncio.run(go())
        except KeyboardInterrupt:  # Ctrl-C: nothing is written that the user did not ask for
            if engine.unsaved:
                typer.echo("\n(not saved; /save before quitting keeps a copy)", err=True)
            raise

    @app.command()
    def serve(
        target: RunArg = None,
        config: ConfigOpt = None,
        variant: VariantOpt = None,
        host: Annotated[str, typer.Option(help="interface to bind; beyond 127.0.0.1 a token is required")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="TCP port")] = 8765,
        token: Annotated[str | None, typer.Option(
            envvar="HYBRIDTUNE_SERVE_TOKEN", help="shared secret clients send as a Bearer token (page: /#token=...)")] = None,
        keep: KeepOpt = False,
        set_: SetOpt = None,
    ):
        """Serve the web chat page and its streaming API (same safety layer as `chat`)."""
        from .web import check_bind, create_app

        check_bind(host, token)
        cfg = _keep(_config(target, config, set_, variant, "serve"), keep)
        import uvicorn

        from .engine import open_engine

        base = open_engine(cfg, variant, surface="serve")
        if base.log is not None:
            typer.echo(f"keeping conversations (scrubbed) in {base.log.st.path}; users see the notice and can opt out",
                       err=True)
            base.log.scrubber.scrub_text("warm-up")  # load the PII analyzer now, not on the first user's reply
        app = create_app(base.fork, token=token, max_chars=cfg.safety.max_chars, host=host)
        shown = f"[{host}]" if ":" in host else host
        typer.echo(f"serving {base.variant} on http://{shown}:{port}/" + ("  (open it as /#token=<your token>)" if token else ""),
                   err=True)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        uvicorn.run(app, host=host, port=port, log_level="warning")

    conversations = typer.Typer(help="Kept conversations of a run: delete them by id or by age.", no_args_is_help=True)
    app.add_typer(conversations, name="conversations")

    @conversations.command("delete")
    def conversations_delete(
        run_dir: Annotated[Path, typer.Argument(help="the run folder (runs/<name>) whose conversations/ to prune")],
        ids: Annotated[list[str] | None, typer.Option("--id", help="a conversation id (repeatable)")] = None,
        older_than: Annotated[float | None, typer.Option(
            "--older-than", min=0, help="also every conversation not updated for this many days")] = None,
    ):
        """Delete kept conversations and every trace of them (feedback, review decisions, the accepted
        export, safety events, saved copies); they never come back."""
        from ..errors import UserError
        from .conversations import delete, is_folder

        folder = Path(run_dir) / "conversations"
        if not is_folder(folder):
            raise UserError(f"{run_dir}: no kept conversations there ({folder} is missing); pass a run folder such as runs/demo")
        if not ids and older_than is None:
            raise UserError("conversations delete: name what to delete with --id ID and/or --older-than DAYS")
        gone = delete(folder, set(ids or []), older_than)
        typer.echo(f"deleted {len(gone)} conversation(s) from {folder}")
