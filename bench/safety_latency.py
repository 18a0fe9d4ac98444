"""Benchmark: what the learned crisis layer adds per turn (issue 17 target: under 20 ms), in chat's setting.

One turn at a time, as chat and serve screen them, over AnnoMI client turns: rules alone vs
rules + learned layer (embedder + head), wall and CPU time. torch runs one intra-op thread
here: on this 2-core machine shared by many jobs, more threads spin-wait against each other
and inflate both figures (bench/safety_screen.py measures with torch's default threads).

    .venv/bin/python bench/safety_latency.py [--turns 200]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time

from common import SHARED, Result, record

from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.screen import Screener


def annomi_turns() -> list[str]:
    import csv

    with (SHARED / "annomi" / "AnnoMI-simple.csv").open(encoding="utf-8") as f:
        return [r["utterance_text"] for r in csv.DictReader(f) if r["interlocutor"] == "client" and r["utterance_text"].strip()]


def latency(screener: Screener, texts: list[str]) -> tuple[float, float]:
    """Mean wall and CPU seconds per turn, one turn per call (chat screens turns one at a time)."""
    asyncio.run(screener.screen(texts[0]))  # model load is not per-turn latency

    async def go():
        for t in texts:
            await screener.screen(t)

    w0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(go())
    return (time.perf_counter() - w0) / len(texts), (time.process_time() - c0) / len(texts)


def main() -> None:
    import torch

    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=200)
    a = ap.parse_args()
    torch.set_num_threads(1)
    turns = annomi_turns()
    sample = turns[:: max(1, len(turns) // a.turns)][: a.turns]
    load0 = os.getloadavg()[0]
    rw, rc = latency(Screener(SafetyConfig(learned=False)), sample)
    lw, lc = latency(Screener(SafetyConfig()), sample)
    load = f"load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after"
    record("safety_latency", [Result(
        benchmark="latency per turn added by the learned layer (AnnoMI client turns, one at a time, 1 torch thread)",
        figure=f"+{(lc - rc) * 1000:.1f} ms CPU (+{(lw - rw) * 1000:.1f} ms wall) per turn",
        baseline=f"rules alone {rc * 1e6:.0f} us CPU per turn", ratio=round(lc / max(rc, 1e-9), 1),
        target="< 20 ms added", met=(lc - rc) < 0.020, command=f".venv/bin/python bench/safety_latency.py --turns {a.turns}",
        notes=f"{len(sample)} turns, median {statistics.median(len(t) for t in sample)} characters; the 2 cores are "
              f"shared with other jobs ({load}), so wall time runs above CPU time and CPU time itself "
              "rises with the load (shared caches and cores)",
        extra={"rules_wall_s": rw, "rules_cpu_s": rc, "learned_wall_s": lw, "learned_cpu_s": lc})])


if __name__ == "__main__":
    main()
