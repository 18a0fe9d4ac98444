"""Pairwise judging: beside its absolute 1-10 scores, the judge compares two variants' replies
to the same client turn (part of the score stage, `evaluate.pairwise`).

The units: per scenario, the dialogue every variant's simulated session shares (with the
client opening, the client's first turn is the same for every variant: same prompt, same seed)
and each variant's next counselor reply (`units`). The same units feed the human rating page
(`hybridtune rate`, evaluate/rate/). For each unit and each pair of variants the judge is asked
twice, once with each reply first (prompt `eval_judge_pairwise`, a versioned file of the domain
pack); a pair's outcome for variant a is the mean over the two orders (1 a better, 0.5 tie,
0 b better), so a judge that always prefers the first position gives 0.5, a tie.

Output: score/pairwise.jsonl (PairJudgment), score/pairwise_units.jsonl (PairUnit); the
score summary's `pairwise` (`analyze`: win rates with bootstrap CIs over units, and how often
the two orders agreed).

    units = pairwise.units(sessions); js = await pairwise.judge(ctx, st, units); pairwise.analyze(js)
"""
from __future__ import annotations

from collections import defaultdict
from itertools import combinations
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from ..context import Context, map_items
from ..errors import TooManyFailures
from ..meta import SimMeta
from ..records import Message, Record, Session, stable_id
from ..store import StageDir
from .metrics import RATIONALE
from .dialogue import transcript

PROMPT = "eval_judge_pairwise"


class PairUnit(Record):
    """One client turn every variant answered: the shared dialogue and each variant's reply."""

    scenario_id: str
    context: list[Message]
    replies: dict[str, str]  # variant -> its counselor reply


class PairJudgment(Record):
    unit: str
    a: str  # variants, a < b
    b: str
    first: str  # the variant shown as reply A
    winner: str  # a variant, or "tie"
    rationale: str = ""
    judge_model: str
    prompt: str


class PairChoice(BaseModel):
    rationale: str = RATIONALE
    better: Literal["A", "B", "tie"] = Field(description="the better counselor reply, or tie")


def _shared_prefix(sessions: list[Session]) -> list[Message]:
    msgs = [[m for m in s.messages if m.role != "system"] for s in sessions]
    n = 0
    while all(len(x) > n for x in msgs) and all(x[n] == msgs[0][n] for x in msgs):
        n += 1
    return msgs[0][:n]


def units(sessions: list[Session]) -> list[PairUnit]:
    """Per scenario: the first client turn all variants' sessions share, with each variant's reply
    to it (scenarios where fewer than two variants answered it are left out)."""
    by: dict[str, dict[str, Session]] = defaultdict(dict)
    for s in sessions:
        sm = SimMeta.of(s)
        by[sm.scenario_id][sm.variant] = s
    out = []
    for scen, vs in by.items():
        if len(vs) < 2:
            continue
        shared = _shared_prefix(list(vs.values()))
        while shared and shared[-1].role != "user":  # a counselor opening shared by all: answer the client after it
            shared = shared[:-1]
        if not shared:
            continue
        replies = {}
        for v, s in sorted(vs.items()):
            rest = [m for m in s.messages if m.role != "system"][len(shared):]
            if rest and rest[0].role == "assistant" and rest[0].content.strip():
                replies[v] = rest[0].content.strip()
        if len(replies) >= 2:
            out.append(PairUnit(id=stable_id("pair-unit", scen, [m.content for m in shared]), scenario_id=scen,
                                context=shared, replies=replies))
    return out


def tasks(us: list[PairUnit]) -> list[tuple[PairUnit, str, str]]:
    """(unit, a, b) for every pair of variants that both answered the unit, a < b."""
    return [(u, a, b) for u in us for a, b in combinations(sorted(u.replies), 2)]


