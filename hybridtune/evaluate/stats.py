"""Statistics for the evaluation: descriptive stats with BCa bootstrap CIs, paired comparisons
(Wilcoxon signed-rank + Hodges-Lehmann estimate + matched-pairs rank-biserial effect size,
Holm-corrected as one family), judge
noise and agreement (Krippendorff's alpha), and length bias (Spearman). Pure functions over
plain lists/dicts, no I/O; scipy/krippendorff do the statistics.

Input: per-session score rows {variant, scenario_id, <metric>: float, words: int}.
Output: dicts; `paired_comparisons` returns the list of
{"a", "b", "metric", "n", "n_nonzero", "mean_diff", "estimate", "ci", "p", "p_adj", "effect_size",
"significant", "family", "unreachable", "p_floor", "at_floor"} that `hybridtune.evaluate.verdict.verdict_paragraph`
consumes; `estimate` (Hodges-Lehmann) is what a claim's direction is read from.
`paired_rows` restricts score rows to the scenarios every variant completed (the headline
table; failed and partial judgements counted), `failure_sensitivity` reruns the comparisons
with failures treated the other way, `pool_seeds` / `seed_spread` average a scenario over the
training seeds' models and give each comparison's estimate per seed; `adjust_family` says when a test could not reach significance at its n, by Holm over
the family's floors (`holm_best`), a resampled test's floor 2/(R+1) included (`resampling_floor`).

    rows = [{"variant": "hybrid", "scenario_id": "s1", "empathy": 8.0}, ...]
    describe([8, 7, 9]); paired_comparisons(rows, ["base", "hybrid"], ["empathy"])
"""
from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

from .metrics import metric as get_metric


# Below this many values a 95% interval is too unstable to mean much (BCa coverage at n=5
# is well under 0.95 on skewed data); the report says so next to such an interval.
SMALL_N = 10


def small_n_note(n: int) -> str | None:
    """A plain note when n is too small for an interval to mean much (None when it is fine)."""
    if n < 2:
        return f"n={n}: no interval"
    if n < SMALL_N:
        return f"n={n}: too few for a reliable interval (fewer than {SMALL_N})"
    return None


def bootstrap_ci(values: Sequence[float], resamples: int = 10000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float] | None:
    """BCa bootstrap CI of the mean. None when no interval exists (see `bca_ci`)."""
    x = np.asarray(values, dtype=float)
    return bca_ci((x,), np.mean, resamples, level, seed)


