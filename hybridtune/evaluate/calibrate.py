"""Stage `calibrate`: is the judge worth trusting on this run? (judge validation + simulator check)

Input: mix/test_real.jsonl (held-out real sessions; falls back to real/sessions.jsonl with a
warning when the split is empty). From each of up to `evaluate.trust.calib_items` sessions
one real counselor turn is taken with its preceding dialogue, plus degraded versions of it
(a counselor turn from an unrelated session, a generic, an off-topic and a dismissive
reply; lists in prompts/trust_degradations.yaml). The `judge` rates every version with the
score stage's own rubrics (eval_judge_<metric>, k samples). Per metric: the AUC with which
the judge ranks originals above degraded versions (also per degradation), its repeat noise
(SD over the k samples), its length bias (Spearman with reply length) and, as a baseline,
the AUC of "longer reply = better". The judge is validated when every metric's AUC reaches
`evaluate.trust.auc_threshold`. Then the patient-simulator check (simcheck.py).

Output: calibrate/ratings.jsonl (CalibRating), calibrate/items.jsonl (the calibration set),
calibrate/simcheck.jsonl, calibrate/results.json.

    hybridtune run configs/demo.yaml --stage calibrate
"""
from __future__ import annotations

import math
import random
from collections import defaultdict
from typing import Any

import numpy as np
from scipy import stats

from ..context import Context, map_items
from ..errors import TooManyFailures
from ..records import Message, Record, Session, stable_id
from ..store import StageDir
from . import simcheck
from . import stats as S
from .metrics import metric as get_metric
from .score import transcript


class CalibItem(Record):
    """One version (original or degraded) of a counselor reply, in its real context."""

    item: str  # id shared by the versions of one original turn
    session_id: str
    version: str  # "original" or a degradation kind
    context: list[Message]
    reply: str
    situation: str = ""


class CalibRating(Record):
    item: str
    version: str
    metric: str
    sample: int
    score: float
    words: int
    judge_model: str
    prompt: str


def pick_turn(s: Session, rng: random.Random) -> int | None:
    """Index of a counselor turn that answers a client turn (None if the session has none)."""
    ok = [i for i, m in enumerate(s.messages) if m.role == "assistant" and i > 0 and s.messages[i - 1].role == "user"
          and m.content.strip()]
    return rng.choice(ok) if ok else None


def situation_of(s: Session) -> str:
    for k in ("situation", "summary", "problem", "topic"):
        v = s.meta.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip()
    return "(not given; judge from the transcript)"


