"""Benchmark: cache replay of a finished demo-like run, and peak memory per stage.

Runs configs/demo.yaml (embedded SmolLM2-135M in llama.cpp) at reduced sizes into a temp
runs_dir, each stage as its own process (so peak RSS is per stage, from os.wait4's rusage).
Then deletes every stage's `_done.json` (keeping cache.sqlite and the records) and reruns
the same stages: with every reply in the cache and every record on disk, the rerun should
cost a small fraction of the original. Figures: replay wall time / original wall time
(target < 0.05), model calls made by the replay (target 0), peak RSS per stage.

`train` is skipped (it has its own benchmark and resume test; minutes on 2 cores): the
models.json it would write registers the base model (llama.cpp, no adapter) instead.

    .venv/bin/python bench/pipeline_replay.py                 # ~5-15 min on 2 busy cores
    .venv/bin/python bench/pipeline_replay.py --sessions 1 --stages real personas scenarios synth curate
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

from common import ROOT, Result, record, run_process

STAGES = ["real", "personas", "scenarios", "synth", "curate", "eval_scenarios", "mix",
          "simulate", "score", "likelihood", "calibrate", "report"]


def overrides(runs: Path, n: int) -> list[str]:
    """configs/demo.yaml shrunk so one pass takes minutes, not the demo's half hour."""
    return [
        f"runs_dir={runs}", "quiet=true",
        "real.annotate.max_sessions=1", "real.annotate.max_turns_per_session=2",
        f"synth.personas={n}", "synth.persona_checks=false", "synth.scenario_checks=false",
        "synth.max_regenerations=0", "synth.scenarios_per_persona=1", f"synth.sessions={n}",
        "synth.min_exchanges=2", "synth.max_exchanges=2", "synth.fewshot=0", "synth.annotate_realised=false",
        f"evaluate.scenarios={n}", "evaluate.max_turns=2", "variants={base: {sources: []}}",
        "evaluate.trust.calib_items=2", "evaluate.trust.calib_samples=1", "evaluate.trust.simcheck_sessions=1",
        "evaluate.trust.simcheck_turns=1", "evaluate.trust.likelihood_sessions=1",
        "evaluate.bootstrap_resamples=200", f"mix.size={2 * n}", "mix.allow_smaller=true",
        # shorter replies: this measures replay against generation, not the model's prose
        "roles.generator.max_tokens=200", "roles.patient.max_tokens=60", "roles.counselor.max_tokens=60",
        "llm.max_failure_rate=1.0",  # the 135M model fails many structured tasks; this measures speed, not quality
    ]


def run_stage(sets: list[str], stage: str) -> dict:
    """One stage in its own process: wall seconds, peak RSS (MiB) and exit status."""
    args = [sys.executable, "-m", "hybridtune.cli", "run", "configs/demo.yaml", "--stage", stage]
    for s in sets:
        args += ["--set", s]
    r = run_process(args)
    return {"stage": stage, "seconds": r["seconds"], "peak_rss_mb": r["peak_rss_mb"], "rc": r["rc"],
            "error": r["error"].splitlines()[-1][:300] if r["rc"] else ""}


def model_calls(run: Path) -> int:
    p = run / "usage.json"
    return sum(r["calls"] for r in json.loads(p.read_text())["rows"]) if p.exists() else 0


def register_base(run: Path) -> None:
    """What `train` would register for the base variant (train is skipped here)."""
    sys.path.insert(0, str(ROOT))
    from hybridtune.records import ModelEntry
    from hybridtune.registry import save_entry
    from hybridtune.store import RunStore

    save_entry(RunStore(run), ModelEntry(variant="base", backend="llamacpp", model="smollm2"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=2, help="personas, synthetic sessions and eval scenarios")
    ap.add_argument("--keep", type=Path, default=None, help="runs_dir to use and keep (default: a temp dir)")
    ap.add_argument("--stages", nargs="+", default=STAGES, choices=STAGES, help="stages to run (in run order)")
    a = ap.parse_args()
    stages = [s for s in STAGES if s in a.stages]
    runs = a.keep or Path(tempfile.mkdtemp(prefix="pipeline_replay_"))
    run = runs / "demo"
    sets = overrides(runs, a.sessions)

    first, second = [], []
    for st in stages:
        if st == "simulate":
            register_base(run)
        first.append(run_stage(sets, st))
        print(f"original {first[-1]}", flush=True)
    calls_before = model_calls(run)
    for done in run.glob("*/_done.json"):
        done.unlink()
    for st in stages:
        second.append(run_stage(sets, st))
        print(f"replay   {second[-1]}", flush=True)
    replay_calls = model_calls(run) - calls_before

    # the same replay as one `hybridtune run` process (what a user types): one interpreter start
    for done in run.glob("*/_done.json"):
        done.unlink()
    t0 = time.time()
    one = subprocess.run([sys.executable, "-m", "hybridtune.cli", "run", "configs/demo.yaml",
                          *sum((["--set", s] for s in sets), []), *sum((["--stage", s] for s in stages), [])],
                         cwd=ROOT, capture_output=True, text=True)
    one_s = time.time() - t0

    ok = [f for f in first if f["rc"] == 0]
    orig = sum(f["seconds"] for f in first)
    rep = sum(f["seconds"] for f in second)
    ratio = round(rep / orig, 4) if orig else None
    ratio_one = round(one_s / orig, 4) if orig else None
    cmd = f".venv/bin/python bench/pipeline_replay.py --sessions {a.sessions}" + (
        f" --stages {' '.join(stages)}" if stages != STAGES else "")
    note = (f"{len(ok)}/{len(first)} stages ran OK the first time; train skipped (base model registered instead). "
            f"Each replayed stage pays an interpreter start plus imports and model loads; those fixed costs "
            f"dominate at this size and shrink relative to real runs, where the original takes hours.")
    results = [
        Result("cache replay, one process per stage", f"{rep:.1f} s", f"original run {orig:.1f} s (same stages, same run)",
               ratio, "< 0.05", ratio is not None and ratio < 0.05, cmd, note,
               {"stages": {f["stage"]: {"original_s": f["seconds"], "replay_s": s["seconds"]} for f, s in zip(first, second)}}),
        Result("cache replay, one `hybridtune run` process", f"{one_s:.1f} s (rc {one.returncode})",
               f"original run {orig:.1f} s", ratio_one, "< 0.05", ratio_one is not None and ratio_one < 0.05, cmd),
        Result("model calls made by the replay", f"{replay_calls} calls", f"{calls_before} calls in the original run",
               round(replay_calls / max(calls_before, 1), 4), "0 calls", replay_calls == 0, cmd),
    ]
    for f in first:
        results.append(Result(f"peak RSS, stage {f['stage']}", f"{f['peak_rss_mb']} MiB",
                              "machine RAM 24 GiB", round(f["peak_rss_mb"] / (24 * 1024), 4), "< 1 (fits)",
                              f["peak_rss_mb"] < 24 * 1024, cmd,
                              f"{f['seconds']} s" + (f"; exit {f['rc']}: {f['error']}" if f["rc"] else "")))
    record("pipeline_replay", results)
    if a.keep is None:
        shutil.rmtree(runs, ignore_errors=True)


if __name__ == "__main__":
    main()