def bca_ci(data: tuple[np.ndarray, ...], statistic, resamples: int = 10000, level: float = 0.95,
           seed: int = 0) -> tuple[float, float] | None:
    """BCa bootstrap CI (scipy.stats.bootstrap, method="BCa") of `statistic` over the rows of
    paired arrays `data` (statistic(*arrays, axis=-1)). None when no interval exists: fewer
    than 2 rows, or no spread (every resample gives the same value, and a zero-width interval
    would claim a certainty the data cannot give)."""
    if len(data[0]) < 2 or all(np.all(d == d[0]) for d in data):
        return None
    with warnings.catch_warnings():  # degenerate resamples: scipy warns and returns NaN, handled below
        warnings.simplefilter("ignore")
        res = stats.bootstrap(data, statistic, paired=True, vectorized=True, n_resamples=resamples,
                              confidence_level=level, method="BCa", random_state=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    return (lo, hi) if math.isfinite(lo) and math.isfinite(hi) else None


def describe(values: Sequence[float], resamples: int = 10000, seed: int = 0) -> dict:
    """mean, median, min, max, std (ddof=1), n, a 95% BCa bootstrap CI of the mean (None when
    undefined) and `ci_note` when n is too small or the values have no spread."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None, "std": None,
                "ci_low": None, "ci_high": None, "ci_note": "no values"}
    ci = bootstrap_ci(x, resamples, seed=seed)
    note = small_n_note(len(x)) or (None if ci else "no spread: every value is the same, so no interval")
    return {"n": int(len(x)), "mean": float(x.mean()), "median": float(np.median(x)), "min": float(x.min()),
            "max": float(x.max()), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0,
            "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None, "ci_note": note}


def summary_table(rows: list[dict], variants: list[str], metrics: list[str], resamples: int = 10000) -> dict:
    """{variant: {metric: describe(...)}} over per-session rows (pass `paired_rows` for the headline table)."""
    return {v: {m: describe([r[m] for r in rows if r["variant"] == v and r.get(m) is not None], resamples)
                for m in metrics} for v in variants}


def _as_min(r: dict, metrics: list[str], samples: int) -> dict:
    """A row with failed judgements scored as the metric's minimum: a metric with no score, and
    the failed samples of a partly judged one (its mean over `samples`, not over those that parsed)."""
    out = dict(r)
    for m in metrics:
        floor = get_metric(m).floor
        got = (r.get("samples") or {}).get(m)
        if r.get(m) is None:
            out[m] = floor
        elif got is not None and 0 < got < samples:
            out[m] = (r[m] * got + floor * (samples - got)) / samples
    return out


def paired_rows(rows: list[dict], variants: list[str], metrics: list[str], planned: int | None = None,
                failed_as_min: bool = False, samples: int = 1) -> tuple[list[dict], dict[str, dict]]:
    """(rows of the scenarios every variant completed, per-variant completion counts).

    A scenario is complete for a variant when its session was simulated and every metric was
    judged. Only scenarios complete for every variant enter the headline table and the tests,
    so each variant's mean is over the same scenarios. With `failed_as_min`, a failed judgement
    of a simulated session scores the metric's minimum (the failure counts against the variant
    that provoked it) instead of removing the scenario, and a failed sample of k = `samples`
    (evaluate.judge_samples) counts as the minimum in its session's mean. `planned`: scenarios
    each variant was meant to complete (evaluation scenarios); default: every scenario seen in
    `rows`. The counts give failed and partial judgements (some of the k samples failed) per variant.
    """
    scen = sorted({r["scenario_id"] for r in rows})
    planned = planned if planned is not None else len(scen)
    filled = [_as_min(r, metrics, samples) if failed_as_min else r for r in rows]
    by = {(r["variant"], r["scenario_id"]): r for r in filled}
    done = {v: {s for s in scen if (v, s) in by and all(by[(v, s)].get(m) is not None for m in metrics)}
            for v in variants}
    common = set.intersection(*done.values()) if done else set()
    counts = {}
    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        failed = sum(1 for r in mine for m in metrics if r.get(m) is None)
        partial = sum(1 for r in mine for m in metrics if 0 < ((r.get("samples") or {}).get(m) or samples) < samples)
        counts[v] = {"planned": planned, "simulated": len(mine), "completed": len(done[v]), "failed_judgements": failed,
                     "partial_judgements": partial,
                     "completion_rate": len(done[v]) / planned if planned else None, "in_table": len(common)}
    return [r for r in filled if r["variant"] in done and r["scenario_id"] in common], counts


def failure_sensitivity(rows: list[dict], variants: list[str], metrics: list[str], planned: int | None,
                        failed_as_min: bool, samples: int = 1, alpha: float = 0.05) -> dict:
    """The judge comparisons under the other treatment of failed judgements (dropped <-> scored
    as the minimum), beside the one the report uses: which change direction (Hodges-Lehmann
    sign) or side of alpha / family (raw p), and a one-line summary. A failure the variant
    provoked removes evidence against it when dropped; the line says whether that matters here."""
    used, _ = paired_rows(rows, variants, metrics, planned, failed_as_min, samples)
    other, counts = paired_rows(rows, variants, metrics, planned, not failed_as_min, samples)
    a = {(c["a"], c["b"], c["metric"]): c for c in paired_comparisons(used, variants, metrics, alpha)}
    b = {(c["a"], c["b"], c["metric"]): c for c in paired_comparisons(other, variants, metrics, alpha)}
    failures = sum(c["failed_judgements"] + c["partial_judgements"] for c in counts.values())
    m = max(len(a), 1)
    changed = []
    for key, x in a.items():
        y = b.get(key)
        if y is None:
            continue
        flips = np.sign(x["estimate"] or 0) != np.sign(y["estimate"] or 0)
        sides = (x["p"] is not None and y["p"] is not None and (x["p"] * m < alpha) != (y["p"] * m < alpha))
        if flips or sides:
            changed.append(f"{key[0]} vs {key[1]} {key[2]}: median difference {x['estimate']:+.2f} -> {y['estimate']:+.2f}, "
                           f"p {x['p']:.3g} -> {y['p']:.3g}")
    how = "scored as the minimum" if not failed_as_min else "dropped"
    if not failures:
        line = "No judgement failed, so dropping failures and scoring them as the minimum give the same tests."
    elif not changed:
        line = (f"Sensitivity: with the {failures} failed or partial judgements {how} instead, no comparison changes "
                "direction or side of its level.")
    else:
        line = (f"Sensitivity: with the {failures} failed or partial judgements {how} instead, {len(changed)} "
                f"comparison(s) change: {'; '.join(changed)}. Their conclusion depends on how failures count.")
    return {"other": how, "failures": failures, "changed": changed, "line": line}


def pool_seeds(rows: list[dict], metrics: list[str], failed_as_min: bool = False, samples: int = 1) -> list[dict]:
    """Per-conversation rows of every seed's model (train.seeds: variant~s<seed>) as one row per
    declared variant and scenario, each metric the mean over seeds: the scenario stays the unit,
    training noise is averaged in. A metric a seed's judgement failed on is None (or, with
    failed_as_min, that seed's minimum enters the mean). Rows without replicates pass through."""
    from ..variants import variant_of

    if not any(variant_of(r["variant"]) != r["variant"] for r in rows):
        return rows
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        r = _as_min(r, metrics, samples) if failed_as_min else r
        groups.setdefault((variant_of(r["variant"]), r["scenario_id"]), []).append(r)
    out = []
    for (v, scen), rs in groups.items():
        row = {**rs[0], "variant": v, "scenario_id": scen, "seeds": len(rs), "models": [r["variant"] for r in rs]}
        for m in metrics:
            vals = [r.get(m) for r in rs]
            row[m] = float(np.mean(vals)) if all(x is not None for x in vals) else None
        row.pop("samples", None)  # partial samples are counted on the models' own rows
        out.append(row)
    return out


