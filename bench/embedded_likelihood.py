"""Benchmark: the `likelihood` stage at demo size on the embedded model, prompt-state reuse off and on.

The demo's declared variants (configs/demo.yaml; the packaged GGUF registered under each name,
a llama.cpp instance each, as adapters would be) score `--sessions` held-out ESConv test
conversations per split (`data_file("esconv", "test.json")`; test_real and test_synthetic each
get their own sessions), up to `--turns` counselor turns each: one forward pass per session,
every counselor turn's log-probabilities from it, the shared system prompt read once per
variant when reuse is on. Arms alternate off, on, off, on, ... (`--repeats`), each in a fresh
run directory, in this process. Reports the stage time (target <= 90 s at demo size) as the
median of each arm, on / off, where the time goes (llama.cpp reading the sessions, loading the
models, the rest), tokens read and scored, peak RSS, and whether the NLL records are identical
between the arms (they must be).

    .venv/bin/python bench/embedded_likelihood.py --sessions 4 --turns 4 --repeats 2
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from common import ROOT, Result, data_file, esconv_sessions, peak_rss_mb, record

from hybridtune.config import load_config
from hybridtune.context import open_run
from hybridtune.evaluate import likelihood
from hybridtune.llm import prefix
from hybridtune.llm.llamacpp import find_gguf
from hybridtune.records import ModelEntry
from hybridtune.registry import save_entry

WORK: dict[str, float] = defaultdict(float)


def timed(fn, label: str, count=None):
    def wrapped(*args, **kw):
        if count:
            WORK[f"{label}_tokens"] += count(args)
        t = time.perf_counter()
        try:
            return fn(*args, **kw)
        finally:
            WORK[label] += time.perf_counter() - t
    return wrapped


prefix.ReusingLlama.__init__ = timed(prefix.ReusingLlama.__init__, "load")
prefix.ReusingLlama.eval_prompt = timed(prefix.ReusingLlama.eval_prompt, "read",
                                        lambda args: len(args[1]) - min(args[2], args[0].n_tokens, args[0].canon))


def run_arm(root: Path, reuse: bool, i: int, a: argparse.Namespace, sessions: list) -> dict:
    WORK.clear()
    tmp = root / f"{'on' if reuse else 'off'}{i}"
    cfg = load_config(str(ROOT / "configs" / "demo.yaml"), [
        f"runs_dir={tmp}", "name=bench-likelihood", "quiet=true", f"endpoints.local.prefix_reuse={str(reuse).lower()}",
        f"evaluate.trust.likelihood_sessions={a.sessions}", f"evaluate.trust.likelihood_turns={a.turns}"])
    gguf = find_gguf("smollm2")
    with open_run(cfg) as ctx:
        mix = ctx.store.stage("mix")
        mix.write_records("test_real.jsonl", sessions[: a.sessions])
        mix.write_records("test_synthetic.jsonl", sessions[a.sessions: 2 * a.sessions])
        for v in [x.name for x in cfg.variant_list()]:
            link = tmp / f"{v}.gguf"  # its own path per variant: an instance each, as with adapters
            link.symlink_to(gguf)
            save_entry(ctx.store, ModelEntry(variant=v, backend="llamacpp", model=str(link), data_hash=v))
        load0 = os.getloadavg()[0]
        secs = ctx.run_stage("likelihood", likelihood.run)["seconds"]
        load1 = os.getloadavg()[0]
        st = ctx.store.stage("likelihood")
        res = st.read_summary()
        rows = sorted(json.dumps({k: v for k, v in d.items() if k != "id"}, sort_keys=True)
                      for d in st.read_dicts("sessions.jsonl"))
    return {"seconds": secs, "work": dict(WORK), "rows": rows, "load": (round(load0, 1), round(load1, 1)),
            "scored": sum(sp["tokens"] for v in res["variants"].values() for sp in v.values()),
            "variants": len(res["variants"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=4, help="held-out sessions per split (demo: 4)")
    ap.add_argument("--turns", type=int, default=4, help="counselor turns scored per session (demo: 4)")
    ap.add_argument("--repeats", type=int, default=2, help="runs per arm, alternating off, on, off, on, ...")
    a = ap.parse_args()
    data_file("esconv", "test.json")  # before any work: a missing data set is one line
    sessions = esconv_sessions(2 * a.sessions)
    root = Path(tempfile.mkdtemp(prefix="embedded_likelihood_"))
    arms: dict[bool, list[dict]] = {False: [], True: []}
    for i in range(a.repeats):
        for reuse in (False, True):
            arm = run_arm(root, reuse, i, a, sessions)
            arms[reuse].append(arm)
            print("on " if reuse else "off", i, {k: v for k, v in arm.items() if k != "rows"}, flush=True)
    off, on = arms[False], arms[True]
    cmd = (f".venv/bin/python bench/embedded_likelihood.py --sessions {a.sessions} --turns {a.turns} "
           f"--repeats {a.repeats}")
    med = {r: statistics.median(x["seconds"] for x in arms[r]) for r in (False, True)}
    same = all(x["rows"] == off[0]["rows"] for x in off + on)
    loads = [x for arm in off + on for x in arm["load"]]
    order = ", ".join(f"{'on' if r else 'off'} {x['load'][0]}->{x['load'][1]}"
                      for pair in zip(off, on, strict=True) for r, x in zip((False, True), pair, strict=True))

    def split(xs: list[dict]) -> str:
        m = {k: statistics.median(x["work"].get(k, 0.0) for x in xs) for k in ("read", "load", "read_tokens")}
        rest = statistics.median(x["seconds"] for x in xs) - m["read"] - m["load"]
        return (f"reading {m['read_tokens']:.0f} tokens {m['read']:.1f} s, model loads {m['load']:.1f} s, "
                f"other {rest:.1f} s")

    size = (f"{on[0]['variants']} variants x {a.sessions} sessions x 2 splits, <= {a.turns} counselor turns "
            f"(ESConv test), {on[0]['scored']} counselor tokens scored per arm")
    results = [
        Result(f"likelihood stage, reuse on ({size})", f"{med[True]:.1f} s "
               f"({', '.join(str(x['seconds']) for x in on)})", f"target 90 s; reuse off {med[False]:.1f} s "
               f"({', '.join(str(x['seconds']) for x in off)})", round(med[True] / 90, 3),
               "<= 90 s at demo size (--sessions 4 --turns 4)", med[True] <= 90, cmd,
               f"reuse on: {split(on)}; reuse off: {split(off)}; load average {min(loads):.1f}-{max(loads):.1f} on "
               f"{os.cpu_count()} cores; arms in order: {order}"),
        Result("likelihood stage wall time, reuse on / off", f"{med[True]:.1f} s", f"reuse off {med[False]:.1f} s",
               round(med[True] / med[False], 3), "recorded", None, cmd),
        Result("likelihood records identical with reuse on and off", "identical" if same else "DIFFERENT",
               f"reuse off, all {2 * a.repeats} runs", 1.0 if same else 0.0, "identical", same, cmd),
        Result("peak RSS of this process (all arms)", f"{peak_rss_mb():.0f} MiB", "-", None,
               "recorded (one scorer per variant, each with its logits rows)", None, cmd),
    ]
    record("embedded_likelihood", results)


if __name__ == "__main__":
    main()
