"""The GPU memory estimate the train stage checks before training, against the peaks measured
on an H200 (bench/results/gpu_train.json, bench/gpu_train.py): never below a measured peak, and
not so far above that it refuses runs that fit."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from hybridtune.train.base_model import estimate_gpu_bytes
from hybridtune.train.config import TrainConfig

BENCH = Path(__file__).resolve().parents[2] / "bench"


def shapes() -> dict:
    spec = importlib.util.spec_from_file_location("gpu_train", BENCH / "gpu_train.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.QWEN


def test_the_estimate_covers_every_measured_peak_within_30_percent():
    rows = [r["extra"] for r in json.loads((BENCH / "results" / "gpu_train.json").read_text())["results"]
            if "peak_reserved_gib" in r["extra"]]
    assert len(rows) >= 10
    qwen = shapes()
    for m in rows:
        hidden, inter, layers, _, _, vocab, _ = qwen[m["size"]]
        tc = TrainConfig(batch_size=m["batch"], max_seq_len=2048, gradient_checkpointing=True)
        est = estimate_gpu_bytes(int(m["params_b"] * 1e9), tc, hidden=hidden, layers=layers, vocab=vocab,
                                 intermediate=inter) / 2**30
        assert m["peak_reserved_gib"] <= est <= 1.3 * m["peak_reserved_gib"], (m["size"], m["batch"], est)