def seed_spread(rows: list[dict], variants: list[str], metrics: list[str], seeds: list[int],
                alpha: float = 0.05) -> dict[tuple[str, str, str], list[float]]:
    """(a, b, metric) -> the Hodges-Lehmann estimate of each seed's models alone (an untrained
    variant, which has one model, enters every seed): the spread between seeds, beside the
    pooled test."""
    from ..variants import seed_index, variant_of

    replicated = {variant_of(r["variant"]) for r in rows if variant_of(r["variant"]) != r["variant"]}
    single = [r for r in rows if r["variant"] not in replicated and variant_of(r["variant"]) == r["variant"]]
    out: dict[tuple[str, str, str], list[float]] = {}
    for i in range(len(seeds)):
        mine = [r for r in rows if seed_index(r["variant"], seeds) == i and r["variant"] not in
                {x["variant"] for x in single}] + single
        mine = [{**r, "variant": variant_of(r["variant"])} for r in mine]
        for c in paired_comparisons(mine, variants, metrics, alpha):
            out.setdefault((c["a"], c["b"], c["metric"]), []).append(c["estimate"])
    return out


def rank_biserial(x: Sequence[float], y: Sequence[float]) -> float:
    """Matched-pairs rank-biserial correlation (Kerby 2014): (W+ - W-) / (W+ + W-) over the
    ranks of the non-zero |x - y| (zeros dropped, as in Wilcoxon's original test). In [-1, 1];
    positive when x tends to be larger."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    d = d[d != 0]
    if len(d) == 0:
        return 0.0
    r = stats.rankdata(np.abs(d))
    w_plus, w_minus = r[d > 0].sum(), r[d < 0].sum()
    return float((w_plus - w_minus) / (w_plus + w_minus))


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm-Bonferroni step-down adjusted p-values (scipy has no Holm; this is its definition:
    p_(i) * (m - i + 1), made monotone, capped at 1). NaN p-values pass through."""
    p = np.asarray(pvalues, dtype=float)
    ok = ~np.isnan(p)
    out = np.full(len(p), np.nan)
    idx = np.where(ok)[0]
    m = len(idx)
    order = idx[np.argsort(p[idx], kind="stable")]
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, p[j] * (m - i)))
        out[j] = running
    return [float(v) for v in out]


