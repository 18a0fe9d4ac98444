"""Base model for local fine-tuning: resolve, cache as safetensors, check it fits in memory.

Input: `train.base_model` ('smollm2', a .gguf path, a transformers folder, or a Hugging
Face model id such as Qwen/Qwen2.5-7B-Instruct). Output: a transformers folder (config +
safetensors + tokenizer). A GGUF is dequantized by transformers once
(`from_pretrained(dir, gguf_file=...)`, ~25 s) and saved under `train.cache_dir/<name>-<hash>/`,
so later loads take seconds. A model id is fetched once into the Hugging Face cache
(`huggingface_hub.snapshot_download`; with HF_HUB_OFFLINE=1 only the cache is used).
Memory check: free RAM on the CPU; on CUDA the free memory of the fullest GPU the training
processes use, against a per-process estimate with the base weights split as the strategy
really splits them (ZeRO-3 and FSDP; not ddp or ZeRO-2).

    folder, gguf = prepare_base(cfg.train)     # gguf is the file llama.cpp serves (None for a folder)
"""
from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

from ..errors import UserError
from ..llm.llamacpp import PACKAGED_MODELS, find_gguf
from .config import TrainConfig


def resolve_base(name: str, download: bool = True) -> tuple[Path | None, Path | None]:
    """(gguf file, transformers folder): exactly one is set; unknown names are a UserError.
    `download=False` (the checks before a run): a model id must be in the local cache already."""
    p = Path(name).expanduser()
    if name.lower() in PACKAGED_MODELS or p.suffix == ".gguf":
        return find_gguf(name), None
    if p.is_dir() and (p / "config.json").is_file():
        return None, p
    if not p.exists() and re.fullmatch(r"[\w.-]+/[\w.-]+", name):
        return None, hub_folder(name, download)
    raise UserError(
        f"train.base_model: '{name}' is not a known model; use 'smollm2' (packaged), a .gguf file, "
        "a local transformers folder with config.json, or a Hugging Face model id (org/name)"
    )


def hub_folder(repo_id: str, download: bool = True) -> Path:
    """The local snapshot of a Hugging Face model (downloaded once; the cache only when offline)."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=not download, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                               "*.jinja", "*.tiktoken"]))
    except Exception as e:
        raise UserError(
            f"train.base_model: '{repo_id}' is not in the local Hugging Face cache"
            f"{' and could not be downloaded' if download else ''} "
            f"({type(e).__name__}); run `hf download {repo_id}` where there is network "
            "(HF_HUB_OFFLINE=1 forbids downloads), or point train.base_model at a local folder") from None


def _cache_folder(cache_dir: str, gguf: Path) -> Path:
    st = gguf.stat()
    key = hashlib.sha256(f"{gguf.resolve()}:{st.st_size}:{int(st.st_mtime)}".encode()).hexdigest()[:10]
    return Path(cache_dir).expanduser() / f"{gguf.stem}-{key}"


def prepare_base(tc: TrainConfig) -> tuple[Path, Path | None]:
    """A transformers folder for `tc.base_model`, dequantizing and caching a GGUF on first use."""
    gguf, folder = resolve_base(tc.base_model)
    if folder is not None:
        return folder, None
    out = _cache_folder(tc.cache_dir, gguf)
    if (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file():
        return out, gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    # the GGUF is fully dequantized to fp32 already; drop the quantizer so it saves as a plain model
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + f".tmp{os.getpid()}")
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    tmp.rename(out)  # whole folder or nothing: a killed conversion never leaves a half cache
    return out, gguf


def count_params(folder: Path | None = None, gguf: Path | None = None) -> int:
    """Parameter count without loading the weights (GGUF header or safetensors header)."""
    if gguf is not None:
        from gguf import GGUFReader

        return int(sum(int(t.n_elements) for t in GGUFReader(str(gguf)).tensors))
    from safetensors import safe_open

    n = 0
    for f in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(str(f), "pt") as sf:
            for k in sf.keys():
                n += _prod(sf.get_slice(k).get_shape())
    return n


def _prod(shape) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def available_memory_bytes() -> int:
    """MemAvailable from /proc/meminfo (Linux), else total physical memory."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def estimate_memory_bytes(n_params: int, tc: TrainConfig, hidden: int = 576, layers: int = 30, vocab: int = 49152) -> int:
    """Rough peak of a CPU LoRA run: fp32 weights (+ a load-time copy) and activations with
    gradient flow through every layer. Measured ~3-4 GB for SmolLM2-135M at 512 tokens x 4."""
    tokens = tc.batch_size * tc.max_seq_len
    weights = n_params * 4 * 2
    activations = tokens * (layers * hidden * 4 * 40 + vocab * 4 * 3)
    return int(weights + activations)


