"""Judged against people: human preferences (from `hybridtune rate`), their agreement with each
other and with the pairwise judge, and the report sections that show these beside the judge's
check against experts.

- `bradley_terry(results)`: strengths (log scale, mean 0) of the variants from pairwise results
  (a tie counts half a win each way), maximum likelihood by Newton's method; `prior` adds that many virtual
  ties between every pair of compared variants so a variant that never won keeps a finite strength.
- `bt_with_ci`: the same with percentile bootstrap CIs, resampling rated units.
- `rater_agreement`: Krippendorff's alpha (ordinal: prefers a / tie / prefers b) over tasks rated
  by two or more raters, and their raw agreement.
- `judge_human`: per task, the human outcome (mean over raters) against the judge's pairwise
  outcome (both orders): share of tasks with the same direction and Kendall's tau.
- `report_sections(ctx)`: the pairwise and human-rating sections (hooked in report.py);
  `experts_section(cal)`: the judge against experts, shown beside the judge validation (trust.py).

    strengths = bradley_terry([("hybrid", "base", 1.0), ("base", "real", 0.5), ...])
"""
from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from scipy.stats import kendalltau

from ..context import Context
from .trust import ci as fmt_ci
from .trust import f, section

Result = tuple[str, str, float]  # (a, b, a's result: 1 win, 0.5 tie, 0 loss)


def bradley_terry(results: list[Result], prior: float = 0.0, iters: int = 200, tol: float = 1e-10) -> dict[str, float]:
    """Maximum-likelihood Bradley-Terry log-strengths (mean 0): P(a beats b) = 1 / (1 + e^(s_b - s_a)).

    Newton's method on the (concave) log-likelihood with step halving; without a prior, a variant
    that never lost (or never won) has no finite maximum and ends far out after `iters` steps."""
    items = sorted({x for a, b, _ in results for x in (a, b)})
    if len(items) < 2:
        return {i: 0.0 for i in items}
    ix = {v: k for k, v in enumerate(items)}
    n = len(items)
    wins = np.zeros((n, n))  # wins[i, j]: i's (possibly half) wins over j
    for a, b, s in results:
        wins[ix[a], ix[b]] += s
        wins[ix[b], ix[a]] += 1 - s
    if prior:
        wins = wins + prior / 2 * ((wins + wins.T) > 0)
    games = wins + wins.T

    def loglik(t: np.ndarray) -> float:
        d = t[:, None] - t[None, :]
        return float(-(wins * np.logaddexp(0, -d)).sum())

    t = np.zeros(n)
    ll = loglik(t)
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(t[:, None] - t[None, :])))
        grad = (wins - games * p).sum(1)
        w = games * p * (1 - p)
        hess = np.diag(w.sum(1)) - w  # minus the Hessian: a graph Laplacian, singular along the mean
        step = np.linalg.lstsq(hess + 1.0 / n, grad, rcond=None)[0]  # + a constant matrix pins the mean
        scale = 1.0
        while scale > 1e-6 and (new_ll := loglik(t + scale * step)) < ll - 1e-12:
            scale /= 2
        t, done = t + scale * step, abs(new_ll - ll) < tol
        t -= t.mean()
        ll = new_ll
        if done:
            break
    return {i: float(t[k]) for i, k in ix.items()}


def bt_with_ci(by_unit: dict[str, list[Result]], prior: float = 0.5, resamples: int = 1000, level: float = 0.95,
               seed: int = 0) -> dict[str, dict[str, Any]]:
    """Strengths with percentile bootstrap CIs over units (all of a unit's results move together)."""
    keys = sorted(by_unit)
    point = bradley_terry([r for k in keys for r in by_unit[k]], prior)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = defaultdict(list)
    for _ in range(resamples if len(keys) > 1 else 0):
        pick = rng.integers(0, len(keys), len(keys))
        for v, s in bradley_terry([r for i in pick for r in by_unit[keys[i]]], prior).items():
            draws[v].append(s)
    lo = (1 - level) / 2
    return {v: {"strength": s, "ci": [float(np.quantile(draws[v], lo)), float(np.quantile(draws[v], 1 - lo))]
                if len(draws[v]) > 1 else None, "units": sum(any(v in r[:2] for r in by_unit[k]) for k in keys)}
            for v, s in point.items()}


