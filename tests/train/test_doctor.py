"""`hybridtune doctor` and the GPU install (`make setup-gpu`): what a CPU machine reports, the
refusal of --require-cuda, and the GPU pins kept equal to the CPU ones except where they must differ.

    .venv/bin/python -m pytest -q tests/train/test_doctor.py
"""
from __future__ import annotations

import os
import subprocess
from importlib import metadata
from pathlib import Path

import pytest

from hybridtune.train.hardware import Gpu, Hardware, vllm_env_version
from tests.test_cli import ht

ROOT = Path(__file__).resolve().parents[2]


def pins(name: str) -> dict[str, str]:
    lines = (ROOT / name).read_text().splitlines()
    return dict(x.split("==", 1) for x in lines if x and not x.startswith("#"))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has CUDA")
def test_doctor_reports_the_cpu_build_and_versions_and_refuses_when_cuda_is_required():
    out = ht("doctor")
    assert out.returncode == 0, out.stderr
    assert "CPU-only build (no CUDA); `make setup-gpu` installs the CUDA stack" in out.stdout
    assert f"transformers {metadata.version('transformers')}" in out.stdout and f"trl {metadata.version('trl')}" in out.stdout
    req = ht("doctor", "--require-cuda")
    assert req.returncode == 2 and len(req.stderr.strip().splitlines()) == 1
    assert "no usable CUDA GPU" in req.stderr and "`make setup-gpu`" in req.stderr


def test_gpu_lines_show_free_memory_and_bf16():
    hw = Hardware(torch="2.13.0", cuda="12.8", versions={"torch": "2.13.0"},
                  gpus=[Gpu(index=0, name="NVIDIA H100 80GB HBM3", total_bytes=80 * 2**30, free_bytes=30 * 2**30,
                            bf16=True),
                        Gpu(index=1, name="Tesla V100-SXM2-32GB", total_bytes=32 * 2**30, free_bytes=32 * 2**30,
                            bf16=False)])
    text = "\n".join(hw.lines())
    assert "GPU 0: NVIDIA H100 80GB HBM3, 30.0 of 80.0 GiB free, bf16 yes" in text
    assert "GPU 1: Tesla V100-SXM2-32GB, 32.0 of 32.0 GiB free, bf16 no (fp16 is used)" in text


def test_vllm_is_found_in_its_own_environment(tmp_path):
    assert vllm_env_version(tmp_path) is None
    (tmp_path / "lib" / "python3.12" / "site-packages" / "vllm-0.33.0.dist-info").mkdir(parents=True)
    assert vllm_env_version(tmp_path) == f"0.33.0 (in {tmp_path})"


def test_gpu_pins_equal_the_cpu_pins_but_for_torch_and_the_gpu_packages():
    cpu, gpu = pins("constraints.txt"), pins("constraints-gpu.txt")
    assert cpu["torch"].endswith("+cpu") and gpu["torch"] == cpu["torch"].removesuffix("+cpu")
    assert {k: v for k, v in gpu.items() if k != "torch" and k in cpu} == {k: v for k, v in cpu.items() if k != "torch"}
    extra = [x.strip() for x in (ROOT / "requirements-gpu.txt").read_text().splitlines() if x.strip()[:1].isalpha()]
    assert extra and all(p in gpu for p in extra)
    assert "deepspeed" in gpu and "vllm" in pins("constraints-vllm.txt")
    # Under `make test` the parent's MAKELEVEL/MAKEFLAGS make the child print "Entering directory" lines.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS")}
    steps = subprocess.run(["make", "-n", "--no-print-directory", "setup-gpu"], cwd=ROOT, env=env,
                           capture_output=True, text=True).stdout
    assert "-c constraints-gpu.txt" in steps and ".venv-vllm/bin/pip install -q vllm -c constraints-vllm.txt" in steps
    assert steps.strip().endswith("hybridtune doctor --require-cuda")
