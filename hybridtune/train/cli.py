"""CLI verbs of the `train` stage (registered by hybridtune/cli.py).

    hybridtune train -c configs/demo.yaml [--variant hybrid] [--no-resume]
    hybridtune train-export-gguf runs/demo/train/hybrid/adapter --out adapter.gguf
"""
from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from ..cli_common import ConfigOpt, QuietOpt, SetOpt, load


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""

    @app.command("train")
    def train(
        config: ConfigOpt = Path("configs/demo.yaml"),
        variant: Annotated[list[str] | None, typer.Option("--variant", "-v", help="only this variant (repeatable); default: every declared variant")] = None,
        resume: Annotated[bool, typer.Option("--resume/--no-resume", help="continue from the last checkpoint or running job (default) or start over")] = True,
        set_: SetOpt = None,
        quiet: QuietOpt = False,
    ):
        """Fine-tune the declared variants from the mixed sets and register them (and untrained ones) in models.json."""
        from ..context import open_run
        from .stage import describe, run

        cfg = load(config, set_, quiet)
        with open_run(cfg) as ctx:
            ctx.run_stage("train", partial(run, variants=variant, resume=resume), force=True)
            typer.echo(describe(ctx))

    @app.command("train-export-gguf")
    def export_gguf(
        adapter: Annotated[Path, typer.Argument(help="PEFT adapter folder (adapter_config.json + adapter_model.safetensors)")],
        out: Annotated[Path, typer.Option("--out", "-o", help="GGUF LoRA adapter to write")] = Path("adapter.gguf"),
        base: Annotated[str, typer.Option(help="base GGUF the adapter was trained on: 'smollm2' or a .gguf path")] = "smollm2",
    ):
        """Convert a PEFT LoRA adapter to llama.cpp's GGUF LoRA format."""
        from ..errors import UserError
        from ..llm.llamacpp import find_gguf
        from .gguf_lora import to_gguf

        if not (adapter / "adapter_model.safetensors").is_file():
            raise UserError(f"{adapter}: no adapter_model.safetensors; pass a PEFT adapter folder")
        typer.echo(to_gguf(adapter, find_gguf(base), out))