def _direction(x: float) -> int:
    return 0 if abs(x - 0.5) < 1e-9 else (1 if x > 0.5 else -1)


def rater_agreement(by_task: dict[tuple, dict[str, float]]) -> dict[str, Any]:
    """by_task: task -> {rater: a's result}. Alpha and raw agreement over tasks with 2+ raters."""
    import krippendorff

    raters = sorted({r for v in by_task.values() for r in v})
    multi = {t: v for t, v in by_task.items() if len(v) >= 2}
    out: dict[str, Any] = {"raters": len(raters), "tasks_multi": len(multi), "alpha": None, "agreement": None}
    if len(raters) < 2 or not multi:
        return out
    data = np.array([[_direction(multi[t][r]) if r in multi[t] else np.nan for t in multi] for r in raters], float)
    pairs = [(_direction(v[r1]), _direction(v[r2])) for v in multi.values() for i, r1 in enumerate(sorted(v))
             for r2 in sorted(v)[i + 1:]]
    out["agreement"] = float(np.mean([x == y for x, y in pairs]))
    vals = data[~np.isnan(data)]
    if len(set(vals.tolist())) > 1:
        out["alpha"] = float(krippendorff.alpha(reliability_data=data, level_of_measurement="ordinal"))
    return out


def judge_human(human: dict[tuple, float], judge: dict[tuple, float]) -> dict[str, Any]:
    """Tasks both rated: share with the same direction (a better / tie / b better) and Kendall's tau-b."""
    common = sorted(set(human) & set(judge))
    out: dict[str, Any] = {"tasks": len(common), "agree": None, "kendall_tau": None, "p": None}
    if not common:
        return out
    h, j = [human[t] for t in common], [judge[t] for t in common]
    out["agree"] = float(np.mean([_direction(x) == _direction(y) for x, y in zip(h, j)]))
    if len(common) >= 2 and len(set(h)) > 1 and len(set(j)) > 1:
        tau = kendalltau(h, j)
        out["kendall_tau"], out["p"] = float(tau.statistic), float(tau.pvalue)
    return out


def human_scores(ratings: list) -> dict[str, dict[str, dict[str, float | int]]]:
    """The raters' optional 1-10 scores: variant -> metric -> {"mean", "n"} (only where given)."""
    acc: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for r in ratings:
        for v, sc in r.scores.items():
            for m, x in sc.model_dump().items():
                if x is not None:
                    acc[v][m].append(x)
    return {v: {m: {"mean": float(np.mean(x)), "n": len(x)} for m, x in ms.items()} for v, ms in acc.items()}


def human_summary(ctx: Context) -> dict[str, Any] | None:
    """Everything the report shows about human ratings of this run; None when there are none."""
    from .pairwise import PairJudgment, pair_outcomes
    from .rate.ratings import latest, load_ratings

    ratings = latest(load_ratings(ctx.store.root))
    if not ratings:
        return None
    by_task: dict[tuple, dict[str, float]] = defaultdict(dict)
    by_unit: dict[str, list[Result]] = defaultdict(list)
    for r in ratings:
        res = r.result_a()
        by_task[(r.unit, r.a, r.b)][r.rater] = res
        by_unit[r.unit].append((r.a, r.b, res))
    human = {t: float(np.mean(list(v.values()))) for t, v in by_task.items()}
    js = list(ctx.store.stage("score").read("pairwise.jsonl", PairJudgment))
    judge = {k: v["score"] for k, v in pair_outcomes(js).items()}
    return {"ratings": len(ratings), "tasks": len(by_task), "raters": sorted({r.rater for r in ratings}),
            "scores": human_scores(ratings),
            "strengths": bt_with_ci(by_unit, resamples=min(ctx.cfg.evaluate.bootstrap_resamples, 1000),
                                    seed=ctx.cfg.seed),
            "rater_agreement": rater_agreement(by_task), "judge_human": judge_human(human, judge),
            "judge_pairwise": bool(js)}


