"""CLI verbs around the `train` stage (registered by hybridtune/cli.py; the `train` verb itself
comes from hybridtune/stages.py).

    hybridtune train-export-gguf runs/demo/train/hybrid/adapter --out adapter.gguf
    hybridtune doctor [--require-cuda]       # torch build, CUDA, GPUs and free memory, library versions
"""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's verbs to the main app."""

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

    @app.command("doctor")
    def doctor(
        require_cuda: Annotated[bool, typer.Option("--require-cuda", help="exit 1 unless a CUDA GPU is usable")] = False,
    ):
        """What this machine offers for training: torch build, CUDA, each GPU's free memory, versions."""
        from ..errors import UserError
        from .hardware import INSTALL, probe

        hw = probe()
        for line in hw.lines():
            typer.echo(line)
        if require_cuda and not hw.gpus:
            raise UserError(f"doctor: no usable CUDA GPU (torch {hw.torch}"
                            f"{', CPU-only build' if hw.cuda is None else ''}); on a machine with NVIDIA GPUs and "
                            f"their driver, run `{INSTALL}`")
