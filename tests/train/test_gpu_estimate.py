"""The GPU memory estimate the train stage checks before training, against the peaks measured
on an H200 (bench/results/gpu_train.json, bench/gpu_train.py): never below a measured peak, and
not so far above that it refuses runs that fit."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

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
    serving = next(x for x in text.splitlines() if "serving: ~" in x)  # no key, no server
    hours = float(serving.split("~")[1].split(" GPU hours")[0])
    usd = float(serving.split("), $")[1].split(" at llm.gpu_hour_usd $2.5")[0])
    assert hours > 0 and usd == pytest.approx(hours * 2.5, abs=0.02)  # hours printed to 0.01


def _gpu_estimate(make_cfg, *sets: str, path: str = "configs/gpu.yaml"):
    from hybridtune.estimate import RealData, estimate

    return estimate(make_cfg(*sets, path=path, backend=""), RealData())


def test_gpu_yaml_estimates_serving_gpu_hours_per_stage_and_role_and_prices_them(make_cfg):
    est = _gpu_estimate(make_cfg, "llm.gpu_hour_usd=2.5")
    assert est.rows and all(r.gpu_hours > 0 for r in est.rows)  # every model of gpu.yaml is on its own vLLM
    for r in est.rows:
        assert r.usd == r.gpu_hours * 2.5
    # tokens over the table's tokens/s, times the GPUs the server holds (the 72B: 4)
    from hybridtune.train.throughput import serving

    for (stage, role), params in {("synth", "patient"): 72e9, ("synth", "counselor"): 7e9}.items():
        r = next(r for r in est.rows if (r.stage, r.role) == (stage, role))
        gpus, prompt, output = serving(params)
        assert r.gpu_hours == pytest.approx((r.input_tokens / prompt + r.output_tokens / output) / 3600 * gpus)
    counselor = next(r for r in est.rows if (r.stage, r.role) == ("synth", "counselor"))
    lines = est.lines()
    serving = next(x for x in lines if x.startswith("serving: ~"))
    hours = sum(r.gpu_hours for r in est.rows)
    assert f"~{hours:.2f} GPU hours" in serving and f"${hours * 2.5:.2f} at llm.gpu_hour_usd $2.5" in serving
    assert "Qwen/Qwen2.5-72B-Instruct on 4 GPU(s)" in serving and "Qwen/Qwen2.5-7B-Instruct on 1 GPU(s)" in serving
    assert est.total_usd == pytest.approx(est.training_usd + hours * 2.5)
    synth = next(x for x in lines if x.startswith("synth") and "counselor" in x)
    assert f"{counselor.usd:.2f} ({counselor.gpu_hours:.3g} GPU h)" in synth


def test_serving_hours_scale_with_the_number_of_sessions(make_cfg):
    def synth_hours(n: int) -> float:
        est = _gpu_estimate(make_cfg, f"synth.sessions={n}")
        return sum(r.gpu_hours for r in est.rows if r.stage == "synth")

    assert synth_hours(500) > 0 and synth_hours(1000) == pytest.approx(2 * synth_hours(500))


def test_an_api_endpoint_gets_token_cost_not_gpu_hours(make_cfg):
    est = _gpu_estimate(make_cfg, "endpoints.large.base_url=https://api.openai.com/v1", "endpoints.large.model=gpt-4o",
                        "llm.prices.gpt-4o={input: 2.5, output: 10.0}", "llm.gpu_hour_usd=2.5")
    for r in est.rows:
        if r.role in ("patient", "judge"):  # at OpenAI: priced by tokens
            assert r.gpu_hours == 0 and r.usd == pytest.approx((r.input_tokens * 2.5 + r.output_tokens * 10) / 1e6)
        else:  # the 7B and its adapters stay on the user's vLLM
            assert r.gpu_hours > 0
    est = _gpu_estimate(make_cfg, path="configs/openai.yaml")
    assert all(r.gpu_hours == 0 for r in est.rows) and not any(x.startswith("serving:") for x in est.lines())
    # a llama.cpp server (a .gguf model) is not vLLM on GPUs: its rows stay unpriced, as before
    est = _gpu_estimate(make_cfg, "endpoints.vllm.model=models/Qwen2.5-7B-Q4_K_M.gguf")
    assert [r.gpu_hours for r in est.rows if r.role == "counselor"] == [0, 0, 0, 0]


def test_unpriced_serving_hours_never_read_as_zero_dollars(make_cfg):
    from hybridtune.estimate import dollars

    est = _gpu_estimate(make_cfg, path="configs/gpu-1x.yaml")  # no llm.gpu_hour_usd
    lines = est.lines()
    rows = [x for x in lines if "GPU h)" in x]
    assert len(rows) == len(est.rows) and not any(" 0.00 (" in x for x in rows)
    assert all(x.split("(")[-2].split()[-1] == "?" for x in rows)
    assert "$? (set llm.gpu_hour_usd)" in next(x for x in lines if x.startswith("serving: ~"))
    total = next(x for x in lines if x.startswith("estimated total: $"))
    assert total.endswith("GPU hours unpriced (set llm.gpu_hour_usd)")
    assert dollars(0.004) == "<0.01" and dollars(0) == "0.00" and dollars(1.234) == "1.23"


def test_the_serving_table_names_its_source_and_says_it_was_not_measured_here(make_cfg):
    from hybridtune.train.throughput import SERVED, SERVING_SOURCE, serving

    assert "assumptions, not measured here" in SERVING_SOURCE
    assert "nm-vllm" in SERVING_SOURCE and "evokernel" in SERVING_SOURCE
    assert set(SERVED) == {7.0, 70.0}
    assert serving(7e9) == (1, *SERVED[7.0][1:])  # a tabled size on its tabled GPUs: the row itself
    gpus, prompt, output = serving(72e9)
    assert gpus == 4 and output == pytest.approx(1480 * 70 / 72 * 4 / 8)
    assert serving(14e9, quantized=True)[0] == 1 and serving(14e9)[0] == 1 and serving(32e9)[0] == 2
    notes = _gpu_estimate(make_cfg).notes
    assert f"serving GPU hours from {SERVING_SOURCE}" in notes


def test_the_guard_server_is_estimated_for_every_client_turn_curate_screens(make_cfg):
    from hybridtune.estimate import RealData, estimate

    cfg = make_cfg("synth.sessions=100", "synth.min_exchanges=4", "synth.max_exchanges=6", path="configs/gpu.yaml",
                   backend="")
    real = RealData([[("user", "I feel low"), ("assistant", "Tell me more."), ("user", "work")]])
    guard = next(r for r in estimate(cfg, real).rows if r.role == "guard")
    assert (guard.stage, guard.model) == ("curate", "meta-llama/Llama-Guard-3-8B")
    assert guard.calls == 100 * (5 + 1) + 2 and guard.gpu_hours > 0  # 6 client turns a session, 2 real turns
    off = estimate(cfg.model_copy(update={"safety": cfg.safety.model_copy(update={"guard_endpoint": None})}), real)
    assert not any(r.role == "guard" for r in off.rows)