# -- report -----------------------------------------------------------------------------


def experts_section(cal: dict | None) -> dict:
    title = "Judge against experts (AnnoMI MI quality)"
    ex = (cal or {}).get("experts")
    ann = annotator_blocks((cal or {}).get("annotator"))
    if not ex or not ex.get("ran"):
        note = (ex or {}).get("note") or "the calibrate stage did not run"
        return section(title, [("strong", f"Not checked on this run: {note}."),
                               ("p", "Whether this judge can tell experts' high from low counseling quality "
                                     "is unknown."), *ann])
    blocks: list[tuple[str, Any]] = [("strong", ex["verdict"][:1].upper() + ex["verdict"][1:]), ("p", (
        f"{ex['pairs']} low-quality AnnoMI transcripts (expert MI-quality labels), each matched with a high-quality "
        f"one ({ex['same_topic_pairs']} of the same topic); the judge rated the middle {ex['window']} messages of "
        f"each with this run's rubrics ({ex['ratings']}/{ex['ratings_planned']} ratings parsed). AUC = chance a "
        "high-quality transcript is rated above a low-quality one (within topic where pairs share one), 95% "
        "bootstrap CI over the low-quality transcripts; to pass, its lower bound must be above "
        f"{ex['threshold']}. This check sits beside the degraded-reply check above: both must pass."))]
    rows = [[m, fmt_ci(r.get("auc"), r.get("auc_ci"), 2), r.get("auc_kind"),
             fmt_ci(r.get("auc_pooled"), r.get("auc_pooled_ci"), 2),
             fmt_ci(r.get("matched_share"), r.get("matched_ci"), 2), f(r.get("mean_high"), 2), f(r.get("mean_low"), 2),
             f(r.get("passes"))] for m, r in ex["metrics"].items()]
    blocks.append(("table", (["metric", "AUC [95% CI]", "AUC over", "pooled AUC", "matched pairs ranked right",
                              "mean high", "mean low", "passes"], rows)))
    return section(title, [*blocks, *ann])


def annotator_blocks(ann: dict | None) -> list[tuple[str, Any]]:
    """The annotator against AnnoMI's therapist codes, as report blocks (a line when it did not run)."""
    if not ann or not ann.get("ran"):
        return [("p", f"Annotator against experts: not run ({(ann or {}).get('note') or 'no calibrate summary'}).")]
    a, b = ann.get("annotator") or {}, ann.get("baseline") or {}
    blocks: list[tuple[str, Any]] = [("p", (
        f"Annotator against experts: {ann.get('annotator_model')} labelled {ann.get('labelled')} of "
        f"{ann.get('turns')} AnnoMI therapist turns; its technique ids mapped to AnnoMI's codes (expert_codes.yaml). "
        f"Cohen's kappa {fmt_ci(a.get('kappa'), ann.get('kappa_ci'), 2)}, accuracy {f(a.get('accuracy'), 2)}, "
        f"macro F1 {f(a.get('macro_f1'), 2)}; always answering the commonest code ({ann.get('majority_class')}): "
        f"kappa {f(b.get('kappa'), 2)}, accuracy {f(b.get('accuracy'), 2)}, macro F1 {f(b.get('macro_f1'), 2)}."))]
    rows = [[c, f(v.get("support")), f(v.get("kappa"), 2), f(v.get("f1"), 2),
             f(((b.get("per_class") or {}).get(c) or {}).get("f1"), 2)] for c, v in (a.get("per_class") or {}).items()]
    if rows:
        blocks.append(("table", (["code", "expert turns", "kappa", "F1", "F1 of the commonest-code baseline"], rows)))
    return blocks


