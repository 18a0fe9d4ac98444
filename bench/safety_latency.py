"""Benchmark: what the learned crisis layer adds per turn (issue 17 target: under 20 ms), in chat's setting.

One turn at a time, as chat and serve screen them, over AnnoMI client turns: rules alone vs
rules + learned layer (embedder + head), wall and CPU time, with torch's default threads (the
layer itself scores a turn on one thread: learned.one_thread). The same run splits the added CPU
into the embedder's forward (tokenizer included), the head, and CPU spent by threads other than
the one that called (spin-waiting thread pools; it should be ~0).

    .venv/bin/python bench/safety_latency.py [--turns 200]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from common import Result, data_file, latency, record

from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.screen import Screener


def annomi_turns() -> list[str]:
    import csv

    with data_file("annomi", "AnnoMI-simple.csv").open(encoding="utf-8") as f:
        return [r["utterance_text"] for r in csv.DictReader(f) if r["interlocutor"] == "client" and r["utterance_text"].strip()]


def parts(texts: list[str]) -> tuple[float, float]:
    """CPU seconds per turn of the learned layer's two parts, as it runs them on a turn: forward, head."""
    from hybridtune.embed import default_embedder
    from hybridtune.safety.learned import load_learned, one_thread, windows

    head, emb, X = load_learned().head, default_embedder(), []
    with one_thread():
        c0 = time.process_time()
        for t in texts:
            X.append(emb.forward(windows(t)))
        c1 = time.process_time()
        for x in X:
            head.p_risk(x, head.proba(x))
        c2 = time.process_time()
    return (c1 - c0) / len(texts), (c2 - c1) / len(texts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    a = ap.parse_args()
    turns = annomi_turns()
    sample = turns[:: max(1, len(turns) // a.turns)][: a.turns]
    load0 = os.getloadavg()[0]
    rw, rc, _ = latency(Screener(SafetyConfig(learned=False)), sample)
    lw, lc, lo = latency(Screener(SafetyConfig()), sample)
    fwd, head = parts(sample)
    load = f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after"
    record("safety_latency", [Result(
        benchmark="latency per turn added by the learned layer (AnnoMI client turns, one at a time, torch's default threads)",
        figure=f"+{(lc - rc) * 1000:.1f} ms CPU (+{(lw - rw) * 1000:.1f} ms wall) per turn",
        baseline=f"rules alone {rc * 1e6:.0f} us CPU per turn", ratio=round(lc / max(rc, 1e-9), 1),
        target="< 20 ms added", met=(lc - rc) < 0.020, command=f".venv/bin/python bench/safety_latency.py --turns {a.turns}",
        notes=f"{len(sample)} turns, median {statistics.median(len(t) for t in sample)} characters; of the CPU per turn: "
              f"embedder forward with tokenizer {fwd * 1000:.1f} ms, head {head * 1000:.2f} ms (measured apart on the "
              f"same turns), threads other than the caller's {lo * 1000:.2f} ms; the 2 cores are shared with other "
              f"jobs ({load}), so wall time runs above CPU time and CPU time itself rises with the load (shared caches "
              "and memory bandwidth)",
        extra={"rules_wall_s": rw, "rules_cpu_s": rc, "learned_wall_s": lw, "learned_cpu_s": lc,
               "learned_other_threads_cpu_s": lo, "forward_cpu_s": fwd, "head_cpu_s": head})])


if __name__ == "__main__":
    main()
