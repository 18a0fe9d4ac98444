"""Benchmark: can the embedded judge tell real counselor turns from degraded ones, and what
does the held-out likelihood stage cost for three variants?

1. Judge calibration AUC (stage `calibrate`) of the embedded SmolLM2-135M judge on real,
   held-out ESConv test conversations (`data_file("esconv", "test.json")`), per metric, against
   the same-run baseline "prefer the longer reply" (length-baseline AUC). Honest number: a
   135M judge is expected to sit near 0.5 (chance).
2. Likelihood stage wall time for 3 variants (the packaged GGUF registered as base / real /
   hybrid, since no fine-tuned adapters exist in a benchmark run) over the same sessions,
   as scored counselor tokens per second, against the same model's generation speed
   measured in the same run.

    .venv/bin/python bench/trust_calibration.py [--items 8] [--samples 1] [--sessions 6] [--turns 6] [--run-dir DIR]
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import tempfile
import time

from common import Result, data_file, esconv_sessions, record

from hybridtune.config import load_config
from hybridtune.context import open_run
from hybridtune.evaluate import calibrate, likelihood
from hybridtune.records import ModelEntry
from hybridtune.registry import save_entry


def gen_tok_per_s(ctx) -> float:
    """Baseline: the counselor's generation speed on one held-out context (same model, same run)."""
    llm = ctx.llm("counselor")
    t0 = time.time()
    r = asyncio.run(llm.chat([{"role": "user", "content": "I have been feeling low since I lost my job."}],
                             max_tokens=120, temperature=0.7, sample=int(time.time()) % 100_000))  # never cached
    return r.completion_tokens / (time.time() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=8, help="calibration originals (x5 versions)")
    ap.add_argument("--samples", type=int, default=1, help="judge samples per reply (k)")
    ap.add_argument("--sessions", type=int, default=6, help="held-out sessions scored by each variant")
    ap.add_argument("--turns", type=int, default=6, help="counselor turns scored per session")
    ap.add_argument("--run-dir", help="keep the run here and resume it (stage times come from each stage's "
                                      "_done.json, so a resumed run still reports the time the stage took)")
    a = ap.parse_args()
    data_file("esconv", "test.json")  # before any work: a missing data set is one line
    cmd = f".venv/bin/python bench/trust_calibration.py --items {a.items} --samples {a.samples} " \
          f"--sessions {a.sessions} --turns {a.turns}"
    with (contextlib.nullcontext(a.run_dir) if a.run_dir else tempfile.TemporaryDirectory()) as tmp:
        cfg = load_config("configs/demo.yaml", [
            f"runs_dir={tmp}", "name=bench-trust", "quiet=true", f"evaluate.trust.calib_items={a.items}",
            f"evaluate.trust.calib_samples={a.samples}", f"evaluate.trust.likelihood_sessions={a.sessions}",
            f"evaluate.trust.likelihood_turns={a.turns}", "evaluate.trust.simcheck_sessions=0",
            "llm.max_failure_rate=1.0"])
        with open_run(cfg) as ctx:
            sessions = esconv_sessions(max(a.items, a.sessions))
            ctx.store.stage("mix").write_records("test_real.jsonl", sessions)
            for v in ("base", "real", "hybrid"):
                save_entry(ctx.store, ModelEntry(variant=v, backend="llamacpp", model="smollm2"))
            gen = gen_tok_per_s(ctx)
            print(f"generation baseline: {gen:.1f} tok/s; load average {os.getloadavg()[0]:.1f}", flush=True)
            lik_s = ctx.run_stage("likelihood", likelihood.run)["seconds"]
            print(f"likelihood: {lik_s:.0f}s", flush=True)
            lik = ctx.store.stage("likelihood").read_summary()
            cal_s = ctx.run_stage("calibrate", calibrate.run)["seconds"]
            print(f"calibrate: {cal_s:.0f}s (this invocation's part if resumed)", flush=True)
            load = os.getloadavg()[0]
            cal = ctx.store.stage("calibrate").read_summary()
    toks = sum(v["test_real"]["tokens"] for v in lik["variants"].values())
    score_tps = toks / lik_s
    results = []
    for m, r in cal["metrics"].items():
        auc, base = r["auc"], r["length_baseline_auc"]
        results.append(Result(
            benchmark=f"judge calibration AUC, {m} (embedded SmolLM2-135M judge, ESConv test)",
            figure=f"AUC {auc:.2f}" if auc is not None else "AUC n/a (no parsed ratings)",
            baseline=f"length-only AUC {base:.2f}" if base is not None else "n/a",
            ratio=round(auc / base, 3) if auc is not None and base else None, target="AUC >= 0.70 (judge validated)",
            met=bool(auc is not None and auc >= 0.7), command=cmd,
            notes=(f"{cal['originals']} originals x {1 + len(cfg.evaluate.trust.degradations)} versions x k={a.samples}; "
                   f"{cal['ratings']}/{cal['ratings_planned']} ratings parsed; by degradation "
                   f"{json.dumps(r['auc_by_degradation'])}; mean original {r['mean_original']}, degraded "
                   f"{r['mean_degraded']}; stage {cal_s:.0f}s at load average {load:.1f} on {os.cpu_count()} cores"),
            extra=r))
    results.append(Result(
        benchmark=f"likelihood stage, 3 variants x {a.sessions} ESConv sessions (<= {a.turns} counselor turns each)",
        figure=f"{lik_s:.0f} s, {score_tps:.0f} scored tok/s", baseline=f"generation {gen:.0f} tok/s (same model)",
        ratio=round(score_tps / gen, 2) if gen else None, target="<= 90 s at demo size", met=lik_s <= 90,
        command=cmd, notes=f"{toks} counselor tokens scored; NLL per variant "
                           f"{ {v: round(x['test_real']['nll'], 3) for v, x in lik['variants'].items()} } "
                           f"(identical weights: the three NLLs must match); load average {load:.1f} on "
                           f"{os.cpu_count()} cores (shared machine: times scale with contention)",
        extra={"seconds": lik_s, "tokens": toks}))
    record("trust_calibration", results)


if __name__ == "__main__":
    main()