def pairwise_section(score_summary: dict | None) -> dict:
    title = "Pairwise judging (win rates)"
    pw = (score_summary or {}).get("pairwise")
    if not pw or not pw.get("ran"):
        return section(title, [("p", f"Not run: {(pw or {}).get('note') or 'the score stage did not run'}.")])
    blocks: list[tuple[str, Any]] = [("p", (
        f"The judge compared two variants' replies to the same client turn ({pw['units']} turns, prompt "
        f"{pw.get('prompt')}), once with each reply first; a unit's result is the mean over both orders (a tie "
        f"counts half), so a preference for a position cancels out. Reply shown first won "
        f"{f(pw.get('first_position_wins'), 2)} of decided judgments; {pw.get('failed', 0)} of {pw.get('planned')} "
        "judgments failed. Brackets: 95% bootstrap CIs over turns."))]
    rows = [[p["a"], p["b"], f(p["units"]), fmt_ci(p["win_rate_a"], p.get("ci"), 2), f(p.get("order_agreement"), 2)]
            for p in pw.get("pairs") or []]
    blocks.append(("table", (["a", "b", "turns", "win rate of a [95% CI]", "orders agree"], rows)))
    return section(title, blocks)


def humans_section(h: dict | None) -> dict:
    title = "Human ratings (blind side-by-side)"
    if h is None:
        return section(title, [("strong", "No human ratings on this run: judge-human agreement is unknown."),
                               ("p", "Collect them with `hybridtune rate RUN_DIR` (or rate-export / rate-import for "
                                     "remote raters), then rerun the report.")])
    ra, jh = h["rater_agreement"], h["judge_human"]
    blocks: list[tuple[str, Any]] = [("p", (
        f"{h['ratings']} ratings of {h['tasks']} reply pairs by {len(h['raters'])} rater(s), shown blind and in "
        "random order. Bradley-Terry strengths (log scale, mean 0; a tie counts half a win each way, 0.5 virtual "
        "tie per compared pair), 95% bootstrap CIs over rated turns."))]
    blocks.append(("table", (["variant", "strength [95% CI]", "turns rated"], [
        [v, fmt_ci(r["strength"], r["ci"], 2), f(r["units"])]
        for v, r in sorted(h["strengths"].items(), key=lambda kv: -kv[1]["strength"])])))
    if h.get("scores"):
        ms = sorted({m for v in h["scores"].values() for m in v})
        blocks.append(("p", "Optional 1-10 scores the raters gave (mean, number of scores in brackets):"))
        blocks.append(("table", (["variant", *ms], [
            [v, *(f"{x['mean']:.2f} ({x['n']})" if (x := h["scores"][v].get(m)) else "n/a" for m in ms)]
            for v in sorted(h["scores"])])))
    if ra["tasks_multi"]:
        blocks.append(("p", f"Agreement between raters over {ra['tasks_multi']} pairs rated by two or more: "
                            f"Krippendorff's alpha (ordinal) {f(ra['alpha'], 2)}, raw agreement "
                            f"{f(ra['agreement'], 2)}."))
    else:
        blocks.append(("p", "Agreement between raters: not measured (no pair was rated by two or more raters)."))
    if jh["tasks"]:
        blocks.append(("p", f"Judge against people over {jh['tasks']} pairs both rated: same preference (a, tie or b) "
                            f"in {f(jh['agree'], 2)}; Kendall's tau {f(jh['kendall_tau'], 2)} (p {f(jh['p'], 3)})."))
    else:
        blocks.append(("p", "Judge against people: not measured (no pair rated by both the pairwise judge and a person"
                            + ("" if h["judge_pairwise"] else "; pairwise judging did not run") + ")."))
    return section(title, blocks)


def report_sections(ctx: Context) -> list[dict]:
    """The report's sections on the judge's pairwise preferences and people's (the check against
    experts sits beside the judge validation: report.s_trust passes it to trust.report_sections)."""
    return [pairwise_section(ctx.store.stage("score").read_summary()), humans_section(human_summary(ctx))]


__all__ = ["bradley_terry", "bt_with_ci", "judge_human", "rater_agreement", "report_sections"]