def model_dims(folder: Path | None) -> dict:
    """hidden and MLP sizes, layers and vocabulary from a transformers config.json (defaults: SmolLM2-135M)."""
    try:
        c = json.loads((Path(folder) / "config.json").read_text())
        return {"hidden": int(c["hidden_size"]), "layers": int(c["num_hidden_layers"]), "vocab": int(c["vocab_size"]),
                "intermediate": int(c.get("intermediate_size", 4 * c["hidden_size"]))}
    except (OSError, TypeError, KeyError, ValueError):
        return {}


def estimate_gpu_bytes(n_params: int, tc: TrainConfig, shards: int = 1, hidden: int = 576, layers: int = 30,
                       vocab: int = 49152, intermediate: int = 1536) -> int:
    """Peak GPU memory per process of a LoRA run, +15% margin. With gradient checkpointing it is
    fitted to peaks measured on an H200 (bench/gpu_train.py: Qwen2.5 shapes 0.5B-32B, batch 1 and
    4 x 2048; the fit is within -13%..+2% of every one): bf16 weights (4-bit with QLoRA, divided
    across processes under ZeRO-3/FSDP), LoRA weights, gradients and Adam states (~4% of the
    parameters' count in bytes), and per token 3 bytes x hidden x layers (the checkpointed layer
    inputs) + 27 bytes x intermediate (one layer recomputed; TRL's fused LM head keeps the
    logits small). Without checkpointing, every layer keeps its activations (~28 x hidden +
    10 x intermediate bytes per token, LoRA dropout copies included): from the shapes, not
    measured."""
    tokens = tc.batch_size * tc.max_seq_len
    weights = n_params * (0.55 if tc.qlora else 2.0) / shards + 0.04 * n_params
    if tc.gradient_checkpointing:
        per_token = 3 * hidden * layers + 27 * intermediate
    else:
        per_token = layers * (28 * hidden + 10 * intermediate)
    return int((weights + tokens * per_token) * 1.15)


SHARDED = ("deepspeed_zero3", "fsdp")  # strategies that split the base weights across processes


def weight_shards(tc: TrainConfig, gpus: int) -> int:
    """Into how many pieces the strategy splits the base weights: the process count under ZeRO-3
    (loaded sharded, `local.make_trainer`) and FSDP, 1 under ddp and ZeRO-2 (a whole copy per GPU)."""
    if tc.accelerate_config not in SHARDED:
        return 1
    return max(gpus, 1) if tc.num_processes == "auto" else tc.num_processes


def check_fits(n_params: int, tc: TrainConfig, folder: Path | None = None, *, gpus: int | None = None,
               free_bytes: int | None = None, **dims) -> None:
    """Refuse a run that cannot fit before spending time on it: on GPUs against the free memory of
    the fullest one the processes use (a vLLM server on the same card has taken its share)."""
    from .hardware import free_gpu_bytes, gpu_indices

    dims = {**model_dims(folder), **dims}
    gpus = len(gpu_indices(tc)) if gpus is None else gpus
    if gpus:
        procs = gpus if tc.num_processes == "auto" else min(tc.num_processes, gpus)
        shards = weight_shards(tc, gpus)
        need = estimate_gpu_bytes(n_params, tc, shards, **dims)
        have = free_gpu_bytes(gpu_indices(tc)[:procs]) if free_bytes is None else free_bytes
        if need > have:
            shard = "" if shards == 1 else f" (weights split {shards} ways by {tc.accelerate_config})"
            raise UserError(
                f"train.base_model: {tc.base_model} ({n_params / 1e9:.1f}B params) needs about {need / 2**30:.0f} GiB "
                f"per GPU{shard} at batch_size={tc.batch_size} x max_seq_len={tc.max_seq_len}, and the fullest GPU "
                f"has {have / 2**30:.0f} GiB free; set train.gradient_checkpointing=true, lower train.batch_size, "
                "use train.accelerate_config=deepspeed_zero3 or fsdp across more GPUs, train.qlora=true, or free "
                "the GPU (a server on it: lower its --gpu-memory-utilization)")
        return
    if tc.qlora:
        return
    cpu_dims = {k: v for k, v in dims.items() if k in ("hidden", "layers", "vocab")}
    need, have = estimate_memory_bytes(n_params, tc, **cpu_dims), available_memory_bytes()
    if need > have:
        raise UserError(
            f"train.base_model: {tc.base_model} ({n_params / 1e6:.0f}M params) needs about {need / 2**30:.1f} GiB "
            f"at batch_size={tc.batch_size} x max_seq_len={tc.max_seq_len}, but {have / 2**30:.1f} GiB is free; "
            "lower train.batch_size or train.max_seq_len (raise train.grad_accum), or pick a smaller model"
        )


def check_qlora(tc: TrainConfig) -> None:
    if not tc.qlora:
        return
    import importlib.util

    import torch

    if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
        raise UserError(
            "train.qlora: QLoRA needs the bitsandbytes package and a CUDA GPU, and this machine "
            f"has {'no GPU' if not torch.cuda.is_available() else 'no bitsandbytes'}; set train.qlora=false "
            "(plain LoRA runs on the CPU)"
        )
