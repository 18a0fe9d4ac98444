"""Benchmark: the embedded judge and annotator against experts' labels (AnnoMI).

1. Judge: `--pairs` low-MI-quality AnnoMI transcripts, each matched with a high-quality one of
   its topic (evaluate/experts.py, as in the calibrate stage); the embedded SmolLM2-135M judge
   rates the middle `--window` messages of each with the score stage's rubrics. Figure: AUC
   of its ratings, high against low (within topic where the pair shares one, with a bootstrap
   CI), and the share of matched pairs ranked the right way. Same-run baseline: the same AUC
   for "the excerpt with more counselor words is better" on the same excerpts (chance = 0.5).
2. Annotator: the real stage's turn annotator (same model) on `--turns` expert-coded therapist
   utterances, its technique ids mapped to AnnoMI's codes (domains/cbt/expert_codes.yaml).
   Figure: Cohen's kappa with a bootstrap CI over turns; baseline: always the commonest expert
   code (kappa 0), with per-class kappa and F1 in the notes.

`mi_quality` (judge AUC, first metric) and `kappa` are also kept at the top of the result file.

    .venv/bin/python bench/judge_experts.py [--pairs 6] [--window 8] [--turns 20] [--metrics empathy]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time

from common import Result, data_file, record

from hybridtune.config import load_config
from hybridtune.context import open_run
from hybridtune.evaluate import experts


def length_auc(ts: list[experts.ExpertTranscript], pairs: list[tuple[str, str]], window: int,
               metric: str) -> float | None:
    """The baseline: counselor words in the excerpt as the 'rating', analysed like the judge's."""
    rs = [experts.ExpertRating(id=t.id, transcript_id=t.id, quality=t.quality, topic=t.topic_key, metric=metric,
                               sample=0, judge_model="length", prompt="",
                               score=sum(len(m.content.split()) for m in experts.excerpt(t, window)
                                         if m.role == "assistant")) for t in ts]
    return experts.analyze(rs, pairs, [metric], 0.5)[metric]["auc"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pairs", type=int, default=6, help="low-quality transcripts, each with a high-quality one")
    ap.add_argument("--window", type=int, default=8, help="messages from the middle of each transcript")
    ap.add_argument("--turns", type=int, default=20, help="expert-coded therapist utterances annotated")
    ap.add_argument("--metrics", default="empathy", help="judge metrics, comma-separated")
    a = ap.parse_args()
    src = data_file("annomi", "AnnoMI-simple.csv")
    cmd = (f".venv/bin/python bench/judge_experts.py --pairs {a.pairs} --window {a.window} --turns {a.turns} "
           f"--metrics {a.metrics}")
    metrics = a.metrics.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config("configs/demo.yaml", [
            f"runs_dir={tmp}", "name=bench-experts", "quiet=true", f"evaluate.metrics=[{','.join(metrics)}]",
            f"evaluate.trust.experts={src}", f"evaluate.trust.expert_pairs={a.pairs}",
            f"evaluate.trust.expert_window={a.window}", "evaluate.trust.calib_samples=1", "llm.max_failure_rate=1.0"])
        ts = experts.load_annomi(src)
        with open_run(cfg) as ctx:
            st = ctx.store.stage("calibrate")
            t0 = time.time()
            judge = asyncio.run(experts.check(ctx, st))
            judge_s = time.time() - t0
            print(f"judge: {judge_s:.0f}s; {judge.get('verdict')}", flush=True)
            t0 = time.time()
            ann = asyncio.run(experts.annotator_agreement(ctx, st, ts, a.turns, cfg.seed))
            ann_s = time.time() - t0
            print(f"annotator: {ann_s:.0f}s; kappa {ann.get('annotator', {}).get('kappa')}", flush=True)
            asyncio.run(ctx.llms.aclose())
    load = f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    pairs = experts.matched_pairs(ts, a.pairs, cfg.seed)
    chosen = [t for p in pairs for t in p]
    ids = [(h.id, lo.id) for h, lo in pairs]
    results = []
    for m, r in judge["metrics"].items():
        base = length_auc(chosen, ids, a.window, m)
        ci = r["auc_ci"]
        results.append(Result(
            benchmark=f"judge vs experts: MI quality AUC, {m} (embedded SmolLM2-135M judge, AnnoMI high vs low)",
            figure=f"AUC {r['auc']:.2f} ({r['auc_kind']}" + (f", 95% CI {ci[0]:.2f}-{ci[1]:.2f})" if ci else ")")
            if r["auc"] is not None else "AUC n/a (no parsed ratings)",
            baseline=f"counselor-words AUC {base:.2f}" if base is not None else "n/a",
            ratio=round(r["auc"] / base, 3) if r["auc"] is not None and base else None,
            target="CI lower bound > 0.5 (passes the calibrate gate)", met=bool(r["passes"]), command=cmd,
            notes=(f"{judge['pairs']} matched pairs ({judge['same_topic_pairs']} same topic), {a.window}-message "
                   f"excerpts, k=1; {judge['ratings']}/{judge['ratings_planned']} ratings parsed; pooled AUC "
                   f"{r['auc_pooled']}; matched pairs ranked right {r['matched_share']}; mean high {r['mean_high']}, "
                   f"low {r['mean_low']}; {judge_s:.0f}s at {load}"),
            extra=r))
    ann_res, base_res, kci = ann.get("annotator") or {}, ann.get("baseline") or {}, ann.get("kappa_ci")
    per = ", ".join(f"{c} kappa {v['kappa'] if v['kappa'] is None else round(v['kappa'], 2)} F1 {v['f1']:.2f} "
                    f"(n={v['support']})" for c, v in (ann_res.get("per_class") or {}).items())
    results.append(Result(
        benchmark="annotator vs experts: AnnoMI therapist codes, Cohen's kappa (embedded SmolLM2-135M annotator)",
        figure=f"kappa {ann_res.get('kappa', float('nan')):.2f}"
        + (f" (95% CI {kci[0]:.2f}-{kci[1]:.2f})" if kci else "")
        + f", accuracy {ann_res.get('accuracy', float('nan')):.2f}",
        baseline=f"majority class '{ann.get('majority_class')}': kappa {base_res.get('kappa')}, accuracy "
                 f"{base_res.get('accuracy', float('nan')):.2f}",
        ratio=None, target="kappa CI lower bound > 0 (better than the majority class)",
        met=bool(kci and kci[0] > 0),
        command=cmd, notes=f"{ann['labelled']}/{ann['turns']} turns labelled; per class: {per}; macro F1 "
                           f"{ann_res.get('macro_f1')} vs baseline {base_res.get('macro_f1')}; {ann_s:.0f}s at {load}",
        extra=ann))
    first = judge["metrics"].get(metrics[0], {})
    record("judge_experts", results, headline={"mi_quality": first.get("auc"), "kappa": ann_res.get("kappa"),
                                               "command": cmd})


if __name__ == "__main__":
    main()