def wilcoxon_p(x: Sequence[float], y: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when every pair ties (no evidence of a difference)."""
    d = np.asarray(x, dtype=float) - np.asarray(y, dtype=float)
    if len(d) == 0:
        return math.nan
    if np.all(d == 0):
        return 1.0
    return float(stats.wilcoxon(x, y, zero_method="wilcox", alternative="two-sided").pvalue)


def p_floor(n: int) -> float:
    """The smallest two-sided p an exact paired test (signed-rank, or sign-flip permutation) can
    give with n non-zero pairs: every difference on one side, 2 of the 2**n sign patterns."""
    return 1.0 if n <= 0 else min(1.0, 2.0 / 2.0**n)


def resampling_floor(n_nonzero: int, resamples: int | None, exact: bool) -> float:
    """The smallest two-sided p of a permutation test: 2 / 2**n when it enumerates every sign
    pattern (`exact`), else also at least 2 / (R + 1) (scipy's Monte Carlo p counts the observed
    statistic once among R + 1, on each side)."""
    floor = p_floor(n_nonzero)
    return floor if exact or not resamples else max(floor, min(1.0, 2.0 / (resamples + 1)))


def min_pairs(family: int, alpha: float) -> int:
    """Fewest non-zero pairs at which a test can reach alpha whatever the other tests of its Holm
    family of `family` give (its exact floor times the family below alpha)."""
    n = 1
    while family * p_floor(n) >= alpha:
        n += 1
    return n


def holm_best(floors: Sequence[float]) -> list[float]:
    """Per test, the smallest Holm-adjusted p it can get when no test can go below its floor.

    Holm adjusts the i-th smallest p to max_{j<=i} (m - j + 1) p_(j). A test with k tests ranked
    before it is best off when those k are the ones with the smallest floors, each at its
    floor; the best over k is the bound. Any data give an adjusted p at least this, so a test
    whose bound reaches alpha can never be significant, and one reported significant never
    gets a reach note (the Bonferroni bound m * floor said both of one test)."""
    m = len(floors)
    out = []
    for i, f in enumerate(floors):
        g = sorted(x for j, x in enumerate(floors) if j != i)
        best, ahead = min(1.0, m * f), 0.0
        for k in range(1, m):
            ahead = max(ahead, (m - k + 1) * g[k - 1])  # the k-th test ranked ahead of this one
            best = min(best, max(ahead, (m - k) * max(f, g[k - 1])))
        out.append(min(1.0, best))
    return out


def reach_note(n: int, family: int, alpha: float, floor: float | None = None, best: float | None = None,
               resamples: int | None = None) -> str | None:
    """Why a paired test could never have been significant at its n (None when it could).
    `floor`: its smallest possible p (default: the exact floor at n); `best`: its smallest
    Holm-adjusted p given the family's floors (`holm_best`; default: family x floor)."""
    floor = p_floor(n) if floor is None else floor
    best = min(1.0, family * floor) if best is None else best
    if best < alpha:
        return None
    resampled = bool(resamples) and floor > p_floor(n) * (1 + 1e-9)
    what = (f"the smallest p at {resamples} resamples is {floor:.3g}" if resampled
            else f"the smallest exact two-sided p is {floor:.3g}")
    fix = (f"it needs at least {min_pairs(family, alpha)} non-zero pairs" if not resampled else
           f"it needs evaluate.bootstrap_resamples >= {math.ceil(floor * (resamples + 1) * family / alpha)}")
    return (f"could not reach significance at n={n} non-zero pairs: {what}; after Holm over {family} tests at "
            f"best {best:.3g} >= alpha {alpha}; {fix}")


def p_text(p: float | None, at_floor: bool = False, nd: int = 3) -> str:
    """A p-value for a reader: 'n/a', '<0.001', or '<= x' when the test sat at its smallest
    possible p (the data could support a smaller one; the test could not show it)."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "n/a"
    if at_floor:
        return f"≤ {p:.{nd}g}" if p < 10 ** -nd else f"≤ {p:.{nd}f}"
    return f"<{10 ** -nd:g}" if p < 10 ** -nd else f"{p:.{nd}f}"


def _signed_rank_cdf(n: int) -> np.ndarray:
    """P(T+ <= t) for t = 0..n(n+1)/2 under the null (no ties): the exact signed-rank distribution."""
    dist = np.zeros(n * (n + 1) // 2 + 1)
    dist[0] = 1.0
    for k in range(1, n + 1):
        dist[k:] = (dist[k:] + dist[:-k].copy()) / 2  # rank k positive or negative, each with probability 1/2
        dist[:k] /= 2
    return np.cumsum(dist)


def hodges_lehmann(d: Sequence[float], level: float = 0.95) -> dict:
    """Hodges-Lehmann estimate (median of the Walsh averages) of the non-zero paired
    differences, with its distribution-free CI from the exact signed-rank distribution.

    It is the estimate that belongs to the Wilcoxon signed-rank test (zeros dropped, as in
    `wilcoxon_p`): its sign is the side of the test statistic W+ - W-, so a direction read
    from it cannot contradict the test. The CI is None when n is too small for the level
    (below 6 non-zero pairs no 95% interval exists).
    """
    x = np.asarray(d, dtype=float)
    x = x[x != 0]
    n = len(x)
    if n == 0:
        return {"estimate": 0.0 if len(d) else math.nan, "ci": None, "n_nonzero": 0}
    i, j = np.triu_indices(n)
    walsh = np.sort((x[i] + x[j]) / 2)
    est = float(np.median(walsh))
    if n > 300:  # normal approximation of the signed-rank critical value (the exact table is large)
        z = stats.norm.ppf(1 - (1 - level) / 2)
        c = int(math.floor(n * (n + 1) / 4 - z * math.sqrt(n * (n + 1) * (2 * n + 1) / 24)))
    else:
        cdf = _signed_rank_cdf(n)
        ok = np.nonzero(cdf <= (1 - level) / 2)[0]  # P(T+ <= c - 1) <= alpha/2
        c = int(ok[-1]) + 1 if len(ok) else 0
    ci = [float(walsh[c - 1]), float(walsh[len(walsh) - c])] if c >= 1 else None
    return {"estimate": est, "ci": ci, "n_nonzero": n}


def direction(estimate: float | None, a: str, b: str) -> str | None:
    """The variant the estimate favours (higher is better); None for 0 or a missing estimate."""
    if estimate is None or math.isnan(estimate) or estimate == 0:
        return None
    return a if estimate > 0 else b


def pairs(variants: list[str]) -> list[tuple[str, str]]:
    """Every pair once, later variant first (base, real, hybrid -> hybrid-real, hybrid-base, real-base)."""
    rev = list(reversed(variants))
    return list(itertools.combinations(rev, 2))


def paired_comparisons(rows: list[dict], variants: list[str], metrics: list[str], alpha: float = 0.05) -> list[dict]:
    """Wilcoxon signed-rank over scenarios both variants completed, Holm-corrected across all
    comparisons (pairs x metrics). `estimate` = Hodges-Lehmann median difference (a - b) with
    its `ci`, the statistic the direction of a claim is read from; mean_diff = mean(a - b),
    shown but never used for a direction (with skewed differences it can point the other way)."""
    by = {(r["variant"], r["scenario_id"]): r for r in rows}
    out = []
    for metric in metrics:
        for a, b in pairs(variants):
            common = sorted(s for (v, s) in by if v == a and (b, s) in by
                            and by[(a, s)].get(metric) is not None and by[(b, s)].get(metric) is not None)
            x = [float(by[(a, s)][metric]) for s in common]
            y = [float(by[(b, s)][metric]) for s in common]
            hl = hodges_lehmann(np.subtract(x, y)) if common else {"estimate": math.nan, "ci": None, "n_nonzero": 0}
            out.append({"a": a, "b": b, "metric": metric, "n": len(common), "n_nonzero": hl["n_nonzero"],
                        "mean_diff": float(np.mean(np.subtract(x, y))) if common else math.nan,
                        "estimate": hl["estimate"], "ci": hl["ci"], "estimator": "Hodges-Lehmann",
                        "p": wilcoxon_p(x, y), "effect_size": rank_biserial(x, y) if common else math.nan})
    return adjust_family(out, alpha)


def adjust_family(comparisons: list[dict], alpha: float) -> list[dict]:
    """Holm over every comparison given (one family), in place: p_adj, significant, family,
    `p_floor` (the smallest p the test could give: `p_min` when its producer set one, e.g. a
    resampling floor, else the exact floor at its n), `at_floor` (p sits at that floor, so
    it reads p <= floor) and `unreachable` (why it could not have been significant, by Holm
    over the family's floors; None when it could)."""
    live = [c for c in comparisons if c.get("p") is not None and not math.isnan(c["p"])]
    m, live_ids = len(live), {id(c) for c in live}
    for c in comparisons:
        n = int(c.get("n_nonzero", c.get("n", 0)) or 0)
        floor = c.get("p_min") if c.get("p_min") is not None else p_floor(n)
        if id(c) in live_ids:
            floor = min(floor, c["p"])  # an observed p proves the floor is no higher
        c["p_floor"] = floor
        c["at_floor"] = bool(id(c) in live_ids and c["p"] <= floor * (1 + 1e-9))
    best = dict(zip(map(id, live), holm_best([c["p_floor"] for c in live]), strict=True))
    for c, padj in zip(comparisons, holm([math.nan if c.get("p") is None else c["p"] for c in comparisons]),
                       strict=True):
        c["p_adj"] = None if math.isnan(padj) else padj
        c["significant"] = bool(c["p_adj"] is not None and c["p_adj"] < alpha)
        c["family"] = m
        n = int(c.get("n_nonzero", c.get("n", 0)) or 0)
        c["unreachable"] = reach_note(n, max(m, 1), alpha, c["p_floor"], best.get(id(c)), c.get("resamples"))
    return comparisons


def wilson_ci(p: float, n: int, level: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion-like mean p of n independent units in [0, 1].
    Used for the judge's within-item AUC with items as the units: a [0, 1] variable with mean
    p has variance at most p(1 - p), so the interval is conservative, and unlike a bootstrap
    it stays honest when every item agrees (5 of 5 perfect items: lower bound 0.57)."""
    if n < 1:
        return None
    z = float(stats.norm.ppf(1 - (1 - level) / 2))
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def min_items(threshold: float, level: float = 0.95) -> int:
    """Fewest items at which even a perfect judge (AUC 1) has a CI lower bound >= threshold."""
    z2 = float(stats.norm.ppf(1 - (1 - level) / 2)) ** 2
    return max(1, math.ceil(threshold * z2 / (1 - threshold))) if threshold < 1 else 10**9


def gate_reach_note(n: int, threshold: float, level: float = 0.95) -> str | None:
    """Why the judge gate could not be passed at n items, whatever the judge (None when it could)."""
    ci = wilson_ci(1.0, n, level)
    if ci is not None and ci[0] >= threshold:
        return None
    return (f"cannot be validated with {n} items: even a perfect judge's CI lower bound is "
            f"{(ci or (0.0, 0.0))[0]:.2f} < {threshold:.2f}; it needs at least {min_items(threshold, level)} items")


def alpha_interval(ratings: list[list[float | None]]) -> float | None:
    """Krippendorff's alpha (interval) of raters x units ratings (None = missing)."""
    import krippendorff

    data = np.array([[math.nan if v is None else float(v) for v in row] for row in ratings], dtype=float)
    if data.shape[0] < 2 or data.shape[1] < 2:
        return None
    pairable = np.sum(~np.isnan(data), axis=0) >= 2
    vals = data[:, pairable]
    if vals.size == 0 or np.nanstd(vals) == 0:
        return None  # alpha is undefined without variation
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="interval"))


def spearman(x: Sequence[float], y: Sequence[float]) -> dict:
    """Spearman rho and p (None when either side is constant or n < 3)."""
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return {"n": len(x), "rho": None, "p": None}
    r = stats.spearmanr(x, y)
    return {"n": len(x), "rho": float(r.statistic), "p": float(r.pvalue)}
