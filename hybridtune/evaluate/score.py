"""Stage `score`: the `judge` role rates each simulated session on the configured metrics.

Input: simulate/sessions.jsonl. One judge call per session x metric x sample, from the
versioned rubric prompt of the metric (eval_judge_<metric> by default; structured {rationale, score}, or one score per
item for a metric with items; metrics are declared in metrics.py or the domain pack), k repeated samples (`evaluate.judge_samples`)
and a second judge (`evaluate.second_judge_endpoint/model`). Failed judgments are counted
(failures.jsonl), never turned into scores. With `evaluate.pairwise`, the judge also compares
two variants' replies to the same client turn, in both orders (pairwise.py).
Output: score/scores.jsonl (Score: one judgment), score/session_scores.jsonl (per session:
mean over samples of the first judge, the samples behind each mean, counselor word count),
score/summary.json (failures, judge noise, inter-judge agreement, length bias, pairwise win rates),
score/pairwise.jsonl, score/pairwise_units.jsonl.

    hybridtune score -c configs/demo.yaml
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from pydantic import Field

from ..context import Context, map_items
from ..llm import LLM
from ..meta import SimMeta
from ..records import Record, Scenario, Session, stable_id
from ..store import StageDir
from . import simulate
from . import stats as S
from .dialogue import transcript
from .metrics import metric as get_metric


class Score(Record):
    """One judgment of one session on one metric by one judge (sample k)."""

    session_id: str
    variant: str
    scenario_id: str
    judge: str  # "judge" or "judge2"
    judge_model: str
    metric: str
    sample: int = 0
    score: float
    items: dict[str, int] = Field(default_factory=dict)  # item scores of a metric with items
    rationale: str = ""
    prompt: str = ""
    counselor_words: int = 0


def counselor_words(s: Session) -> int:
    return sum(len(t.split()) for t in s.turns("assistant"))


def judges(ctx: Context) -> dict[str, LLM]:
    out = {"judge": ctx.llm("judge")}
    ev = ctx.cfg.evaluate
    if ev.second_judge_endpoint:
        rc = ctx.cfg.roles["judge"].model_copy(update={"model": ev.second_judge_model})
        out["judge2"] = ctx.llms.bind("judge", rc, ev.second_judge_endpoint)
    return out


def metric_list(ctx: Context) -> list[str]:
    return ctx.cfg.evaluate.metrics


async def judge_one(ctx: Context, key: str, s: Session, scen_text: str, judge: str, llm: LLM, metric: str, k: int) -> Score:
    m = get_metric(metric)
    tpl = ctx.domain.prompt(m.rubric)
    msgs = tpl.render(transcript=transcript(ctx, s), scenario=scen_text, protocol=ctx.domain.protocol)
    reply = await llm.chat(msgs, schema=m.schema(), sample=k)
    p: Any = reply.parsed
    value, items = m.value(p)
    sm = SimMeta.of(s)
    return Score(id=key, session_id=s.id, variant=sm.variant, scenario_id=sm.scenario_id, judge=judge,
                 judge_model=llm.model, metric=metric, sample=k, score=value, items=items,
                 rationale=p.rationale[:1000], prompt=tpl.tag, counselor_words=counselor_words(s))


def score_key(s: Session, judge: str, model: str, metric: str, tag: str, k: int) -> str:
    return stable_id("score", s.id, judge, model, metric, tag, k)


def session_rows(scores: list[Score], sessions: list[Session], metrics: list[str], judge: str = "judge") -> list[dict]:
    """One row per session: the mean over samples of `judge`'s scores per metric (None if none)."""
    acc: dict[tuple[str, str], list[float]] = defaultdict(list)
    for sc in scores:
        if sc.judge == judge:
            acc[(sc.session_id, sc.metric)].append(sc.score)
    rows = []
    for s in sessions:
        sm = SimMeta.of(s)
        row = {"id": s.id, "variant": sm.variant, "scenario_id": sm.scenario_id,
               "words": counselor_words(s), "end_reason": sm.end_reason or None, "crisis": sm.crisis}
        row["samples"] = {}  # judgements behind each mean: fewer than judge_samples = a partial failure
        for m in metrics:
            v = acc.get((s.id, m))
            row[m] = float(np.mean(v)) if v else None
            row["samples"][m] = len(v or [])
        rows.append(row)
    return rows


