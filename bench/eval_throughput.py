"""Benchmark: evaluation throughput on the embedded model (issue 7).

simulate + score of S scenarios x 3 variants (all three = the packaged SmolLM2-135M GGUF,
as no trained adapters exist in a bench run) at demo settings (3 counselor turns, counselor
max_tokens 100, patient 60, judge 200), cache off. Reports conversations/min (simulated and
judged) and the share of wall time spent outside the model, against the baseline of time
inside llama.cpp's create_chat_completion measured in the same run (ratio = wall / model).
Scenarios come from the CACTUS evaluation set when present (`data_file`), else two built-in ones.

    .venv/bin/python bench/eval_throughput.py [--scenarios 2]
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time

from common import Result, data_file, record

from hybridtune.config import load_config
from hybridtune.context import open_run
from hybridtune.evaluate import score, simulate
from hybridtune.evaluate.scenarios import load_scenarios_file
from hybridtune.llm import llamacpp
from hybridtune.records import ModelEntry, Scenario
from hybridtune.registry import save_entry

CMD = ".venv/bin/python bench/eval_throughput.py --scenarios {n}"
CALLS: list[tuple[float, float]] = []  # (start, end) of every llama.cpp call
_lock = threading.Lock()


def instrument() -> None:
    """Record when each llama.cpp call runs (the baseline: time the model is busy)."""
    orig = llamacpp.LlamaCppBackend._complete_sync

    def timed(self, req):
        t0 = time.perf_counter()
        try:
            return orig(self, req)
        finally:
            with _lock:
                CALLS.append((t0, time.perf_counter()))

    llamacpp.LlamaCppBackend._complete_sync = timed


def busy(t0: float, t1: float) -> float:
    """Seconds in [t0, t1] during which at least one model call ran (union of intervals:
    conversations run concurrently on separate model instances, so call times overlap)."""
    total, end = 0.0, t0
    for a, b in sorted((max(a, t0), min(b, t1)) for a, b in CALLS if b > t0 and a < t1):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def scenarios(n: int) -> list[Scenario]:
    path = data_file("cactus", "evaluation.json", required=False)
    if path is not None:
        good, _ = load_scenarios_file(path)
        return good[::3][:n]  # one attitude per intake form, different forms
    base = [Scenario(id=f"b{i}", summary=s, scenario=s, attitude="neutral") for i, s in enumerate([
        "I missed a deadline at work and keep thinking my manager will fire me.",
        "My son was upset I missed his game and I believe I am a terrible parent."])]
    return base[:n]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenarios", type=int, default=2)
    args = ap.parse_args()
    instrument()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(None, [f"runs_dir={tmp}", "quiet=true", "llm.cache=false", "evaluate.max_turns=3",
                                 "roles.counselor.max_tokens=100", "roles.patient.max_tokens=60",
                                 "roles.judge.max_tokens=200", "roles.judge.temperature=0",
                                 "endpoints.local.max_in_flight=1", "llm.max_failure_rate=1.0"])
        with open_run(cfg) as ctx:
            for v in ("base", "real", "hybrid"):
                save_entry(ctx.store, ModelEntry(variant=v, backend="llamacpp", model="smollm2"))
            ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", scenarios(args.scenarios))
            t0 = time.perf_counter()
            sim = ctx.run_stage("simulate", simulate.run)
            t_sim = time.perf_counter() - t0
            sc = ctx.run_stage("score", score.run)
            t1 = time.perf_counter()
            wall = t1 - t0
            m_sim = busy(t0, t0 + t_sim)
            model = busy(t0, t1)
            usage = {(r["stage"], r["role"]): r for r in ctx.llms.usage.table()}
    n = sim["conversations"]
    out_tokens = sum(r["completion_tokens"] for r in usage.values())
    notes = (f"{args.scenarios} scenarios x 3 variants, 3 counselor turns; simulate {t_sim:.0f} s, score {wall - t_sim:.0f} s; "
             f"{sc['scored']}/{sc['judgments']} judgments valid; {out_tokens} completion tokens; CPU shared with other jobs")
    record("eval_throughput", [
        Result("simulate+score conversations/min (embedded SmolLM2, demo settings)", f"{60 * n / wall:.2f} conv/min",
               f"model busy (>= 1 llama.cpp call running) {model:.0f} s of {wall:.0f} s wall", round(wall / model, 3), "<= 1.10 (wall / model)",
               wall / model <= 1.10, CMD.format(n=args.scenarios), notes,
               {"conversations": n, "wall_s": wall, "model_s": model, "simulate_s": t_sim, "simulate_model_s": m_sim, "model_calls": len(CALLS),
                "model_call_s_sum": sum(b - a for a, b in CALLS),
                "share_outside_model": 1 - model / wall, "end_reasons": sim.get("end_reasons")}),
        Result("share of evaluation wall time outside the model", f"{100 * (1 - model / wall):.1f}%",
               "wall time of simulate+score", round(1 - model / wall, 4), "<= 0.10", (1 - model / wall) <= 0.10,
               CMD.format(n=args.scenarios), "outside = wall time with no model call running: prompt rendering, records, stats, fsync, scheduling"),
    ])


if __name__ == "__main__":
    main()
