"""Technique coverage of 100 planned sessions: quota dealing vs independent random choice.

The `synth` stage's planner (`plan_sessions`, 3 techniques per session from the domain's
taxonomy) against a naive baseline in the same run: each session picks 3 distinct techniques
uniformly at random. Targets: every technique appears; none exceeds 2x its even quota share.
Planning makes no model calls (the fake backend stands in), so this measures the planner, not
whether a model then realises the techniques (synth_report.md's 'realised' column does that).

    .venv/bin/python bench/synth_coverage.py [--sessions 100]
"""
from __future__ import annotations

import argparse
import random
from collections import Counter

from common import Result, bench_ctx, record

from hybridtune.records import Scenario
from hybridtune.synth.sessions import plan_sessions


def stats(picks: list[list[str]], ids: list[str]) -> tuple[int, float]:
    c = Counter(t for p in picks for t in p)
    quota = sum(c.values()) / len(ids)
    return sum(1 for i in ids if c.get(i, 0) == 0), max(c.values()) / quota


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--per-session", type=int, default=3)
    a = ap.parse_args()
    with bench_ctx(f"synth.techniques_per_session={a.per_session}", backend="fake") as ctx:
        ids = [t.id for t in ctx.domain.techniques]
        scen = [Scenario(id=f"s{i}", summary="x", scenario="x") for i in range(10)]
        plans = plan_sessions(ctx, scen, a.sessions, seed=0)
    rng = random.Random(0)
    naive = [rng.sample(ids, a.per_session) for _ in range(a.sessions)]
    mq, rq = stats([p.techniques for p in plans], ids)
    mn, rn = stats(naive, ids)
    cmd = f".venv/bin/python bench/synth_coverage.py --sessions {a.sessions} --per-session {a.per_session}"
    note = f"{len(ids)} CBT techniques, {a.sessions} sessions x {a.per_session}; naive = uniform random per session"
    record("synth_coverage", [
        Result("techniques missing over planned sessions", f"{mq} missing", f"naive random {mn} missing", None,
               "0 missing", mq == 0, cmd, note),
        Result("most-used technique share / even quota share", f"{rq:.2f}x", f"naive random {rn:.2f}x",
               round(rq / rn, 3), "<= 2.0x", rq <= 2.0, cmd, note),
    ])


if __name__ == "__main__":
    main()
