"""Stage `calibrate`: is the judge worth trusting on this run? (judge validation + simulator check)

Input: mix/test_real.jsonl (held-out real sessions; falls back to real/sessions.jsonl with a
warning when the split is empty). From each of up to `evaluate.trust.calib_items` sessions
one real counselor turn is taken with its preceding dialogue, plus degraded versions of it
(a counselor turn from an unrelated session, a generic, an off-topic and a dismissive
reply, lists in prompts/trust_degradations.yaml; and two that keep the original's length:
its own words shuffled, and other sessions' counselor words cut to its word count). The
`judge` rates every version with the score stage's own rubrics (the metric's rubric prompt, k
samples). Per metric: the within-item AUC (each original against its own degraded
versions) with a Wilson CI over items, per degradation, its repeat noise (SD over the k
samples), its length bias (Spearman with reply length) and the same AUC for "longer reply =
better". The judge is validated when, for every metric, the AUC's CI lower bound reaches
`evaluate.trust.auc_threshold`, the paired lower bound over items of its lead over the length
baseline reaches `evaluate.trust.length_margin`, the AUC on the length-keeping degradations
is above chance (CI lower bound > 0.5), and no more than `evaluate.trust.max_failure_rate` of
the ratings failed (items are counted after failures); and (where the expert labels are at hand)
it tells experts' high from low MI quality in AnnoMI (experts.py). With
`evaluate.trust.expert_turns`, the `annotator`'s technique labels are scored against AnnoMI's
therapist codes. Then the patient-simulator check (simcheck.py).

Output: calibrate/ratings.jsonl (CalibRating), calibrate/items.jsonl (the calibration set),
calibrate/experts.jsonl (ExpertRating), calibrate/expert_annotations.jsonl,
calibrate/simcheck.jsonl, calibrate/summary.json.

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
from . import experts, simcheck
from . import stats as S
from .metrics import metric as get_metric
from .dialogue import transcript


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


# Degradations that keep the original's word count: a judge (or a length heuristic) cannot
# tell them from the original by length, only by reading them.
LENGTH_KEEPING = ("shuffled", "unrelated_matched")


def _matched_words(n: int, donors: list[str]) -> str:
    """Exactly n words taken in order from other sessions' counselor turns (cycled if short)."""
    words = [w for t in donors for w in t.split()]
    if not words:
        return ""
    return " ".join(words[i % len(words)] for i in range(n))


