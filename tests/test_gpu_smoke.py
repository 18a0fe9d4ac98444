"""bench/gpu_smoke.py runs here too, at its tiny size on the CPU (the GPU run is the same script):
both variants trained through the launch line with 2 processes, saved, reloaded with PEFT, logits
moved and different between variants, and the plain TRL baseline timed beside it.

    .venv/bin/python -m pytest -q tests/test_gpu_smoke.py -m slow
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 2 minutes on 2 busy cores
@pytest.mark.timeout(900)
def test_gpu_smoke_runs_at_tiny_size_on_the_cpu(tmp_path):
    out = subprocess.run([sys.executable, "bench/gpu_smoke.py", "--cpu", "--size", "tiny", "--steps", "2",
                          "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=850)
    assert out.returncode == 0, (out.stdout[-2000:], (tmp_path / "gpu_smoke.log").read_text()[-3000:])
    found = json.loads((tmp_path / "gpu_smoke.json").read_text())
    ddp = found[0]
    assert ddp["met"] is True and ddp["extra"]["launch"]["rc"] == 0
    assert all(ddp["extra"]["launch"]["variants"][v]["processes"] == 2 for v in ("real", "hybrid"))
    assert ddp["extra"]["checks"]["variants_differ"] is True
    speed = found[1]
    assert speed["extra"]["plain"]["tokens"] > 0 and speed["ratio"] > 0
    assert not (ROOT / "bench" / "results" / "gpu_smoke_cpu.json").exists()
