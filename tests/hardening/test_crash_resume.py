"""Crash-resume: `hybridtune run` killed with SIGKILL at seeded random points, then restarted,
ends with the same artifacts as an uninterrupted run, and pays for no model call twice.

Every stage but `train` runs (train has its own resume test in tests/train/; models.json
gets endpoint entries instead). The model is the mock OpenAI-compatible server at 0%
faults: it counts the requests it answered across processes, which is what "no completed
call repeated" is checked against. Per seed, the run is killed once before train (stages
real..mix) and once after (simulate..report), at a random moment of the phase.

    .venv/bin/python -m pytest tests/hardening/test_crash_resume.py -q
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from hybridtune.devtools.mock_openai import MockServer
from tests.hardening.common import (
    AFTER_TRAIN, BEFORE_TRAIN, STAGES, artifact_ids, cache_keys, hybridtune, jsonl_ids, register_fake_models,
    run_args, start, tiny_overrides,
)

MAX_IN_FLIGHT = 2  # requests that can be in flight when the process dies (and may be asked again)


def _sets(tmp: Path, url: str) -> list[str]:
    return [*tiny_overrides(tmp, tmp / "runs"), "real.pii.enabled=false",  # PII has its own tests; spaCy costs ~15 s a start
            "endpoints.local.backend=openai", f"endpoints.local.base_url={url}", "endpoints.local.model=mock",
            f"endpoints.local.max_in_flight={MAX_IN_FLIGHT}", "endpoints.local.timeout_s=10"]


def _complete(sets: list[str], stages: list[str]) -> float:
    t0 = time.time()
    out = hybridtune(run_args(sets, stages), timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    return time.time() - t0


def _kill_then_resume(sets: list[str], stages: list[str], after_s: float) -> bool:
    """Start the phase, SIGKILL it after `after_s` seconds (if still running), then finish it."""
    p = start(run_args(sets, stages))
    try:
        p.wait(timeout=after_s)
        killed = False
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
        killed = True
    p.communicate()
    _complete(sets, stages)
    return killed


def _run_pipeline(tmp: Path, kill_after: list[float] | None = None) -> dict:
    """Run real..mix, register models, run simulate..report; with `kill_after`, SIGKILL each
    phase once after that many seconds and finish it on a restart."""
    srv = MockServer()
    with srv as url:
        sets = _sets(tmp, url)
        run_dir = tmp / "runs" / "demo"
        times, kills = [], 0
        for i, phase in enumerate((BEFORE_TRAIN, AFTER_TRAIN)):
            if phase is AFTER_TRAIN:
                register_fake_models(run_dir, backend="openai")
            if kill_after is None:
                times.append(_complete(sets, phase))
            else:
                kills += _kill_then_resume(sets, phase, kill_after[i])
        requests = srv.stats()["requests"]
    return {"run_dir": run_dir, "requests": requests, "kills": kills, "times": times}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _run_pipeline(tmp_path_factory.mktemp("reference"))


SEEDS = [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]


@pytest.mark.timeout(600)
@pytest.mark.parametrize("seed", SEEDS)
def test_sigkill_then_resume_matches_uninterrupted_run(reference, tmp_path, seed):
    rng = random.Random(seed)  # a kill somewhere between 15% and 85% of each phase's uninterrupted time
    got = _run_pipeline(tmp_path, [rng.uniform(0.15, 0.85) * t for t in reference["times"]])
    ref_dir, run_dir = reference["run_dir"], got["run_dir"]
    assert got["kills"] >= 1, "no kill landed: the phases finished before their kill time"
    for name in STAGES:
        assert (run_dir / name / "_done.json").exists(), f"{name} did not finish after resume"

    # identical record ids in every record file, and no id written twice to a stage's main outputs
    ref_ids, ids = artifact_ids(ref_dir), artifact_ids(run_dir)
    assert set(ids) == set(ref_ids), f"files differ: {set(ids) ^ set(ref_ids)}"
    for rel in ref_ids:
        assert ids[rel] == ref_ids[rel], f"{rel}: record ids differ from the uninterrupted run"
    for rel in ids:
        raw = jsonl_ids(run_dir / rel)
        dups = {i for i in raw if raw.count(i) > 1}
        assert not dups, f"{rel}: ids written twice after resume: {sorted(dups)[:5]}"

    # the same model calls were made and cached ...
    assert cache_keys(run_dir) == cache_keys(ref_dir), "resumed run asked different questions"
    # ... and none that had completed was paid for again: only requests in flight at a kill repeat
    extra = got["requests"] - reference["requests"]
    assert extra <= got["kills"] * MAX_IN_FLIGHT, (
        f"{extra} more model requests than the uninterrupted run ({reference['requests']}) after "
        f"{got['kills']} kills: completed calls were repeated")
    summary = json.loads((run_dir / "report" / "_done.json").read_text())
    assert summary["stage"] == "report"
