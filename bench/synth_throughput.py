"""Synthetic-session throughput on the embedded model, and the share of wall time outside the model.

Runs `make_sessions` (role-play by default; `--modes roleplay,single_pass` adds single pass) over fixed scenarios on SmolLM2-135M via
llama.cpp with the cache off, timing every llama.cpp call. Figures: sessions per minute, and
(wall - model time) / wall, the pipeline's own overhead (target < 5%). The GGUF is loaded before
the timed window; quality checks/annotation are off so each call is a session turn. Single pass
on the 135M model mostly overruns max_tokens (invalid JSON): its rate counts only valid sessions.

    .venv/bin/python bench/synth_throughput.py [--sessions 4 --exchanges 3]
"""
from __future__ import annotations

import argparse
import asyncio
import time

from common import ModelTimer, Result, bench_ctx, record

from hybridtune.records import Persona, Scenario
from hybridtune.synth.sessions import make_sessions

PROBLEMS = ["I froze in a job interview and now I think I will never get hired.",
            "My sister forgot my birthday, so nobody in my family cares about me.",
            "I made one mistake in a report and my boss must think I am useless.",
            "I could not sleep before my exam, and I know I will fail it."]


def scenarios() -> list[Scenario]:
    out = []
    for i, text in enumerate(PROBLEMS):
        p = Persona(id=f"p{i}", attributes={"personality": "reserved"}, narrative=f"Client {i}, in their thirties.")
        out.append(Scenario(id=f"s{i}", persona_id=p.id, persona=p, summary=text, scenario=text, attitude="neutral"))
    return out


def measure(mode: str, n: int, exchanges: int, max_tokens: int) -> tuple[float, float, int, int]:
    sets = [f"synth.mode={mode}", f"synth.min_exchanges={exchanges}", f"synth.max_exchanges={exchanges}",
            "synth.annotate_realised=false", "synth.fewshot=0", "llm.cache=false", "llm.max_failure_rate=1",
            f"roles.patient.max_tokens={max_tokens}", f"roles.counselor.max_tokens={max_tokens}",
            "roles.generator.max_tokens=500", "synth.concurrency=1", "synth.max_regenerations=0", "llm.max_reasks=0"]
    with bench_ctx(*sets) as ctx:
        timer = ModelTimer(ctx)
        t0 = time.perf_counter()
        done = asyncio.run(make_sessions(ctx, ctx.store.stage("synth"), scenarios(), n, seed=3))
        wall = time.perf_counter() - t0
    return wall, timer.seconds, len(done), timer.calls


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--exchanges", type=int, default=3)
    ap.add_argument("--max-tokens", type=int, default=60, help="patient/counselor max_tokens per turn")
    ap.add_argument("--modes", default="roleplay", help="comma-separated: roleplay,single_pass")
    a = ap.parse_args()
    cmd = (f".venv/bin/python bench/synth_throughput.py --sessions {a.sessions} --exchanges {a.exchanges} "
           f"--max-tokens {a.max_tokens} --modes {a.modes}")
    results = []
    for mode in a.modes.split(","):
        wall, model, n, calls = measure(mode, a.sessions, a.exchanges, a.max_tokens)
        out = (wall - model) / wall
        note = (f"{n}/{a.sessions} sessions of {a.exchanges} exchanges, {calls} model calls, {wall:.1f}s wall, "
                f"{model:.1f}s in llama.cpp; SmolLM2-135M, shared 2-core CPU")
        results += [
            Result(f"synthetic sessions per minute ({mode})", f"{60 * n / wall:.2f} sessions/min",
                   f"model-only bound {60 * n / model:.2f} sessions/min", round(model / wall, 3), "none", None, cmd, note),
            Result(f"share of wall time outside the model ({mode})", f"{100 * out:.1f}%", "wall time of the same run",
                   round(out, 4), "< 5%", out < 0.05, cmd, note),
        ]
    record("synth_throughput", results)


if __name__ == "__main__":
    main()
