"""Shared helpers for benchmark scripts: every figure is a ratio against a baseline measured
in the same run, recorded with the command that reproduces it.

Each `bench/<name>.py` calls `record(name, [Result(...), ...])`, which writes
`bench/results/<name>.json`; `bench/run_all.py` runs them all and renders docs/benchmarks.md.
"""
from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results"
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class Result:
    benchmark: str          # what is measured
    figure: str             # the measured value, with unit ("812 tok/s")
    baseline: str           # what it is compared against, measured in the same run
    ratio: float | None     # figure / baseline (or the metric itself where no ratio applies)
    target: str             # e.g. ">= 0.95"
    met: bool | None        # None where there is no target
    command: str            # how to reproduce
    notes: str = ""
    extra: dict = field(default_factory=dict)


def record(name: str, results: list[Result], headline: dict | None = None) -> Path:
    """Write bench/results/<name>.json; `headline`: named figures kept at the top level of the file."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    payload = {
        "name": name,
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        **(headline or {}),
        "results": [asdict(r) for r in results],
    }
    path.write_text(json.dumps(payload, indent=2) + "\n")
    for r in results:
        mark = "" if r.met is None else (" [met]" if r.met else " [NOT met]")
        print(f"{r.benchmark}: {r.figure} vs {r.baseline} -> ratio {r.ratio} (target {r.target}){mark}")
    return path


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_process(args: list[str], cwd: Path = ROOT) -> dict:
    """Run a command to the end: wall seconds, its peak RSS in MiB and CPU seconds (os.wait4), exit status,
    stderr tail."""
    import subprocess

    t0 = time.time()
    p = subprocess.Popen(args, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    err = p.stderr.read()
    _, status, ru = os.wait4(p.pid, 0)
    rc = os.waitstatus_to_exitcode(status)
    return {"seconds": round(time.time() - t0, 2), "peak_rss_mb": round(ru.ru_maxrss / 1024, 1), "rc": rc,
            "cpu_s": round(ru.ru_utime + ru.ru_stime, 2),
            "error": err.strip()[-2000:] if rc else ""}

