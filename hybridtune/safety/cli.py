"""CLI verbs of the `safety` stage (registered by hybridtune/cli.py).

    hybridtune safety check texts.jsonl --out screened.jsonl [-c configs/demo.yaml] [--rules-only]
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import SetOpt, load

safety_app = typer.Typer(help="Crisis-safety screen (rules, learned layer, provider layers, rubric) for texts.",
                         no_args_is_help=True)


@safety_app.command("check")
def check(
    input: Annotated[Path, typer.Argument(help='JSONL file, one {"id", "text"} object per line')],
    out: Annotated[Path, typer.Option("--out", "-o", help="output JSONL: input lines plus risk, categories, evidence")],
    config: Annotated[Path | None, typer.Option(
        "--config", "-c", help="experiment YAML (default: the built-in defaults; this verb reads no run)")] = None,
    rules_only: Annotated[bool, typer.Option(help="phrase rules alone: no learned, provider or rubric layer")] = False,
    set_: SetOpt = None,
):
    """Screen texts for suicide, self-harm, harm to others, abuse and medical emergencies.

    Bad lines go to OUT.quarantine.jsonl (file, line, reason) and the rest are screened. Exit
    code: 0 every line screened, 1 some lines quarantined, 2 a usage error (nothing written).
    """
    rules = ["safety.use_model=false", "safety.learned=false", "safety.moderation=off", "safety.guard_endpoint=null"]
    cfg = load(config, [*(set_ or []), *(rules if rules_only else [])])
    from ..domain import load_domain
    from ..llm import LLMPool
    from .check import check_file
    from .screen import build_screener

    async def go():
        pool = LLMPool(cfg.pool_config())
        try:
            screener = build_screener(cfg, pool, load_domain(cfg.domain))
            return await check_file(input, out, cfg.safety, screener=screener)
        finally:
            await pool.aclose()

    summary = asyncio.run(go())
    typer.echo(json.dumps(summary, indent=2))
    if summary["quarantined"]:
        typer.echo(f"{summary['quarantined']} lines quarantined; see {summary['quarantine']}", err=True)
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""
    app.add_typer(safety_app, name="safety")
