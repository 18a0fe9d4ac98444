"""Benchmark: cache replay of a finished demo run (issue 9).

Copies a finished run (default runs/demo, made by `make demo`) to a temp folder, deletes
every stage's completion marker (keeping cache.sqlite and the records), reruns
`hybridtune run` on it, and reports replay wall time / the original run's summed stage
time, and the model calls the replay made (from usage.json: calls, not cache hits).

    make demo && .venv/bin/python bench/pipeline_demo_replay.py [--run runs/demo]
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Result, record

CMD = "make demo && .venv/bin/python bench/pipeline_demo_replay.py"


def calls(usage: Path) -> int:
    return int(sum(r["calls"] for r in json.loads(usage.read_text())["rows"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", default=str(ROOT / "runs" / "demo"))
    a = ap.parse_args()
    src = Path(a.run)
    done = sorted(src.glob("*/_done.json"))
    assert (src / "report" / "_done.json").exists(), f"{src}: not a finished run; run `make demo` first"
    original = sum(json.loads(p.read_text()).get("seconds", 0) for p in done)
    with tempfile.TemporaryDirectory() as tmp:
        dst = Path(tmp) / src.name
        shutil.copytree(src, dst)
        for p in dst.glob("*/_done.json"):
            p.unlink()
        before = calls(dst / "usage.json")
        t0 = time.perf_counter()
        out = subprocess.run([str(ROOT / ".venv/bin/hybridtune"), "run", str(dst / "config.yaml"), "-q",
                              "--set", f"runs_dir={tmp}"], capture_output=True, text=True, cwd=ROOT)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            sys.exit(1)
        made = calls(dst / "usage.json") - before
    ratio = wall / original
    record("pipeline_demo_replay", [
        Result("cache replay of the finished demo run (all stages, one process)", f"{wall:.1f} s",
               f"original run {original:.0f} s (sum of its stage times)", round(ratio, 4), "< 0.05", ratio < 0.05, CMD,
               notes="replay time is mostly loading spaCy, the embedder, torch and llama.cpp"),
        Result("model calls made by the replay", f"{made} calls", "0 expected (every reply is cached)", made,
               "0", made == 0, CMD),
    ])


if __name__ == "__main__":
    main()
