"""Benchmark: prompt-state reuse in the embedded backend, `synth` and `simulate` with reuse off and on.

Both arms run in the same invocation, each as its own `hybridtune run configs/demo.yaml
--stage synth --stage simulate` process on a fresh run directory seeded with the same
scenarios and the demo's declared counselor variants (separate llama.cpp instances under their own GGUF
paths, as LoRA variants are; no adapter is trained here, so all carry the base weights). Figures per stage, from
usage.json: evaluated / sent prompt tokens, evaluated / distinct prompt tokens (target
<= 1.3), wall time on / off (target <= 0.5), peak RSS per arm (os.wait4), and whether the
records are byte-identical between the arms (they must be).

    .venv/bin/python bench/embedded_reuse.py                       # demo settings, 2 sessions, 2 scenarios
    .venv/bin/python bench/embedded_reuse.py --sessions 1 --scenarios 1 --max-turns 2
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from common import ROOT, Result, record, run_process

CASES = [  # (persona narrative, attitude, summary, scenario): inputs, written as the scenarios stage would
    ("A nurse on night shifts who sleeps badly and worries about mistakes.", "neutral",
     "Fear of being fired", "I missed a deadline at work and keep thinking my manager will fire me."),
    ("A student who moved cities for university and knows nobody yet.", "negative",
     "Loneliness after a move", "I moved to a new city and I am sure nobody here likes me."),
    ("A father of two who lost his own father last spring.", "positive",
     "Grief at family events", "Since my dad died I dread family dinners; I end up leaving early."),
    ("A designer who redoes every draft until late at night.", "neutral",
     "Perfectionism at work", "If a design is not perfect I feel like a fraud, so I redo it again and again."),
]


def seed_run(run: Path, n_sessions: int, n_scenarios: int) -> None:
    sys.path.insert(0, str(ROOT))
    from hybridtune.config import load_config
    from hybridtune.llm.llamacpp import find_gguf
    from hybridtune.records import ModelEntry, Persona, Scenario
    from hybridtune.registry import save_entry
    from hybridtune.store import RunStore

    store = RunStore(run)
    scen = [Scenario(id=f"sc{i}", persona_id=f"p{i}", attitude=att, summary=summ, scenario=text,
                     persona=Persona(id=f"p{i}", attributes={"personality": "reserved"}, narrative=narr))
            for i, (narr, att, summ, text) in enumerate(CASES)]
    store.stage("scenarios").write_records("scenarios.jsonl", scen[: max(n_sessions, 1)])
    store.stage("eval_scenarios").write_records("scenarios.jsonl", scen[-n_scenarios:])
    gguf = find_gguf("smollm2")
    run.mkdir(parents=True, exist_ok=True)
    for v in [x.name for x in load_config(str(ROOT / "configs" / "demo.yaml")).variant_list()]:
        # its own path per variant: a model instance each and response-cache keys of its own, as with
        # adapters (none is trained here, so all carry the base weights and their replies coincide)
        link = run / f"{v}.gguf"
        if not link.exists():
            link.symlink_to(gguf)
        save_entry(store, ModelEntry(variant=v, backend="llamacpp", model=str(link), data_hash=v))


def run_arm(root: Path, reuse: bool, a: argparse.Namespace) -> dict:
    runs = root / ("on" if reuse else "off")
    seed_run(runs / "demo", a.sessions, a.scenarios)
    sets = [f"runs_dir={runs}", "quiet=true", f"endpoints.local.prefix_reuse={str(reuse).lower()}",
            f"synth.sessions={a.sessions}", "synth.fewshot=0", f"evaluate.max_turns={a.max_turns}",
            f"endpoints.local.state_cache_mib={a.state_mib}"]
    args = [sys.executable, "-m", "hybridtune.cli", "run", "configs/demo.yaml", "--stage", "synth", "--stage", "simulate"]
    for s in sets:
        args += ["--set", s]
    r = run_process(args)
    if r["rc"]:
        raise SystemExit(f"arm reuse={reuse} failed (exit {r['rc']}): {r['error']}")
    run = runs / "demo"
    rows = json.loads((run / "usage.json").read_text())["rows"]
    stages = {}
    for st in ("synth", "simulate"):
        mine = [x for x in rows if x["stage"] == st]
        stages[st] = {k: sum(x[k] for x in mine) for k in ("calls", "prompt_tokens", "prompt_tokens_evaluated",
                                                         "prompt_tokens_distinct", "completion_tokens")}
        stages[st]["seconds"] = json.loads((run / st / "_done.json").read_text())["seconds"]
        stages[st]["records"] = (run / st / "sessions.jsonl").read_text()
    return {"wall_s": r["seconds"], "peak_rss_mb": r["peak_rss_mb"], "stages": stages}


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=2, help="synthetic sessions (demo: 8)")
    ap.add_argument("--scenarios", type=int, default=2, help="evaluation scenarios, x each declared variant (demo: 4)")
    ap.add_argument("--max-turns", type=int, default=3, help="counselor turns per simulated session (demo: 3)")
    ap.add_argument("--state-mib", type=int, default=128, help="state store limit per model instance")
    a = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="embedded_reuse_"))
    off = run_arm(root, False, a)
    print("off", {k: {x: y for x, y in v.items() if x != "records"} for k, v in off["stages"].items()}, flush=True)
    on = run_arm(root, True, a)
    print("on ", {k: {x: y for x, y in v.items() if x != "records"} for k, v in on["stages"].items()}, flush=True)
    cmd = (f".venv/bin/python bench/embedded_reuse.py --sessions {a.sessions} --scenarios {a.scenarios} "
           f"--max-turns {a.max_turns}")
    load = os.getloadavg()[0]
    results = []
    for st in ("synth", "simulate"):
        f, b = on["stages"][st], off["stages"][st]
        same = f["records"] == b["records"]
        ev, sent, dist = f["prompt_tokens_evaluated"], f["prompt_tokens"], f["prompt_tokens_distinct"]
        note = (f"{f['calls']} model calls per arm; records identical on/off: {same}; configs/demo.yaml with "
                f"synth.sessions={a.sessions}, fewshot 0, {a.scenarios} eval scenarios x the demo variants (base weights), "
                f"max_turns {a.max_turns}; load average {load:.1f} on 2 cores")
        results += [
            Result(f"{st}: prompt tokens evaluated / sent, reuse on", f"{ev} / {sent}",
                   f"reuse off: {b['prompt_tokens_evaluated']} / {b['prompt_tokens']}", round(ev / max(sent, 1), 3),
                   "recorded", None, cmd, note),
            Result(f"{st}: prompt tokens evaluated / distinct, reuse on", f"{ev} / {dist}",
                   f"reuse off: {b['prompt_tokens_evaluated']} / {b['prompt_tokens_distinct']}",
                   round(ev / max(dist, 1), 3), "<= 1.3", ev / max(dist, 1) <= 1.3, cmd),
            Result(f"{st}: wall time, reuse on / off", f"{f['seconds']:.1f} s", f"reuse off {b['seconds']:.1f} s",
                   round(f["seconds"] / max(b["seconds"], 1e-9), 3), "<= 0.5",
                   f["seconds"] / max(b["seconds"], 1e-9) <= 0.5, cmd),
            Result(f"{st}: records identical with reuse on and off", "identical" if same else "DIFFERENT",
                   "reuse off (same seed)", 1.0 if same else 0.0, "identical", same, cmd),
        ]
    results.append(Result("peak RSS of the synth+simulate process, reuse on", f"{on['peak_rss_mb']} MiB",
                          f"reuse off {off['peak_rss_mb']} MiB", round(on["peak_rss_mb"] / off["peak_rss_mb"], 3),
                          f"recorded (store limit {a.state_mib} MiB per model instance)", None, cmd,
                          f"process wall {on['wall_s']} s on, {off['wall_s']} s off (incl. start-up and model loads)"))
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
