"""Ingest throughput on automatic captions with the default config (embedded model), from AnnoMI transcripts.

The first N AnnoMI transcripts become WebVTT files as a video platform writes automatic
captions (no names, no `>>` marks, rolling duplicates; `speakers.simulate_captions`) with a
name, a phone number and an email planted in each. `hybridtune ingest DIR --out OUT` runs
with the built-in defaults (the embedded SmolLM2 endpoint, so model annotation and LLM
attribution are off by default), then with `--no-llm` as the baseline in the same run.
Reported: wall time, sessions per minute, the ratio default ÷ --no-llm, and planted PII
found in any output file (must be 0).

    .venv/bin/python bench/real_ingest_captions.py [--transcripts 20]
"""
from __future__ import annotations

import argparse
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Result, data_file, record

from hybridtune.real.speakers import annomi_transcripts, simulate_captions

PLANTED = ["Margaret Okonkwo", "415-555-0143", "m.okonkwo@example.org"]


def write_captions(dst: Path, n: int) -> int:
    by = annomi_transcripts(data_file("annomi", "AnnoMI-simple.csv"))
    rng = random.Random(0)
    for tid in sorted(by, key=int)[:n]:
        utts = list(by[tid])
        role, text = utts[1]
        utts[1] = (role, f"{text} My name is {PLANTED[0]}, call me at {PLANTED[1]} or write to {PLANTED[2]}.")
        vtt, _ = simulate_captions(utts, rng, mark_p=0.0)
        (dst / f"annomi_{tid}.vtt").write_text(vtt, encoding="utf-8")
    return n


def ingest(src: Path, out: Path, *extra: str) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one `hybridtune ingest`; CPU time is robust to a loaded machine."""
    t0, c0 = time.time(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "hybridtune.cli", "ingest", str(src), "--out", str(out), "--quiet", *extra],
                   check=False, cwd=ROOT, capture_output=True, text=True)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.time() - t0, (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--transcripts", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "captions"
        src.mkdir()
        n = write_captions(src, a.transcripts)
        t_default, cpu_default = ingest(src, Path(tmp) / "default")
        t_nollm, cpu_nollm = ingest(src, Path(tmp) / "nollm", "--no-llm")
        out_files = [p for p in (Path(tmp) / "default").rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".md")]
        leaks = sum(p.read_text(errors="ignore").count(x) for p in out_files for x in PLANTED)
        kept = sum(1 for _ in (Path(tmp) / "default" / "sessions.jsonl").open()) if (Path(tmp) / "default" / "sessions.jsonl").exists() else 0
    cmd = f".venv/bin/python bench/real_ingest_captions.py --transcripts {a.transcripts}"
    record("real_ingest_captions", [Result(
        benchmark=f"`hybridtune ingest` with default config (embedded model) on {n} AnnoMI transcripts as captions without marks",
        figure=f"{t_default:.0f} s wall, {cpu_default:.0f} CPU-s ({n / t_default * 60:.1f} sessions/min), {kept} sessions kept, "
               f"planted PII in outputs: {leaks}",
        baseline=f"same files with --no-llm {t_nollm:.0f} s wall, {cpu_nollm:.0f} CPU-s", ratio=round(t_default / t_nollm, 3),
        target="< 300 s and 0 leaks", met=t_default < 300 and leaks == 0, command=cmd,
        notes="model annotation and LLM speaker checks are off on the embedded model by default (a 135M model's labels "
              "are noise); roles come from the learned head + HMM; includes process start. CPU seconds over 2 cores "
              "bound the wall time on an idle machine",
        extra={"wall_s": round(t_default, 1), "cpu_s": round(cpu_default, 1), "load_avg_1m": round(os.getloadavg()[0], 1)})])


if __name__ == "__main__":
    main()
