"""Dry-run cost estimate vs the tokens a run actually used, per stage (target: within ±25%).

The run: configs/demo.yaml at tiny sizes, every role on the mock OpenAI server (its replies use
`--reply-fill` of each request's max_tokens, the share the estimate assumes, `llm.output_fill`;
it counts tokens at ~4 characters each, as the estimate does), every stage but `train`
(the declared variants are registered on the mock under different model names instead), the real
stage on data/demo and evaluation scenarios from the shared CACTUS file. The estimate is
`hybridtune.estimate.estimate(cfg)` for the same config, made before the run. Actual = the
run's usage.json (prompt + completion tokens of the calls made; cache hits cost nothing).

So the benchmark measures what the estimator controls: call counts through each stage's loops,
prompt assembly from the real templates, context growth of multi-turn dialogue. What it cannot
know before a run (how long a real model's replies are) is the stated assumption `output_fill`.

    .venv/bin/python bench/estimate_accuracy.py
    .venv/bin/python bench/estimate_accuracy.py --sessions 3 --turns 3   # smaller
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, Result, data_file, record

from hybridtune.config import load_config
from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.estimate import estimate

STAGES = ["real", "personas", "scenarios", "synth", "curate", "eval_scenarios", "mix",
          "simulate", "score", "likelihood", "calibrate", "report"]


def overrides(runs: Path, url: str, n: int, turns: int) -> list[str]:
    cactus = data_file("cactus", "evaluation.json", required=False)
    sets = [
        f"runs_dir={runs}", "quiet=true", "endpoints.local.backend=openai", f"endpoints.local.base_url={url}",
        "endpoints.local.model=mock", "endpoints.local.max_in_flight=8", "endpoints.local.logprobs=false",
        "real.pii.ner=false", f"synth.personas={n}", "synth.scenarios_per_persona=1", f"synth.sessions={n}",
        "synth.min_exchanges=2", "synth.max_exchanges=3", "synth.persona_checks=false", "synth.scenario_checks=true",
        "synth.max_regenerations=0",  # the mock judge confirms nothing: no regeneration rounds (see notes)
        f"evaluate.scenarios={n}", f"evaluate.max_turns={turns}", "evaluate.bootstrap_resamples=200",
        f"mix.size={2 * n}", "mix.contamination=shingles", "llm.max_failure_rate=1.0", "llm.max_reasks=0",
    ]
    if cactus is not None:
        sets.append(f"evaluate.scenarios_file={cactus}")
    return sets


def register_variants(run_dir: Path, cfg) -> None:
    """models.json as the train stage would write it, one model name per declared variant on the mock."""
    from hybridtune.records import ModelEntry
    from hybridtune.registry import save_entry
    from hybridtune.store import RunStore

    store = RunStore(run_dir)
    for v in (x.name for x in cfg.variant_list()):
        save_entry(store, ModelEntry(variant=v, backend="openai", model=f"mock-{v}", endpoint="local"))


def run(sets: list[str], stages: list[str]) -> None:
    args = [sys.executable, "-m", "hybridtune.cli", "run", "configs/demo.yaml", *sum((["--set", s] for s in sets), []),
            *sum((["--stage", s] for s in stages), [])]
    out = subprocess.run(args, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"run failed ({out.returncode}): {out.stderr[-2000:]}")


def actual_by_stage(run_dir: Path) -> dict[str, dict[str, int]]:
    rows = json.loads((run_dir / "usage.json").read_text())["rows"]
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        d = out.setdefault(r["stage"], {"calls": 0, "input_tokens": 0, "output_tokens": 0})
        d["calls"] += int(r["calls"])
        d["input_tokens"] += int(r["prompt_tokens"])
        d["output_tokens"] += int(r["completion_tokens"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=6, help="personas, synthetic sessions, eval scenarios")
    ap.add_argument("--turns", type=int, default=5, help="counselor turns per simulated conversation")
    a = ap.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="estimate_accuracy_"))
    os.environ["PYTHONPATH"] = str(ROOT)  # the mock server and the runs import this checkout's package
    os.chdir(ROOT)  # config paths (data/demo) are relative to the project root, as for the CLI
    t0 = time.time()
    with MockServer(MockConfig(reply_fill=load_config(ROOT / "configs/demo.yaml").llm.output_fill)) as url:
        sets = overrides(runs, url, a.sessions, a.turns)
        cfg = load_config(ROOT / "configs/demo.yaml", sets)
        est = estimate(cfg).by_stage()  # before anything runs
        run(sets, STAGES[: STAGES.index("mix") + 1])
        register_variants(runs / "demo", cfg)
        run(sets, STAGES[STAGES.index("mix") + 1:])
    act = actual_by_stage(runs / "demo")
    cmd = f".venv/bin/python bench/estimate_accuracy.py --sessions {a.sessions} --turns {a.turns}"
    results = []
    tot_e = tot_a = 0
    for stage in STAGES:
        e, x = est.get(stage), act.get(stage)
        if not e and not (x and x["calls"]):
            continue
        e = e or {"calls": 0, "input_tokens": 0, "output_tokens": 0}
        x = x or {"calls": 0, "input_tokens": 0, "output_tokens": 0}
        te, ta = e["input_tokens"] + e["output_tokens"], x["input_tokens"] + x["output_tokens"]
        tot_e, tot_a = tot_e + te, tot_a + ta
        ratio = round(te / ta, 3) if ta else None
        results.append(Result(
            f"estimate vs actual tokens, stage {stage}", f"{te} tokens estimated ({e['calls']} calls)",
            f"{ta} tokens used ({x['calls']} calls)", ratio, "0.75-1.25", ratio is not None and 0.75 <= ratio <= 1.25,
            cmd, f"input {e['input_tokens']} vs {x['input_tokens']}, output {e['output_tokens']} vs {x['output_tokens']}",
            {"estimate": e, "actual": x}))
    ratio = round(tot_e / tot_a, 3) if tot_a else None
    results.append(Result("estimate vs actual tokens, whole run", f"{tot_e} tokens estimated", f"{tot_a} tokens used",
                          ratio, "0.75-1.25", ratio is not None and 0.75 <= ratio <= 1.25, cmd,
                          f"mock replies use llm.output_fill of max_tokens; {time.time() - t0:.0f} s"))
    record("estimate_accuracy", results)


if __name__ == "__main__":
    main()