async def judge(ctx: Context, st: StageDir, us: list[PairUnit]) -> list[PairJudgment]:
    llm = ctx.llm("judge")
    tpl = ctx.domain.prompt(PROMPT)
    work = [(stable_id("pairwise", u.id, a, b, first, llm.model, tpl.tag), (u, a, b, first))
            for u, a, b in tasks(us) for first in (a, b)]

    async def one(key: str, w: tuple[PairUnit, str, str, str]) -> PairJudgment:
        u, a, b, first = w
        second = b if first == a else a
        ctx_text = transcript(ctx, Session(id=u.id, source="simulated", messages=u.context))
        reply = await llm.chat(tpl.render(transcript=ctx_text, reply_a=u.replies[first], reply_b=u.replies[second]),
                               schema=PairChoice)
        p: PairChoice = reply.parsed
        winner = {"A": first, "B": second}.get(p.better, "tie")
        return PairJudgment(id=key, unit=u.id, a=a, b=b, first=first, winner=winner, rationale=p.rationale[:1000],
                            judge_model=llm.model, prompt=tpl.tag)

    try:
        await map_items(ctx, st, work, one, "pairwise.jsonl", label="pairwise judge",
                        concurrency=ctx.cfg.evaluate.concurrency)
    except TooManyFailures as e:  # a judge that cannot answer: its failure rate is the finding
        ctx.log(f"[yellow]pairwise: {e}[/yellow]")
    keys = {k for k, _ in work}
    return [j for j in st.read("pairwise.jsonl", PairJudgment) if j.id in keys]


def outcome(winner: str, a: str) -> float:
    """a's result in one judgment: 1 win, 0.5 tie, 0 loss."""
    return 1.0 if winner == a else 0.5 if winner == "tie" else 0.0


def pair_outcomes(js: list[PairJudgment]) -> dict[tuple[str, str, str], dict[str, Any]]:
    """(unit, a, b) -> {"score": a's mean result over the orders asked, "orders": n,
    "consistent": both orders named the same winner (None with one order)}."""
    by: dict[tuple[str, str, str], list[PairJudgment]] = defaultdict(list)
    for j in js:
        by[(j.unit, j.a, j.b)].append(j)
    out = {}
    for k, v in by.items():
        res = [outcome(j.winner, k[1]) for j in v]
        out[k] = {"score": float(np.mean(res)), "orders": len(v),
                  "consistent": (res[0] == res[1]) if len(v) == 2 else None}
    return out


def win_rate_ci(scores: list[float], resamples: int = 2000, level: float = 0.95, seed: int = 0) -> list[float] | None:
    """Percentile bootstrap CI of a mean over units."""
    if len(scores) < 2:
        return None
    x = np.asarray(scores)
    stat = x[np.random.default_rng(seed).integers(0, len(x), (resamples, len(x)))].mean(1)
    lo = (1 - level) / 2
    return [float(np.quantile(stat, lo)), float(np.quantile(stat, 1 - lo))]


def analyze(js: list[PairJudgment], resamples: int = 2000, level: float = 0.95, seed: int = 0) -> dict[str, Any]:
    """Win rate of a over b per pair of variants (ties half), with a CI over units; the share of
    units where the two orders agreed, and how often the reply shown first won."""
    po = pair_outcomes(js)
    by: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for (_, a, b), r in po.items():
        by[(a, b)].append(r)
    pairs = []
    for (a, b), rs in sorted(by.items()):
        sc = [r["score"] for r in rs]
        cons = [r["consistent"] for r in rs if r["consistent"] is not None]
        pairs.append({"a": a, "b": b, "units": len(rs), "win_rate_a": float(np.mean(sc)),
                      "ci": win_rate_ci(sc, resamples, level, seed),
                      "order_agreement": float(np.mean(cons)) if cons else None})
    decided = [j for j in js if j.winner != "tie"]
    return {"judgments": len(js), "pairs": pairs,
            "first_position_wins": float(np.mean([j.winner == j.first for j in decided])) if decided else None,
            "ties": sum(j.winner == "tie" for j in js)}


async def run(ctx: Context, st: StageDir, sessions: list[Session]) -> dict[str, Any]:
    """The score stage's pairwise part: {"ran": False, "note"} when off or nothing to compare."""
    if not ctx.cfg.evaluate.pairwise:
        return {"ran": False, "note": "evaluate.pairwise is off"}
    us = units(sessions)
    st.write_records("pairwise_units.jsonl", us)
    if not us:
        return {"ran": False, "note": "no client turn that two or more variants answered"}
    js = await judge(ctx, st, us)
    planned = 2 * len(tasks(us))
    return {"ran": True, "units": len(us), "planned": planned, "failed": planned - len(js),
            "prompt": ctx.domain.prompt(PROMPT).tag,
            **analyze(js, ctx.cfg.evaluate.bootstrap_resamples, seed=ctx.cfg.seed)}


__all__ = ["PairJudgment", "PairUnit", "analyze", "judge", "pair_outcomes", "run", "tasks", "units"]
