"""Benchmark: prompt-state reuse in the embedded backend, `synth` and `simulate` with reuse off and on.

Each arm is its own `hybridtune run configs/demo.yaml --stage synth --stage simulate` (run
in-process by a child of this script, `--arm`, which times llama.cpp's work) on a fresh run
directory seeded with the same scenarios and the demo's declared counselor variants (separate
llama.cpp instances under their own GGUF paths, as LoRA variants are; no adapter is trained
here, so all carry the base weights). The arms alternate off, on, off, on, ... (`--repeats`),
so a shared machine's changing load falls on both; wall ratios are ratios of the arms' medians.
Figures per stage, from usage.json: evaluated / sent prompt tokens, evaluated / distinct prompt
tokens (target <= 1.3), wall time on / off (target <= 0.5), where the time goes (llama.cpp
reading prompts, generating tokens one at a time and with how many threads, saving and
restoring states, the rest), peak RSS per arm (os.wait4) and the load average around each arm, and whether the records are
byte-identical across every arm (they must be).

    .venv/bin/python bench/embedded_reuse.py --sessions 4 --scenarios 2 --max-turns 3 --repeats 2
    .venv/bin/python bench/embedded_reuse.py --sessions 1 --scenarios 1 --max-turns 1 --repeats 1
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from common import ROOT, Result, record, run_process, seed_run

def arm_sets(runs: Path, reuse: bool, a: argparse.Namespace) -> list[str]:
    return [f"runs_dir={runs}", "quiet=true", f"endpoints.local.prefix_reuse={str(reuse).lower()}",
            f"synth.sessions={a.sessions}", "synth.fewshot=0", f"evaluate.max_turns={a.max_turns}",
            f"endpoints.local.state_cache_mib={a.state_mib}"]


def timed_arm(runs: Path, reuse: bool, a: argparse.Namespace, out: Path) -> None:
    """Child process: the two stages in-process, with llama.cpp's decode calls timed by kind (a
    prompt batch, or one generated token) and state saves and restores timed, per stage, into `out`."""
    import llama_cpp
    from llama_cpp import _internals

    from hybridtune.cli import app
    from hybridtune.context import Context
    from hybridtune.llm import prefix

    secs: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    stage = ["-"]

    def timed(fn, label):
        def wrapped(*args, **kw):
            t = time.perf_counter()
            try:
                return fn(*args, **kw)
            finally:
                secs[stage[0]][label(args) if callable(label) else label] += time.perf_counter() - t
        return wrapped

    def staged(fn):
        def wrapped(self, name, *args, **kw):
            stage[0] = name
            return fn(self, name, *args, **kw)
        return wrapped

    def counted(fn):  # generated tokens by the thread count they were made with (prefix.ThreadChoice)
        def wrapped(ctx, batch, *args, **kw):
            if batch.n_tokens() == 1:
                secs[stage[0]][f"tokens generated with {llama_cpp.llama_n_threads(ctx.ctx)} threads"] += 1
            return fn(ctx, batch, *args, **kw)
        return wrapped

    _internals.LlamaContext.decode = counted(timed(
        _internals.LlamaContext.decode, lambda args: "generate" if args[1].n_tokens() == 1 else "prompt"))
    prefix.ReusingLlama._save_live = timed(prefix.ReusingLlama._save_live, "state")
    prefix.ReusingLlama._restore = timed(prefix.ReusingLlama._restore, "state")
    Context.run_stage = staged(Context.run_stage)
    args = ["run", "configs/demo.yaml", "--stage", "synth", "--stage", "simulate"]
    for x in arm_sets(runs, reuse, a):
        args += ["--set", x]
    try:
        app(args, standalone_mode=False)
    finally:
        out.write_text(json.dumps({k: dict(v) for k, v in secs.items()}))


def run_arm(root: Path, reuse: bool, i: int, a: argparse.Namespace) -> dict:
    runs = root / f"{'on' if reuse else 'off'}{i}"
    seed_run(runs / "demo", a.sessions, a.scenarios, root / "models")
    timing = runs / "timing.json"
    args = [sys.executable, __file__, "--arm", "on" if reuse else "off", "--arm-dir", str(runs),
            "--arm-json", str(timing), "--sessions", str(a.sessions), "--scenarios", str(a.scenarios),
            "--max-turns", str(a.max_turns), "--state-mib", str(a.state_mib)]
    load0 = os.getloadavg()[0]
    r = run_process(args)
    load1 = os.getloadavg()[0]
    if r["rc"]:
        raise SystemExit(f"arm reuse={reuse} failed (exit {r['rc']}): {r['error']}")
    run = runs / "demo"
    rows = json.loads((run / "usage.json").read_text())["rows"]
    split = json.loads(timing.read_text())
    stages = {}
    for st in ("synth", "simulate"):
        mine = [x for x in rows if x["stage"] == st]
        stages[st] = {k: sum(x[k] for x in mine) for k in ("calls", "prompt_tokens", "prompt_tokens_evaluated",
                                                         "prompt_tokens_distinct", "completion_tokens")}
        stages[st]["seconds"] = json.loads((run / st / "_done.json").read_text())["seconds"]
        stages[st]["split"] = {k: round(v, 2) for k, v in split.get(st, {}).items()}
        # as a set: concurrent conversations (simulate) append in the order they finish
        stages[st]["records"] = sorted((run / st / "sessions.jsonl").read_text().splitlines())
    return {"wall_s": r["seconds"], "cpu_s": r["cpu_s"], "peak_rss_mb": r["peak_rss_mb"], "stages": stages,
            "load": (round(load0, 1), round(load1, 1))}


def state_costs(n_tokens: int = 256) -> dict:
    """The options for keeping state, at small size: this store's per-sequence KV state against
    llama-cpp-python's own LlamaRAMCache entry (Llama.save_state) for the same prompt, and the
    time to restore a state against evaluating its tokens (the most a warm server slot, which
    needs no restore, could save per reused prefix)."""
    sys.path.insert(0, str(ROOT))
    from hybridtune.llm.llamacpp import find_gguf
    from hybridtune.llm.prefix import ReusingLlama

    llm = ReusingLlama(model_path=str(find_gguf("smollm2")), n_ctx=1024, verbose=False, state_bytes=256 << 20)
    text = (ROOT / "README.md").read_text()
    toks = llm.tokenize(text.encode(), add_bos=True)[:n_tokens]
    t0 = time.perf_counter()
    llm.eval_prompt(np.asarray(toks, dtype=np.intc), 0)
    eval_s = time.perf_counter() - t0
    ram_state = len(llm.save_state().llama_state) + llm._scores.nbytes + llm.input_ids.nbytes
    llm._save_live()
    ours = llm.store.bytes
    t0 = time.perf_counter()
    for _ in range(5):
        llm.canon = 0
        llm._reuse(np.asarray(toks + [toks[-1]] * 16, dtype=np.intc))
    restore_s = (time.perf_counter() - t0) / 5
    return {"tokens": len(toks), "eval_s": eval_s, "restore_s": restore_s, "ours_bytes": ours,
            "ramcache_bytes": ram_state}


def median_of(arms: list[dict], st: str, key: str) -> float:
    return statistics.median(x["stages"][st][key] for x in arms)


def split_text(arms: list[dict], st: str) -> str:
    """Median seconds per kind of work over an arm's runs, and the rest of the stage's time."""
    kinds = ("prompt", "generate", "state")
    med = {k: statistics.median(x["stages"][st]["split"].get(k, 0.0) for x in arms) for k in kinds}
    rest = median_of(arms, st, "seconds") - sum(med.values())
    threads = {k.split()[3]: int(v) for k, v in arms[0]["stages"][st]["split"].items() if k.startswith("tokens ")}
    return (f"prompt reading {med['prompt']:.1f} s, generation {med['generate']:.1f} s, state save/restore "
            f"{med['state']:.2f} s, other {rest:.1f} s, tokens generated per thread count {threads}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=2, help="synthetic sessions (demo: 8)")
    ap.add_argument("--scenarios", type=int, default=2, help="evaluation scenarios, x each declared variant (demo: 4)")
    ap.add_argument("--max-turns", type=int, default=3, help="counselor turns per simulated session (demo: 3)")
    ap.add_argument("--state-mib", type=int, default=128, help="state store limit per model instance")
    ap.add_argument("--repeats", type=int, default=2, help="runs per arm, alternating off, on, off, on, ...")
    ap.add_argument("--together", action="store_true",
                    help="run each off/on pair at the same time (a loaded machine: both arms see the same load)")
    ap.add_argument("--arm", choices=["on", "off"], help=argparse.SUPPRESS)  # child: one timed arm
    ap.add_argument("--arm-dir", help=argparse.SUPPRESS)
    ap.add_argument("--arm-json", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.arm:
        return timed_arm(Path(a.arm_dir), a.arm == "on", a, Path(a.arm_json))
    root = Path(tempfile.mkdtemp(prefix="embedded_reuse_"))
    arms: dict[bool, list[dict]] = {False: [], True: []}
    for i in range(a.repeats):
        if a.together:  # both arms at once: whatever else runs on the machine slows both alike
            with ThreadPoolExecutor(2) as pool:
                got = dict(zip((False, True), pool.map(lambda r: run_arm(root, r, i, a), (False, True)), strict=True))
        else:
            got = {reuse: run_arm(root, reuse, i, a) for reuse in (False, True)}
        for reuse, arm in got.items():
            arms[reuse].append(arm)
            print("on " if reuse else "off", i, f"load {arm['load']}, cpu {arm['cpu_s']} s",
                  {k: {x: y for x, y in v.items() if x != "records"} for k, v in arm["stages"].items()}, flush=True)
    off, on = arms[False], arms[True]
    cmd = (f".venv/bin/python bench/embedded_reuse.py --sessions {a.sessions} --scenarios {a.scenarios} "
           f"--max-turns {a.max_turns} --repeats {a.repeats}" + (" --together" if a.together else ""))
    loads = [x for arm in off + on for x in arm["load"]]
    load = f"load average {min(loads):.1f}-{max(loads):.1f} on {os.cpu_count()} cores"
    order = ", ".join(f"{'on' if r else 'off'} {x['load'][0]}->{x['load'][1]}" for pair in zip(off, on, strict=True)
                      for r, x in zip((False, True), pair, strict=True))
    order += " (each pair at once)" if a.together else ""
    results = []
    for st in ("synth", "simulate"):
        f, b = on[0]["stages"][st], off[0]["stages"][st]
        same = all(x["stages"][st]["records"] == b["records"] for x in off + on)
        calls = sorted({(x["stages"][st]["calls"], x["stages"][st]["prompt_tokens"]) for x in off + on})
        ev, sent, dist = f["prompt_tokens_evaluated"], f["prompt_tokens"], f["prompt_tokens_distinct"]
        t_on, t_off = median_of(on, st, "seconds"), median_of(off, st, "seconds")
        note = (f"{f['calls']} model calls per arm; configs/demo.yaml with synth.sessions={a.sessions}, fewshot 0, "
                f"{a.scenarios} eval scenarios x the demo variants (base weights), max_turns {a.max_turns}; {load}")
        results += [
            Result(f"{st}: prompt tokens evaluated / sent, reuse on", f"{ev} / {sent}",
                   f"reuse off: {b['prompt_tokens_evaluated']} / {b['prompt_tokens']}", round(ev / max(sent, 1), 3),
                   "recorded", None, cmd, note),
            Result(f"{st}: prompt tokens evaluated / distinct, reuse on", f"{ev} / {dist}",
                   f"reuse off: {b['prompt_tokens_evaluated']} / {b['prompt_tokens_distinct']}",
                   round(ev / max(dist, 1), 3), "<= 1.3", ev / max(dist, 1) <= 1.3, cmd),
            Result(f"{st}: wall time, reuse on / off (medians of {a.repeats} "
                   f"{'simultaneous' if a.together else 'alternating'} runs each)",
                   f"{t_on:.1f} s ({', '.join(str(x['stages'][st]['seconds']) for x in on)})",
                   f"reuse off {t_off:.1f} s ({', '.join(str(x['stages'][st]['seconds']) for x in off)})",
                   round(t_on / max(t_off, 1e-9), 3), "<= 0.5", t_on / max(t_off, 1e-9) <= 0.5, cmd,
                   f"reuse on: {split_text(on, st)}; reuse off: {split_text(off, st)}; "
                   f"{f['completion_tokens']} generated tokens per arm; arms in order: {order}",
                   {"on": [x["stages"][st]["split"] for x in on], "off": [x["stages"][st]["split"] for x in off]}),
            Result(f"{st}: records identical with reuse on and off", "identical" if same else "DIFFERENT",
                   f"reuse off (same seed), all {2 * a.repeats} runs", 1.0 if same else 0.0, "identical", same, cmd,
                   f"(model calls, prompt tokens sent) over all runs: {calls}"),
        ]
    rss_on, rss_off = max(x["peak_rss_mb"] for x in on), max(x["peak_rss_mb"] for x in off)
    results.append(Result("peak RSS of the synth+simulate process, reuse on", f"{rss_on} MiB",
                          f"reuse off {rss_off} MiB", round(rss_on / rss_off, 3),
                          f"recorded (store limit {a.state_mib} MiB per model instance)", None, cmd,
                          f"process wall {', '.join(str(x['wall_s']) for x in on)} s on, "
                          f"{', '.join(str(x['wall_s']) for x in off)} s off (incl. start-up and model loads); "
                          f"process CPU {', '.join(str(x['cpu_s']) for x in on)} s on, "
                          f"{', '.join(str(x['cpu_s']) for x in off)} s off"))
    sc = state_costs()
    results.append(Result(
        f"state store: restore a {sc['tokens']}-token prefix vs evaluate it", f"{sc['restore_s'] * 1000:.1f} ms",
        f"evaluate {sc['eval_s'] * 1000:.0f} ms", round(sc["restore_s"] / sc["eval_s"], 4),
        "recorded: a warm llama.cpp server slot saves at most this restore", None, cmd,
        f"bytes per saved state: {sc['ours_bytes'] / 2**20:.1f} MiB (this store: KV of sequence 0) vs "
        f"{sc['ramcache_bytes'] / 2**20:.1f} MiB (llama-cpp-python LlamaRAMCache entry: whole context + logits rows)",
        sc))
    record("embedded_reuse", results)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