def judge_noise(scores: list[Score], metrics: list[str]) -> dict:
    """Per metric: mean within-session SD over the k samples, and alpha treating samples as raters."""
    out = {}
    for m in metrics:
        by: dict[str, dict[int, float]] = defaultdict(dict)
        for sc in scores:
            if sc.judge == "judge" and sc.metric == m:
                by[sc.session_id][sc.sample] = sc.score
        k = max((len(v) for v in by.values()), default=0)
        sds = [float(np.std(list(v.values()), ddof=1)) for v in by.values() if len(v) > 1]
        units = list(by)
        ratings = [[by[u].get(i) for u in units] for i in range(k)]
        out[m] = {"k": k, "sessions": len(sds), "mean_sd": float(np.mean(sds)) if sds else None,
                  "alpha": S.alpha_interval(ratings) if k > 1 else None}
    return out


def agreement(scores: list[Score], sessions: list[Session], metrics: list[str]) -> dict:
    """Per metric: Krippendorff's alpha and Spearman between the two judges' per-session means."""
    a = {r["id"]: r for r in session_rows(scores, sessions, metrics, "judge")}
    b = {r["id"]: r for r in session_rows(scores, sessions, metrics, "judge2")}
    out = {}
    for m in metrics:
        ids = [i for i in a if a[i].get(m) is not None and b.get(i, {}).get(m) is not None]
        x, y = [a[i][m] for i in ids], [b[i][m] for i in ids]
        out[m] = {"n": len(ids), "alpha": S.alpha_interval([x, y]) if ids else None, **{
            f"spearman_{k}": v for k, v in S.spearman(x, y).items() if k != "n"}}
    return out


def length_bias(rows: list[dict], metrics: list[str]) -> dict:
    """Spearman correlation of each metric with the counselor's word count (a judge that
    rewards length shows rho well above 0)."""
    out = {}
    for m in metrics:
        ok = [r for r in rows if r.get(m) is not None]
        out[m] = S.spearman([r["words"] for r in ok], [r[m] for r in ok])
    return out


async def run(ctx: Context, st: StageDir) -> dict:
    from . import pairwise  # it uses transcript() from here

    sessions = simulate.load(ctx)
    scen = {s.id: s for s in ctx.store.stage("eval_scenarios").read("scenarios.jsonl", Scenario)}
    metrics = metric_list(ctx)
    js = judges(ctx)
    items = []
    for s in sessions:
        sc = scen.get(SimMeta.of(s).scenario_id)
        text = sc.summary if sc else ""
        for jname, llm in js.items():
            for m in metrics:
                tag = ctx.domain.prompt(get_metric(m).rubric).tag
                for k in range(ctx.cfg.evaluate.judge_samples):
                    items.append((score_key(s, jname, llm.model, m, tag, k), (s, text, jname, llm, m, k)))

    async def one(key: str, item):
        return await judge_one(ctx, key, *item)

    res = await map_items(ctx, st, items, one, "scores.jsonl", label="score",
                          concurrency=ctx.cfg.evaluate.concurrency)
    keys = {k for k, _ in items}
    scores = [x for x in st.read("scores.jsonl", Score) if x.id in keys]
    rows = session_rows(scores, sessions, metrics)
    st.write_records("session_scores.jsonl", rows)
    summary = {
        "judgments": len(items), "scored": len(scores), "failed": len(items) - len(scores),
        "failure_rate": round((len(items) - len(scores)) / max(len(items), 1), 4),
        "metrics": metrics, "judges": {j: llm.model for j, llm in js.items()},
        "judge_samples": ctx.cfg.evaluate.judge_samples,
        "judge_noise": judge_noise(scores, metrics),
        "agreement": agreement(scores, sessions, metrics) if "judge2" in js else None,
        "length_bias": length_bias(rows, metrics),
        "unscored_sessions": sum(1 for r in rows if any(r[m] is None for m in metrics)),
        "partial_judgements": sum(1 for r in rows for m in metrics
                                  if 0 < r["samples"][m] < ctx.cfg.evaluate.judge_samples),
        "pairwise": await pairwise.run(ctx, st, sessions),
    }
    st.write_summary(summary)
    return {**res.as_dict(), "judgments": len(items), "scored": len(scores),
            "failure_rate": summary["failure_rate"]}
