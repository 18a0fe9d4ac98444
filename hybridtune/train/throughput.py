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
