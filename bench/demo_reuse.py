"""Benchmark: the whole demo with prompt-state reuse off and on, both arms at the same time.

Run one after the other on a shared 2-core machine, the two arms met different loads (the
first recording's reuse-off run had its `train` stage, which reuse does not touch, take 4x as
long: docs/benchmarks_notes.md). Here both `hybridtune run configs/demo.yaml` start together,
each pinned to its own core with one llama.cpp thread and one torch thread, so they share the
same minutes of the same machine. Each arm is a fresh run folder under a temporary directory.

Figures: the whole run's wall time on / off, the sum of stage seconds, each model stage's
seconds, prompt tokens sent / evaluated / distinct (usage.json), peak RSS, and which stages'
records came out the same in both arms (ids and model paths are left out of the comparison:
they hash each arm's own run folder).

    .venv/bin/python bench/demo_reuse.py                 # about 45 minutes on this machine
    .venv/bin/python bench/demo_reuse.py --keep /tmp/dr  # keep both run folders
    .venv/bin/python bench/demo_reuse.py --from /tmp/dr  # figures again from kept folders, no run
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

from common import ROOT, Result, record

LLM_STAGES = ("real", "personas", "scenarios", "synth", "curate", "simulate", "score", "likelihood", "calibrate")
VOLATILE = {"id", "session_id", "item", "adapter", "model", "counselor_model", "patient_model", "created", "seconds"}
CMD = ".venv/bin/python bench/demo_reuse.py"


def start_arm(runs: Path, reuse: bool, core: int) -> tuple[subprocess.Popen, float]:
    args = [sys.executable, "-m", "hybridtune.cli", "run", "-q", str(ROOT / "configs" / "demo.yaml"),
            "--set", f"runs_dir={runs}", "--set", "name=demo", "--set", "endpoints.local.n_threads=1",
            "--set", f"endpoints.local.prefix_reuse={str(reuse).lower()}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": str(ROOT)}
    log = open(runs.with_suffix(".log"), "w")
    p = subprocess.Popen(args, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                         preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    return p, time.time()


def strip(x):
    """A record without the fields that name the arm's own run folder."""
    if isinstance(x, dict):
        return {k: strip(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [strip(v) for v in x]
    return x


def records(stage: Path) -> list[str]:
    out = []
    for f in sorted(stage.rglob("*.jsonl")):
        out += sorted(json.dumps(strip(json.loads(line)), sort_keys=True) for line in f.read_text().splitlines() if line)
    return out


def summary(run: Path) -> dict:
    rows = json.loads((run / "usage.json").read_text())["rows"]
    stages = {}
    for done in sorted(run.glob("*/_done.json")):
        st = done.parent.name
        mine = [x for x in rows if x["stage"] == st]
        stages[st] = {"seconds": json.loads(done.read_text())["seconds"],
                      **{k: sum(x.get(k, 0) for x in mine) for k in ("calls", "prompt_tokens", "prompt_tokens_evaluated",
                                                                   "prompt_tokens_distinct", "completion_tokens")}}
    return stages


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--keep", type=Path, help="put both run folders here and keep them")
    ap.add_argument("--from", dest="kept", type=Path, help="record again from folders kept by --keep, running nothing")
    a = ap.parse_args()
    if a.kept:
        saved = json.loads((a.kept / "summary.json").read_text())
        record("demo_reuse", results(saved["arms"], a.kept, tuple(saved["load"])))
        return
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("demo_reuse needs 2 cores: one per arm")
    root = a.keep or Path(tempfile.mkdtemp(prefix="demo_reuse_"))
    root.mkdir(parents=True, exist_ok=True)
    load0 = os.getloadavg()[0]
    arms = {name: start_arm(root / name, name == "on", core) for name, core in (("off", cores[0]), ("on", cores[1]))}
    out, by_pid = {}, {p.pid: (name, t0) for name, (p, t0) in arms.items()}
    while by_pid:  # whichever arm ends first: each arm's wall time ends when it does
        pid, status, ru = os.wait4(-1, 0)
        if pid not in by_pid:
            continue
        name, t0 = by_pid.pop(pid)
        if rc := os.waitstatus_to_exitcode(status):
            raise SystemExit(f"arm {name} failed (exit {rc}); see {(root / name).with_suffix('.log')}")
        out[name] = {"wall_s": time.time() - t0, "peak_rss_mb": ru.ru_maxrss / 1024,
                     "stages": summary(root / name / "demo")}
    load1 = os.getloadavg()[0]
    (root / "summary.json").write_text(json.dumps({"arms": out, "load": [load0, load1]}, indent=1))
    record("demo_reuse", results(out, root, (load0, load1)))


def results(out: dict, root: Path, load: tuple[float, float]) -> list[Result]:
    on, off = out["on"], out["off"]
    son, soff = on["stages"], off["stages"]
    tot = {k: sum(s["seconds"] for s in v["stages"].values()) for k, v in out.items()}
    llm = {k: sum(s["seconds"] for n, s in v["stages"].items() if n in LLM_STAGES) for k, v in out.items()}
    ev = {k: sum(s["prompt_tokens_evaluated"] for s in v["stages"].values()) for k, v in out.items()}
    sent = {k: sum(s["prompt_tokens"] for s in v["stages"].values()) for k, v in out.items()}
    dist = sum(s["prompt_tokens_distinct"] for s in son.values())
    same = [st for st in son if records(root / "on" / "demo" / st) == records(root / "off" / "demo" / st)]
    differ = [st for st in son if st not in same]
    per_stage = ", ".join(f"{st} {soff[st]['seconds']:.0f} -> {son[st]['seconds']:.0f}" for st in son)
    setup = (f"configs/demo.yaml, both arms at once, each pinned to one core with 1 llama.cpp and 1 torch thread; "
             f"load average {load[0]:.1f} -> {load[1]:.1f} on {os.cpu_count()} cores")
    rows = [
        Result("whole demo: wall time, reuse on / off", f"{on['wall_s']:.0f} s", f"reuse off {off['wall_s']:.0f} s",
               round(on["wall_s"] / off["wall_s"], 3), "recorded", None, CMD, setup),
        Result("whole demo: sum of stage seconds, reuse on / off", f"{tot['on']:.0f} s", f"reuse off {tot['off']:.0f} s",
               round(tot["on"] / tot["off"], 3), "recorded", None, CMD, f"stage seconds off -> on: {per_stage}"),
        Result("model stages (real, personas, scenarios, synth, curate, simulate, score, likelihood, calibrate): "
               "seconds, reuse on / off", f"{llm['on']:.0f} s", f"reuse off {llm['off']:.0f} s",
               round(llm["on"] / llm["off"], 3), "recorded", None, CMD),
    ]
    for st in ("synth", "simulate"):
        s = son[st]
        rows.append(Result(f"{st} at demo size: prompt tokens evaluated / distinct, reuse on",
                           f"{s['prompt_tokens_evaluated']} / {s['prompt_tokens_distinct']}",
                           f"reuse off: {soff[st]['prompt_tokens_evaluated']} / {s['prompt_tokens_distinct']}",
                           round(s["prompt_tokens_evaluated"] / max(s["prompt_tokens_distinct"], 1), 3), "<= 1.3",
                           s["prompt_tokens_evaluated"] <= 1.3 * s["prompt_tokens_distinct"], CMD,
                           f"evaluated / sent {s['prompt_tokens_evaluated'] / max(s['prompt_tokens'], 1):.3f}"))
        rows.append(Result(f"{st} at demo size: wall time, reuse on / off", f"{son[st]['seconds']:.1f} s",
                           f"reuse off {soff[st]['seconds']:.1f} s", round(son[st]["seconds"] / soff[st]["seconds"], 3),
                           "<= 0.5", son[st]["seconds"] <= 0.5 * soff[st]["seconds"], CMD,
                           f"{son[st]['calls']} calls; prompt tokens evaluated {son[st]['prompt_tokens_evaluated']} "
                           f"(on) vs {soff[st]['prompt_tokens_evaluated']} (off) of {son[st]['prompt_tokens']} sent; "
                           f"{son[st]['completion_tokens']} generated"))
    rows += [
        Result("whole demo: prompt tokens evaluated, reuse on / off", f"{ev['on']}", f"reuse off {ev['off']}",
               round(ev["on"] / ev["off"], 3), "recorded", None, CMD,
               f"sent {sent['on']} (on) / {sent['off']} (off); evaluated / distinct with reuse {ev['on'] / max(dist, 1):.2f}"),
        Result("whole demo: peak RSS of the run, reuse on", f"{on['peak_rss_mb']:.0f} MiB",
               f"reuse off {off['peak_rss_mb']:.0f} MiB", round(on["peak_rss_mb"] / off["peak_rss_mb"], 3),
               "recorded", None, CMD),
        Result("whole demo: stages whose records are the same with reuse on and off (ids and model paths left out)",
               f"{len(same)} of {len(son)}", "reuse off, same seed", round(len(same) / max(len(son), 1), 3),
               "all", not differ, CMD, f"same: {', '.join(same)}; differ: {', '.join(differ) or 'none'}"),
    ]
    return rows


if __name__ == "__main__":
    main()
