"""Training backend `local`: LoRA with TRL + PEFT in this process or under `accelerate launch`,
served by llama.cpp (GGUF base and adapter), by vLLM (`train.serve_endpoint`), or as a
transformers base + PEFT adapter. Registered as `train.backend: local` (train/backends.py).

    hybridtune train -c configs/demo.yaml        # train.backend: local is the default
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..preflight import local_config_problems, lora_checks
from ..records import ModelEntry
from .backends import TrainBackend, register_training
from .launch import run_launch, use_accelerate
from .stage import load_splits

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..context import Context
    from ..store import StageDir
    from .config import TrainConfig


LOCAL_HP = ("base_model", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "qlora", "learning_rate",
            "warmup_ratio", "epochs", "max_steps", "batch_size", "grad_accum", "max_seq_len", "seed",
            "gradient_checkpointing")


@register_training("local")
class LocalTraining(TrainBackend):
    """TRL + PEFT LoRA here or under `accelerate launch`; served by llama.cpp or a vLLM server."""

    gpu = True

    def hyperparameters(self, tc: TrainConfig) -> dict:
        return tc.model_dump(include=set(LOCAL_HP))

    def preflight(self, ctx: Context, tc: TrainConfig, data: dict) -> None:
        if tc.serve_endpoint:
            from .vllm_lora import check_server

            check_server(ctx.cfg, tc)
        if data:
            from .launch import check_launch
            from .local import preflight as local_preflight

            if use_accelerate(tc):
                check_launch(tc)
            local_preflight(tc)

    def load_data(self, ctx: Context, st: StageDir, variant: str) -> tuple[list, list, str]:
        return load_splits(ctx, st, variant)

    def together(self, tc: TrainConfig) -> bool:
        return use_accelerate(tc)  # one launch trains them all: processes start and join once

    def launch(self, ctx: Context, todo: list[str], resume: bool) -> dict[str, dict]:
        return run_launch(ctx, todo, resume=resume)

    def base_entry(self, ctx: Context, tc: TrainConfig, common: dict) -> ModelEntry:
        return local_base_entry(ctx, tc, common)

    def train(self, ctx: Context, st: StageDir, variant: str, tc: TrainConfig, rows: tuple, out: Path,
              common: dict, launched: dict | None, resume: bool) -> ModelEntry:
        return train_local(ctx, st, variant, tc, rows, out, common, launched, resume)

    def estimate(self, est: Any, trained: list, total: float, real_t: float) -> None:
        est.local_training(trained, total, real_t)

    def estimate_notes(self, cfg: ExperimentConfig) -> list[str]:
        if cfg.train.serve_endpoint and cfg.llm.gpu_hour_usd is None:
            return ["self-hosted servers (vLLM) cost GPU hours for as long as they run; set "
                    "llm.gpu_hour_usd to price training and serving"]
        return []

    def config_problems(self, cfg: ExperimentConfig) -> list[str]:
        return local_config_problems(cfg)

    def machine_checks(self, cfg: ExperimentConfig) -> tuple[list[str], list[str]]:
        return lora_checks(cfg)

    def remote_models(self, cfg: ExperimentConfig) -> list[tuple[str, str | None, str]]:
        serve = cfg.train.serve_endpoint
        if not serve:
            return []
        return [(serve, cfg.endpoints[serve].model if serve in cfg.endpoints else None, "base variant + LoRA adapters")]


def local_base_entry(ctx: Context, tc: TrainConfig, common: dict) -> ModelEntry:
    """The local backend's untrained variant: on the vLLM server, or the base for llama.cpp / transformers."""
    if tc.serve_endpoint:  # the same model on the same vLLM server as the adapters
        return ModelEntry(backend="openai", model=ctx.cfg.endpoints[tc.serve_endpoint].model,
                          endpoint=tc.serve_endpoint, **common)
    from .base_model import resolve_base

    gguf, folder = resolve_base(tc.base_model)
    if gguf is None:
        return ModelEntry(backend="transformers", model=str(folder), **common)
    return ModelEntry(backend="llamacpp", model=tc.base_model, **common)


def train_local(ctx: Context, st: StageDir, variant: str, tc: TrainConfig, rows: tuple, out: Path,
                common: dict, launched: dict | None, resume: bool) -> ModelEntry:
    """The local backend: LoRA here (or metrics of the accelerate launch), the adapter verified."""
    from .local import train_lora

    train, valid, h = rows

    if launched is not None:
        launched = dict(launched)
        if launched.pop("data_hash", h) != h:  # the launched processes read other data than was checked
            raise UserError(f"train: {variant} was trained on data that changed during the run; rerun the train stage")
        common["metrics"].update(launched)
    else:
        ctx.log(f"[bold]{variant}[/bold]: LoRA on {tc.base_model}, {len(train)} train / {len(valid)} valid sessions")
        with ctx.progress() as bar:  # one bar per variant: steps, loss, elapsed, ETA
            common["metrics"].update(train_lora(tc, train, valid, out, resume=resume, log=ctx.log, progress=bar,
                                                label=f"train {variant}"))
    from .base_model import prepare_base
    from .local import verify_adapter

    common["metrics"]["lora_tensors"] = verify_adapter(out / "adapter", prepare_base(tc)[0])  # loads, or no entry
    return local_entry(ctx, out, common)


def local_entry(ctx: Context, out: Path, common: dict) -> ModelEntry:
    """Registry entry of a trained LoRA: an adapter loaded into the vLLM server of
    `train.serve_endpoint`, or a GGUF adapter for llama.cpp when the base is a GGUF."""
    from .base_model import resolve_base

    tc = ctx.cfg.train
    if tc.serve_endpoint:
        from .vllm_lora import adapter_name, ensure_adapter

        name = adapter_name(common["variant"], common["data_hash"])
        path = (out / "adapter").resolve()
        ensure_adapter(ctx.cfg.endpoints[tc.serve_endpoint], tc.serve_endpoint, name, str(path))
        ctx.log(f"{common['variant']}: adapter served as '{name}' by endpoint {tc.serve_endpoint}")
        return ModelEntry(backend="openai", model=name, endpoint=tc.serve_endpoint, adapter=str(path), **common)
    gguf, folder = resolve_base(tc.base_model)
    if gguf is not None and tc.gguf_adapter:
        from .gguf_lora import to_gguf

        adapter = to_gguf(out / "adapter", gguf, out / "adapter.gguf")
        return ModelEntry(backend="llamacpp", model=tc.base_model, adapter=str(adapter.resolve()), **common)
    # a transformers base: serve base + PEFT adapter with vLLM --enable-lora (docs/training.md)
    return ModelEntry(backend="transformers", model=str(folder or tc.base_model), adapter=str((out / "adapter").resolve()),
                      **common)
