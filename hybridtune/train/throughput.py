"""LoRA training throughput measured on a GPU, for the dry run's GPU hours (hybridtune/estimate.py).

SOURCE: bench/results/gpu_train.json (bench/gpu_train.py, 2026-11-29): Qwen2.5 shapes with random
weights, NVIDIA H200, one process, bf16, gradient checkpointing on, 2048-token sequences, batch 1
and 4; tokens/s = trained tokens / step time. tests/train/test_gpu_estimate.py keeps this table
equal to that file. What was not measured is scaled, and the line says so: without gradient
checkpointing a step skips the recomputed forward pass (LoRA trains no base weight gradients: a
forward and a backward through the activations, 2 units, against 3 with the recompute), so x1.5;
N processes x N under ddp / ZeRO-2 and x 0.8 N under ZeRO-3 / FSDP (the weights gathered every
layer); an A100 at 0.5x an H200 (its bf16 peak and memory bandwidth are about half).

    tps, how = tokens_per_s(7.6e9, cfg.train, gpus=1)    # (2602.3, "measured ...") for batch 4, checkpointing
    gpus, prompt_tps, output_tps = serving(72e9)         # a vLLM server's GPUs and tokens/s, from SERVED

SERVED: vLLM serving throughput. Nothing was measured here; the rows are published figures, labelled
as assumptions (SERVING_SOURCE names them). A model is placed on the fewest GPUs, a power of two,
whose 80 GB hold its bf16 weights in half the memory (the rest is KV cache): 1 up to 20B, 4 for 72B;
its tokens/s are the nearest row's, scaled by parameters (decode reads every weight once a step) and
by GPUs (tensor parallel, assumed linear). Prompt and output tokens are counted as if they did not
overlap (vLLM batches both), so the hours lean high. Sources (read through the stored-docs search,
not re-run): github.com/neuralmagic/nm-vllm/commit/4c041221fb69670a5aa00d30d1bcf656586b7e3c
(Llama-2-7b, 1 A10G, vLLM 0.2.0: 3.84 requests/s of 256 prompt + 128 output tokens; the second
was taken as half prompt, half output time) and evokernel-specs.pages.dev/en/cases/
case-llama33-a100x8-vllm-001/ (Llama 3.3 70B, 8 A100, vLLM 0.6: decode 1,480, prefill 18,200
tokens/s; itself compiled from public vLLM benchmarks). A cross-check, not in the table:
yobitelcomm.github.io/bench/recipes/concurrency-sweep/ gives 1,384 tokens/s for Llama-3.1-8B on one
H100 80GB (vLLM 0.21, concurrency 16) against the 7B row's 905 output tokens/s: on an H100 the 7B's
hours lean high.
"""
from __future__ import annotations

import math

from .config import TrainConfig

SOURCE = "bench/results/gpu_train.json (NVIDIA H200, 1 process, bf16, gradient checkpointing, 2048 tokens)"
# billions of parameters -> {batch size: tokens/s}
MEASURED: dict[float, dict[int, float]] = {
    0.49: {1: 2440.2, 4: 7434.0},
    1.54: {1: 2639.6, 4: 8691.3},
    3.09: {1: 2235.6, 4: 6804.9},
    7.62: {1: 1394.5, 4: 2602.3},
    14.77: {1: 1584.5, 4: 2821.9},
    32.76: {1: 977.3, 4: 1624.5},
}
NO_CHECKPOINTING = 1.5  # 3 passes' work with the recompute, 2 without
SHARDED_EFFICIENCY = 0.8  # ZeRO-3 / FSDP: per-layer all-gathers of the weights (assumed, not measured)


def measured(params: float, batch: int) -> float:
    """tokens/s of one H200 at the nearest measured batch (1 or 4), interpolated in log(params)."""
    b = 4 if batch >= 3 else 1
    sizes = sorted(MEASURED)
    x = math.log(params / 1e9)
    logs = [math.log(s) for s in sizes]
    if x <= logs[0]:
        return MEASURED[sizes[0]][b]
    if x >= logs[-1]:
        return MEASURED[sizes[-1]][b] * sizes[-1] * 1e9 / params  # beyond 33B: tokens/s falls with size
    i = next(i for i in range(1, len(logs)) if x <= logs[i])
    w = (x - logs[i - 1]) / (logs[i] - logs[i - 1])
    return MEASURED[sizes[i - 1]][b] * (1 - w) + MEASURED[sizes[i]][b] * w


def tokens_per_s(params: float, tc: TrainConfig, gpus: int) -> tuple[float, str]:
    """Training tokens/s of the whole launch, and how it was made (measured and scaled parts)."""
    tps = measured(params, tc.batch_size)
    how = [f"measured {tps:,.0f} tokens/s per GPU at batch {4 if tc.batch_size >= 3 else 1}"]
    if not tc.gradient_checkpointing:
        tps *= NO_CHECKPOINTING
        how.append(f"x{NO_CHECKPOINTING} without gradient checkpointing (not measured)")
    n = max(gpus, 1)
    if n > 1:
        eff = SHARDED_EFFICIENCY if tc.accelerate_config in ("deepspeed_zero3", "fsdp") else 1.0
        tps *= n * eff
        how.append(f"x{n * eff:g} for {n} processes under {tc.accelerate_config} (not measured)")
    return tps, "; ".join(how)


SERVING_SOURCE = ("vLLM serving tokens/s: assumptions, not measured here: 7B on 1 A10G (vLLM 0.2.0, 256 in / "
                  "128 out, 3.84 requests/s; nm-vllm benchmark commit 4c04122, split evenly by time) and "
                  "70B on 8 A100 (vLLM 0.6, decode 1,480 / prefill 18,200 tokens/s; "
                  "evokernel-specs case-llama33-a100x8-vllm-001)")
# billions of parameters -> (GPUs, prompt tokens/s, output tokens/s) of the whole server
SERVED: dict[float, tuple[int, float, float]] = {
    7.0: (1, 2 * 3.84 * 256, 2 * 3.84 * 128),
    70.0: (8, 18200.0, 1480.0),
}
GPU_GIB = 80


def serving_gpus(params: float) -> int:
    """GPUs a vLLM server of this size holds: bf16 weights in half of each 80 GB card, a power of two."""
    n = 1
    while params * 2 / 1e9 > n * GPU_GIB / 2:
        n *= 2
    return n


def serving(params: float, quantized: bool = False) -> tuple[int, float, float]:
    """(GPUs, prompt tokens/s, output tokens/s) of one vLLM server of the model; 4-bit weights
    (AWQ, GPTQ) take a quarter of the memory and are counted at bf16 speed."""
    gpus = serving_gpus(params / 4 if quantized else params)
    size = min(SERVED, key=lambda s: abs(math.log(params / 1e9 / s)))
    row_gpus, prompt, output = SERVED[size]
    scale = size * 1e9 / params * gpus / row_gpus
    return gpus, prompt * scale, output * scale