def build_items(sessions: list[Session], n: int, context: int, kinds: list[str], lists: dict[str, list[str]],
                seed: int) -> list[CalibItem]:
    """The calibration set: n originals (one per session) and their degraded versions.

    `unrelated` takes the original of another calibration item (half the set away, so it
    always comes from a different session); `unrelated_matched` is counselor text from other
    sessions cut to exactly the original's word count; `shuffled` is the original's own
    words in a seeded random order (same words, same length, no sense); the other kinds draw
    from `lists`, seeded.
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
        original = s.messages[i].content.strip()
        replies = {"original": original}
        others = [picked[(j + k) % len(picked)] for k in range(max(1, len(picked) // 2), len(picked) + 1)]
        others = [(o, oi) for o, oi in others if o.id != s.id]
        for kind in kinds:
            if kind == "unrelated":
                if others:
                    o, oi = others[0]
                    replies[kind] = o.messages[oi].content.strip()
            elif kind == "unrelated_matched":
                donors = [m.content for o, _ in others for m in o.messages if m.role == "assistant"]
                if donors:
                    replies[kind] = _matched_words(len(original.split()), donors)
            elif kind == "shuffled":
                words = original.split()
                shuffled = words[:]
                random.Random(f"{seed}:{item}:{kind}").shuffle(shuffled)
                if len(set(words)) > 1 and shuffled == words:  # a shuffle that changed nothing is no degradation
                    shuffled = shuffled[1:] + shuffled[:1]
                if shuffled != words:
                    replies[kind] = " ".join(shuffled)
            else:
                pool = lists.get(kind) or []
                assert pool, f"trust_degradations.yaml: no '{kind}' replies listed"
                replies[kind] = random.Random(f"{seed}:{item}:{kind}").choice(pool)
        for version, reply in replies.items():
            out.append(CalibItem(id=stable_id(item, version, reply), item=item, session_id=s.id, version=version,
                                 context=ctx_msgs, reply=reply, situation=situation_of(s)))
    return out


def concordance(orig: float, degraded: float) -> float:
    """1 when the original is rated above its degraded version, 0.5 for a tie, 0 below."""
    return 1.0 if orig > degraded else 0.5 if orig == degraded else 0.0


def within_item_auc(values: dict[tuple[str, str], float], kinds: list[str] | None = None) -> tuple[float | None, dict[str, float]]:
    """(AUC, per-item concordance): each original is compared only with its own degraded
    versions (same context, same client turn), so items that are easy or hard across the board
    cannot inflate it the way a pooled AUC can. Per item: the mean concordance over its
    versions (of `kinds`, default all); AUC: the mean over items."""
    per: dict[str, list[float]] = defaultdict(list)
    for (item, ver), v in values.items():
        if ver != "original" and (item, "original") in values and (kinds is None or ver in kinds):
            per[item].append(concordance(values[(item, "original")], v))
    c = {item: float(np.mean(v)) for item, v in per.items()}
    return (float(np.mean(list(c.values()))) if c else None), c


def margin_lower_bound(d: list[float], level: float = 0.95) -> float | None:
    """Lower end of the two-sided t interval of the mean paired difference over items (None
    under 2 items): the judge's per-item concordance minus the length heuristic's, so the gate
    asks how far the judge beats length at the least, not only on this sample."""
    if len(d) < 2:
        return None
    x = np.asarray(d, dtype=float)
    half = float(stats.t.ppf(1 - (1 - level) / 2, len(x) - 1)) * float(x.std(ddof=1)) / math.sqrt(len(x))
    return float(x.mean() - half)


def analyze(ratings: list[CalibRating], metrics: list[str], threshold: float, margin: float = 0.1,
            level: float = 0.95, planned_items: int | None = None, samples: int = 1) -> dict[str, Any]:
    """Per metric: within-item AUC with a CI over items, per degradation, against the length
    baseline; repeat noise and length bias. `passes` needs all three of: the AUC's Wilson lower
    bound reaches `threshold`; the paired lower bound over items of (judge - length heuristic
    concordance) reaches `margin`; and, when degradations that keep the original's length were
    rated, their AUC's Wilson lower bound is above chance (0.5), so a judge that tells only
    short or off-topic replies from good ones, and reads nothing, cannot pass. Items are
    counted after failures (an item needs its original and one degraded version rated);
    `items_lost` says how many of `planned_items` failures took, `partial` how many replies
    kept fewer than `samples` ratings."""
    out: dict[str, Any] = {}
    for m in metrics:
        samples_of: dict[tuple[str, str], list[float]] = defaultdict(list)
        words: dict[tuple[str, str], float] = {}
        for r in ratings:
            if r.metric == m:
                samples_of[(r.item, r.version)].append(r.score)
                words[(r.item, r.version)] = float(r.words)
        mean = {k: float(np.mean(v)) for k, v in samples_of.items()}
        kinds = sorted({ver for (_, ver) in mean if ver != "original"})
        sds = [float(np.std(v, ddof=1)) for v in samples_of.values() if len(v) > 1]
        keys = list(mean)
        a, per_item = within_item_auc(mean)
        la, per_len = within_item_auc({k: words[k] for k in keys})
        n = len(per_item)
        ci = S.wilson_ci(a, n, level) if a is not None else None
        beat = None if a is None or la is None else a - la
        beat_lo = margin_lower_bound([per_item[i] - per_len[i] for i in per_item if i in per_len], level)
        keep = [k for k in kinds if k in LENGTH_KEEPING]
        ka, per_keep = within_item_auc(mean, keep) if keep else (None, {})
        kci = S.wilson_ci(ka, len(per_keep), level) if ka is not None else None
        reads = kci is not None and kci[0] > 0.5 if keep else True
        out[m] = {
            "auc": a, "auc_ci": list(ci) if ci else None, "items": n,
            "items_lost": None if planned_items is None else planned_items - n,
            "partial": sum(1 for v in samples_of.values() if len(v) < samples),
            "length_baseline_auc": la, "beats_length_by": beat, "beats_length_lower": beat_lo, "margin": margin,
            "passes": bool(ci is not None and ci[0] >= threshold and beat_lo is not None and beat_lo >= margin
                           and reads),
            "auc_by_degradation": {k: within_item_auc(mean, [k])[0] for k in kinds},
            "auc_length_keeping": ka, "auc_length_keeping_ci": list(kci) if kci else None,
            "n_original": sum(1 for (_, ver) in mean if ver == "original"),
            "n_degraded": sum(1 for (_, ver) in mean if ver != "original"),
            "mean_original": _mean([v for (_, ver), v in mean.items() if ver == "original"]),
            "mean_degraded": _mean([v for (_, ver), v in mean.items() if ver != "original"]),
            "repeat_sd": float(np.mean(sds)) if sds else None,
            "repeat_n": len(sds),
            "length_bias": S.spearman([words[k] for k in keys], [mean[k] for k in keys]),
            "reach": S.gate_reach_note(n, threshold, level),
        }
    return out


def _mean(x: list[float]) -> float | None:
    return float(np.mean(x)) if x else None


def _why(m: str, v: dict, threshold: float) -> str | None:
    """Why one metric fails the gate (None when it passes)."""
    if v["auc"] is None:
        return f"{m} AUC n/a"
    if v["passes"]:
        return None
    ci = v.get("auc_ci")
    why = []
    if ci is None or ci[0] < threshold:
        why.append(f"{m} AUC {v['auc']:.2f}" + (f", 95% CI lower bound {ci[0]:.2f} < {threshold:.2f}" if ci else ""))
    lo = v.get("beats_length_lower")
    if lo is None or lo < v.get("margin", 0):
        why.append(f"{m} beats the length baseline (AUC {_f(v.get('length_baseline_auc'))}) by "
                   f"{_f(v.get('beats_length_by'))}, 95% lower bound {_f(lo)} < margin {v.get('margin', 0):.2f}")
    kci = v.get("auc_length_keeping_ci")
    if v.get("auc_length_keeping") is not None and (kci is None or kci[0] <= 0.5):
        why.append(f"{m} AUC on the length-keeping degradations {_f(v['auc_length_keeping'])}, 95% CI lower bound "
                   f"{_f(kci[0] if kci else None)} <= 0.50 (no better than chance where length cannot tell)")
    return "; ".join(why)


def _f(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.2f}"


def verdict(metrics: dict[str, Any], threshold: float) -> tuple[bool | None, str]:
    """(validated, one-line verdict). None when there was nothing to calibrate on."""
    if not metrics or all(v["auc"] is None for v in metrics.values()):
        return None, "judge validation could not run on this run (no held-out real counselor turns were rated)"
    failing = [w for m, v in metrics.items() if (w := _why(m, v, threshold))]
    if failing:
        return False, f"judge not validated on this run: {'; '.join(failing)}"
    aucs = ", ".join(f"{m} AUC {v['auc']:.2f} (CI lower bound {v['auc_ci'][0]:.2f}, length baseline "
                     f"{_f(v['length_baseline_auc'])})" for m, v in metrics.items())
    return True, f"judge validated on this run: {aucs}; lower bounds >= {threshold:.2f}"


def with_experts(validated: bool | None, text: str, vs_experts: dict[str, Any]) -> tuple[bool | None, str]:
    """The gate after the expert check: a judge that cannot tell experts' high from low quality
    is not validated; a check that did not run changes nothing and is said."""
    if not vs_experts.get("ran"):
        return validated, f"{text}; expert check not run ({vs_experts.get('note')})"
    if vs_experts.get("passes"):
        return validated, f"{text}; {vs_experts['verdict']}"
    return False, f"judge not validated on this run: {text.split(': ', 1)[-1]}; {vs_experts['verdict']}"


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
    tpls = {m: ctx.domain.prompt(get_metric(m).rubric) for m in metrics}
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
    originals = sum(1 for it in items if it.version == "original")
    per_metric = analyze(ratings, metrics, tc.auc_threshold, tc.length_margin, planned_items=originals,
                         samples=tc.calib_samples)
    validated, text = verdict(per_metric, tc.auc_threshold)
    planned = len(items) * len(metrics) * tc.calib_samples
    # the gate's own cap, not llm.max_failure_rate (which only decides whether a stage stops and
    # may be set high for a weak model): a judge that fails most ratings has not shown it reads
    if planned and 1 - len(ratings) / planned > tc.max_failure_rate:
        validated = False
        text = (f"judge not validated on this run: {1 - len(ratings) / planned:.0%} of its ratings could not be "
                f"parsed (> evaluate.trust.max_failure_rate {tc.max_failure_rate}); " + text.split(": ", 1)[-1])
    vs_experts = await experts.check(ctx, st)
    validated, text = with_experts(validated, text, vs_experts)
    results = {
        "validated": validated, "verdict": text, "threshold": tc.auc_threshold,
        "length_margin": tc.length_margin, "max_failure_rate": tc.max_failure_rate, "length_keeping": [k for k in tc.degradations if k in LENGTH_KEEPING],
        "judge_model": ctx.llm("judge").model, "source": source, "warnings": warnings,
        "originals": sum(1 for it in items if it.version == "original"), "versions": len(items),
        "samples": tc.calib_samples, "ratings": len(ratings), "ratings_planned": planned,
        "failure_rate": round(1 - len(ratings) / planned, 4) if planned else None,
        "metrics": per_metric,
        "experts": vs_experts,
        "annotator": await experts.annotator_check(ctx, st),
        "simcheck": await simcheck.check(ctx, st),
    }
    st.write_summary(_finite(results))
    ctx.log(("[green]" if validated else "[bold yellow]") + f"calibrate: {text}[/]")
    return {"validated": validated, "ratings": len(ratings), "items": results["originals"]}


def _finite(x: Any) -> Any:
    """NaN/inf -> None, so summary.json is strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_finite(v) for v in x]
    return x


__all__ = ["CalibItem", "CalibRating", "analyze", "build_items", "run", "verdict", "within_item_auc"]