def build_items(sessions: list[Session], n: int, context: int, kinds: list[str], lists: dict[str, list[str]],
                seed: int) -> list[CalibItem]:
    """The calibration set: n originals (one per session) and their degraded versions.

    `unrelated` takes the original of another calibration item (half the set away, so it
    always comes from a different session); the other kinds draw from `lists`, seeded.
    """
    rng = random.Random(seed)
    picked: list[tuple[Session, int]] = []
    for s in sessions:
        i = pick_turn(s, rng)
        if i is not None:
            picked.append((s, i))
        if len(picked) == n:
            break
    out: list[CalibItem] = []
    for j, (s, i) in enumerate(picked):
        ctx_msgs = [m for m in s.messages[:i] if m.role != "system"][-context:]
        item = stable_id("calib", s.id, i, context)
        replies = {"original": s.messages[i].content.strip()}
        for kind in kinds:
            if kind == "unrelated":
                if len(picked) > 1:
                    o, oi = picked[(j + max(1, len(picked) // 2)) % len(picked)]
                    replies[kind] = o.messages[oi].content.strip()
            else:
                pool = lists.get(kind) or []
                assert pool, f"trust_degradations.yaml: no '{kind}' replies listed"
                replies[kind] = random.Random(f"{seed}:{item}:{kind}").choice(pool)
        for version, reply in replies.items():
            out.append(CalibItem(id=stable_id(item, version, reply), item=item, session_id=s.id, version=version,
                                 context=ctx_msgs, reply=reply, situation=situation_of(s)))
    return out


def auc(pos: list[float], neg: list[float]) -> float | None:
    """P(score of a random original > score of a random degraded), ties counting half:
    the Mann-Whitney U of the originals over n_pos * n_neg. None when either side is empty."""
    if not pos or not neg:
        return None
    u = stats.mannwhitneyu(pos, neg, alternative="two-sided").statistic
    return float(u / (len(pos) * len(neg)))


def analyze(ratings: list[CalibRating], metrics: list[str], threshold: float) -> dict[str, Any]:
    """Per metric: AUC (overall and per degradation), repeat noise, length bias, length-baseline AUC."""
    out: dict[str, Any] = {}
    for m in metrics:
        samples: dict[tuple[str, str], list[float]] = defaultdict(list)
        words: dict[tuple[str, str], int] = {}
        for r in ratings:
            if r.metric == m:
                samples[(r.item, r.version)].append(r.score)
                words[(r.item, r.version)] = r.words
        mean = {k: float(np.mean(v)) for k, v in samples.items()}
        pos = [v for (_, ver), v in mean.items() if ver == "original"]
        neg = [v for (_, ver), v in mean.items() if ver != "original"]
        kinds = sorted({ver for (_, ver) in mean if ver != "original"})
        sds = [float(np.std(v, ddof=1)) for v in samples.values() if len(v) > 1]
        keys = list(mean)
        a = auc(pos, neg)
        out[m] = {
            "auc": a,
            "passes": a is not None and a >= threshold,
            "n_original": len(pos), "n_degraded": len(neg),
            "auc_by_degradation": {k: auc(pos, [v for (_, ver), v in mean.items() if ver == k]) for k in kinds},
            "mean_original": float(np.mean(pos)) if pos else None,
            "mean_degraded": float(np.mean(neg)) if neg else None,
            "repeat_sd": float(np.mean(sds)) if sds else None,
            "repeat_n": len(sds),
            "length_bias": S.spearman([words[k] for k in keys], [mean[k] for k in keys]),
            "length_baseline_auc": auc([words[k] for k in keys if k[1] == "original"],
                                       [words[k] for k in keys if k[1] != "original"]),
        }
    return out


def verdict(metrics: dict[str, Any], threshold: float) -> tuple[bool | None, str]:
    """(validated, one-line verdict). None when there was nothing to calibrate on."""
    if not metrics or all(v["auc"] is None for v in metrics.values()):
        return None, "judge validation could not run on this run (no held-out real counselor turns were rated)"
    failing = [f"{m} AUC {v['auc']:.2f}" if v["auc"] is not None else f"{m} AUC n/a"
               for m, v in metrics.items() if not v["passes"]]
    if failing:
        return False, f"judge not validated on this run: {', '.join(failing)} < {threshold:.2f}"
    aucs = ", ".join(f"{m} AUC {v['auc']:.2f}" for m, v in metrics.items())
    return True, f"judge validated on this run: {aucs} >= {threshold:.2f}"


def calibration_sessions(ctx: Context) -> tuple[list[Session], str, list[str]]:
    """Held-out real sessions, or the ingested real sessions with a warning when the split is empty."""
    warnings = []
    mix = ctx.store.stage("mix")
    sessions = list(mix.read("test_real.jsonl", Session))
    source = "mix/test_real.jsonl"
    if not sessions:
        sessions = list(ctx.store.stage("real").read("sessions.jsonl", Session))
        source = "real/sessions.jsonl"
        warnings.append("mix/test_real.jsonl is empty: calibrated on real/sessions.jsonl, which may include "
                        "sessions the variants were trained on (harmless for judge validation, which uses no variant)")
        ctx.log(f"[yellow]calibrate: {warnings[-1]}[/yellow]")
    return sessions, source, warnings


async def rate(ctx: Context, st: StageDir, items: list[CalibItem], metrics: list[str], k: int) -> list[CalibRating]:
    judge = ctx.llm("judge")
    tpls = {m: ctx.domain.prompt(f"eval_judge_{m}") for m in metrics}
    work = [(stable_id("calib", it.id, m, s, judge.model, tpls[m].tag), (it, m, s))
            for it in items for m in metrics for s in range(k)]

    async def one(key: str, w: tuple[CalibItem, str, int]) -> CalibRating:
        it, m, s = w
        sess = Session(id=it.id, source="real", messages=[*it.context, Message(role="assistant", content=it.reply)])
        reply = await judge.chat(tpls[m].render(transcript=transcript(ctx, sess), scenario=it.situation),
                                 schema=get_metric(m).schema(), sample=s)
        return CalibRating(id=key, item=it.item,
                           version=it.version, metric=m, sample=s, score=get_metric(m).value(reply.parsed)[0],
                           words=len(it.reply.split()), judge_model=judge.model, prompt=tpls[m].tag)

    try:
        await map_items(ctx, st, work, one, "ratings.jsonl", label="calibrate judge",
                        concurrency=ctx.cfg.evaluate.concurrency)
    except TooManyFailures as e:
        # Here a judge that cannot follow the rubric's format is a finding ("not validated"),
        # reported with its failure rate; stopping the run would lose the report that says so.
        ctx.log(f"[yellow]calibrate: {e}[/yellow]")
    keys = {key for key, _ in work}
    return [r for r in st.read("ratings.jsonl", CalibRating) if r.id in keys]


async def run(ctx: Context, st: StageDir) -> dict:
    tc = ctx.cfg.evaluate.trust
    metrics = list(ctx.cfg.evaluate.metrics)
    sessions, source, warnings = calibration_sessions(ctx)
    lists = ctx.domain.data_file("prompts/trust_degradations.yaml") or {}
    items = build_items(sessions, tc.calib_items, tc.calib_context, list(tc.degradations), lists, ctx.cfg.seed)
    st.write_records("items.jsonl", items)
    ratings = await rate(ctx, st, items, metrics, tc.calib_samples) if items else []
    per_metric = analyze(ratings, metrics, tc.auc_threshold)
    validated, text = verdict(per_metric, tc.auc_threshold)
    planned = len(items) * len(metrics) * tc.calib_samples
    if planned and 1 - len(ratings) / planned > ctx.cfg.llm.max_failure_rate:
        validated = False
        text = (f"judge not validated on this run: {1 - len(ratings) / planned:.0%} of its ratings could not be "
                f"parsed (> llm.max_failure_rate {ctx.cfg.llm.max_failure_rate}); " + text.split(": ", 1)[-1])
    results = {
        "validated": validated, "verdict": text, "threshold": tc.auc_threshold,
        "judge_model": ctx.llm("judge").model, "source": source, "warnings": warnings,
        "originals": sum(1 for it in items if it.version == "original"), "versions": len(items),
        "samples": tc.calib_samples, "ratings": len(ratings), "ratings_planned": planned,
        "failure_rate": round(1 - len(ratings) / planned, 4) if planned else None,
        "metrics": per_metric,
        "simcheck": await simcheck.check(ctx, st),
    }
    st.write_json("results.json", _finite(results))
    ctx.log(("[green]" if validated else "[bold yellow]") + f"calibrate: {text}[/]")
    return {"validated": validated, "ratings": len(ratings), "items": results["originals"]}


def _finite(x: Any) -> Any:
    """NaN/inf -> None, so results.json is strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


__all__ = ["CalibItem", "CalibRating", "analyze", "auc", "build_items", "run", "verdict"]
