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
    import sys

    if str(BENCH) not in sys.path:  # the script imports bench/common.py as `common`, as when run from bench/
        sys.path.insert(0, str(BENCH))
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


def test_the_throughput_table_is_the_measured_one_and_names_its_source():
    from hybridtune.train.throughput import MEASURED, SOURCE, tokens_per_s

    rows = [r["extra"] for r in json.loads((BENCH / "results" / "gpu_train.json").read_text())["results"]
            if "tokens_per_s" in r["extra"] and "size" in r["extra"]]
    assert {(m["params_b"], m["batch"]): m["tokens_per_s"] for m in rows} == {
        (p, b): t for p, by in MEASURED.items() for b, t in by.items()}
    assert SOURCE.startswith("bench/results/gpu_train.json")
    tc = TrainConfig(batch_size=4, gradient_checkpointing=True)
    assert tokens_per_s(7.62e9, tc, 1)[0] == 2602.3  # the H200 measurement of gpu.yaml's shape, not 3,590
    # checkpointing's recompute is counted: without it the same step is faster
    assert tokens_per_s(7.62e9, tc.model_copy(update={"gradient_checkpointing": False}), 1)[0] == 2602.3 * 1.5
    z3 = tokens_per_s(7.62e9, tc.model_copy(update={"accelerate_config": "deepspeed_zero3"}), 4)
    assert z3[0] == 2602.3 * 4 * 0.8 and "not measured" in z3[1]


def test_dry_run_prices_gpu_hours_and_shows_cost_without_keys_or_servers(make_cfg):
    from hybridtune.errors import UserError
    from hybridtune.preflight import preflight

    import pytest

    cfg = make_cfg("llm.gpu_hour_usd=2.5", "endpoints.vllm.base_url=http://127.0.0.1:9/v1",
                   "endpoints.large.base_url=http://127.0.0.1:9/v1", "train.device=cpu", "real.inputs=[nothing/here]",
                   path="configs/gpu-1x.yaml", backend="")
    with pytest.raises(UserError) as e:
        preflight(cfg)
    text = str(e.value)
    assert "cannot list models" in text and "the real inputs are not readable, so their sizes are stand-ins" in text
    line = next(x for x in text.splitlines() if "local LoRA: 2 variant(s) of Qwen/Qwen2.5-7B-Instruct" in x)
    hours = float(line.split("~")[2].split(" GPU hours")[0])
    assert f"${hours * 2.5:.2f} at llm.gpu_hour_usd $2.5" in line
    assert "Qwen/Qwen2.5-14B-Instruct-AWQ" in text  # full model names in the table
