"""Config section `train`: variants and fine-tuning backends (see hybridtune/train/).

Defaults follow the reference paper's setup (LoRA on an instruction-tuned base, a few
epochs over ~500 sessions, one shared system prompt and seed for every variant); the
demo shrinks `max_steps` / `max_seq_len` in configs/demo.yaml.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class OpenAIFineTune(BaseModel):
    """Hosted fine-tuning (OpenAI API or a compatible one) for `train.backend: openai`."""

    model_config = ConfigDict(extra="forbid")
    endpoint: str = Field("openai", description="name of the configured endpoint (base_url, api_key_env) to train on and serve from")
    model: str = Field("gpt-4o-mini-2024-07-18", description="base model to fine-tune (the paper's)")
    n_epochs: int | Literal["auto"] = Field(3, description="training epochs ('auto' lets the API choose)")
    batch_size: int | Literal["auto"] = Field("auto", description="batch size ('auto' lets the API choose)")
    learning_rate_multiplier: float | Literal["auto"] = Field("auto", description="learning-rate multiplier")
    suffix: str = Field("hybridtune", max_length=64, description="suffix in the fine-tuned model's name")
    poll_s: float = Field(15.0, gt=0, description="seconds between job status polls")
    timeout_h: float = Field(24.0, gt=0, description="give up following a job after this many hours (it keeps running)")


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    backend: str = Field(
        "local", description="training backend (hybridtune/train/backends.py): local (TRL + PEFT; served by "
        "llama.cpp, or by vLLM with serve_endpoint) | openai")
    base_model: str = Field(
        "smollm2",
        description="local: 'smollm2' (the packaged GGUF), a .gguf path, a transformers model folder, or a "
        "Hugging Face model id (e.g. Qwen/Qwen2.5-7B-Instruct; downloaded once into the HF cache)",
    )
    serve_endpoint: str | None = Field(
        None, description="local: the OpenAI-compatible endpoint (vLLM started with --enable-lora) that serves the "
        "base model and every adapter; models.json binds each variant to its adapter's name there. "
        "None: llama.cpp in-process (GGUF base)")
    launcher: Literal["auto", "accelerate", "inprocess"] = Field(
        "auto", description="local: 'accelerate' trains each variant under `accelerate launch` (one process per "
        "GPU); 'inprocess' in this process; 'auto': accelerate when a CUDA GPU is present")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="local: where training runs. 'cuda' (the GPU configs): refused before anything runs "
        "when this machine has no CUDA GPU; 'cpu': train on the CPU even where a GPU is (a GPU config on a "
        "CPU needs it said); 'auto': a CUDA GPU when present, else the CPU")
    gpus: str | None = Field(
        None, description="local: the GPUs training uses, as CUDA_VISIBLE_DEVICES "
        "('5', '4,5'), set by the tool for the accelerate launch and checked for free memory; keep the servers' "
        "GPUs out of it unless they share by memory fraction. None: every visible GPU")
    accelerate_config: str = Field(
        "ddp", description="accelerate: ddp | deepspeed_zero2 | deepspeed_zero3 | fsdp (configs/accelerate/) "
        "or the path of an accelerate YAML")
    num_processes: int | Literal["auto"] = Field(
        "auto", description="accelerate: training processes; auto = one per visible GPU (1 without GPUs)")
    cache_dir: str = Field(
        "~/.cache/hybridtune/models", description="where dequantized GGUF weights are cached as safetensors",
    )
    # LoRA
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(32, ge=1, description="LoRA alpha (scale = alpha / r)")
    lora_dropout: float = Field(0.05, ge=0, lt=1, description="LoRA dropout")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="linear layers that get LoRA adapters",
    )
    qlora: bool = Field(False, description="4-bit QLoRA (needs bitsandbytes and a CUDA GPU)")
    # optimisation
    learning_rate: float = Field(2e-4, gt=0, description="peak learning rate (cosine schedule)")
    warmup_ratio: float = Field(0.03, ge=0, lt=1, description="share of steps spent warming up")
    epochs: float = Field(3.0, gt=0, description="passes over the training set (ignored when max_steps > 0)")
    max_steps: int = Field(-1, description="stop after this many optimizer steps (-1: use epochs)")
    batch_size: int = Field(4, ge=1, description="sequences per device per step")
    grad_accum: int = Field(4, ge=1, description="gradient accumulation steps")
    max_seq_len: int = Field(2048, ge=32, description="tokens per sequence; longer sessions are truncated")
    gradient_checkpointing: bool = Field(False, description="recompute activations to save memory (slower; for long sequences on GPU)")
    seed: int = Field(42, description="training seed, shared by every variant")
    seeds: list[int] = Field(
        default_factory=list, description="train every trained variant once per seed (the first keeps the "
        "variant's name, each further one is variant~s<seed>, its subsets drawn with that seed); the analysis "
        "averages a held-out session's scores over seeds and reports the spread between them. [] = one model "
        "per variant with train.seed")
    add_system_prompt: bool = Field(True, description="prepend the counselor system prompt to sessions without one")
    # bookkeeping
    eval_steps: int = Field(50, ge=1, description="evaluate on valid.jsonl every N steps")
    save_steps: int = Field(50, ge=1, description="checkpoint every N steps (a killed run resumes from the last)")
    save_total_limit: int = Field(2, ge=1, description="checkpoints kept")
    logging_steps: int = Field(5, ge=1, description="log the training loss every N steps")
    report_to: list[str] = Field(default_factory=list, description="extra trackers: tensorboard, wandb, mlflow")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch (default: all cores)")
    gguf_adapter: bool = Field(True, description="convert the LoRA adapter to GGUF so llama.cpp serves it")
    openai: OpenAIFineTune = Field(default_factory=OpenAIFineTune)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str) -> str:
        from .backend_names import check_name

        return check_name(v)  # unknown: one UserError naming train.backend, with did-you-mean

    @field_validator("gpus", mode="before")
    @classmethod
    def _gpu_list(cls, v):
        v = None if v is None else str(v).replace(" ", "")
        if v is not None and not re.fullmatch(r"\d+(,\d+)*", v):
            raise ValueError("not a list of GPU numbers; write e.g. '5' or '4,5' (hybridtune doctor lists the GPUs)")
        return v


def model_tc(tc: TrainConfig, variant) -> TrainConfig:
    """The training settings of one model: a further seed's model (train.seeds) trains with its seed."""
    return tc if variant.seed is None or variant.seed == tc.seed else tc.model_copy(update={"seed": variant.seed})
