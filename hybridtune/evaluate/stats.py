"""Statistics for the evaluation: descriptive stats with bootstrap CIs, paired comparisons
(Wilcoxon signed-rank + matched-pairs rank-biserial effect size, Holm-corrected), judge
noise and agreement (Krippendorff's alpha), and length bias (Spearman). Pure functions over
plain lists/dicts, no I/O; scipy/krippendorff do the statistics.

Input: per-session score rows {variant, scenario_id, <metric>: float, words: int}.
Output: dicts; `paired_comparisons` returns the list of
{"a", "b", "metric", "n", "mean_diff", "p", "p_adj", "effect_size", "significant"}
that `hybridtune.evaluate.verdict.verdict_paragraph` consumes.

    rows = [{"variant": "hybrid", "scenario_id": "s1", "empathy": 8.0}, ...]
    describe([8, 7, 9]); paired_comparisons(rows, ["base", "hybrid"], ["empathy"])
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats


def bootstrap_ci(values: Sequence[float], resamples: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (scipy.stats.bootstrap); a point for n<2 or constant data."""
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return (math.nan, math.nan)
    if len(x) < 2 or np.all(x == x[0]):
        return (float(x.mean()), float(x.mean()))
    res = stats.bootstrap((x,), np.mean, n_resamples=resamples, confidence_level=level, method="percentile",
                          random_state=np.random.default_rng(seed))
    return (float(res.confidence_interval.low), float(res.confidence_interval.high))


def describe(values: Sequence[float], resamples: int = 10000, seed: int = 0) -> dict:
    """mean, median, min, max, std (ddof=1), n and a 95% bootstrap CI of the mean."""
    x = np.asarray([v for v in values if v is not None and not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return {"n": 0, "mean": None, "median": None, "min": None, "max": None, "std": None,
                "ci_low": None, "ci_high": None}
    lo, hi = bootstrap_ci(x, resamples, seed=seed)
    return {"n": int(len(x)), "mean": float(x.mean()), "median": float(np.median(x)), "min": float(x.min()),
            "max": float(x.max()), "std": float(x.std(ddof=1)) if len(x) > 1 else 0.0, "ci_low": lo, "ci_high": hi}


def summary_table(rows: list[dict], variants: list[str], metrics: list[str], resamples: int = 10000) -> dict:
    """{variant: {metric: describe(...)}} over per-session rows."""
    return {v: {m: describe([r[m] for r in rows if r["variant"] == v and r.get(m) is not None], resamples)
                for m in metrics} for v in variants}


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


def pairs(variants: list[str]) -> list[tuple[str, str]]:
    """Every pair once, later variant first (base, real, hybrid -> hybrid-real, hybrid-base, real-base)."""
    rev = list(reversed(variants))
    return list(itertools.combinations(rev, 2))


def paired_comparisons(rows: list[dict], variants: list[str], metrics: list[str], alpha: float = 0.05) -> list[dict]:
    """Wilcoxon signed-rank over scenarios both variants completed, Holm-corrected across all
    comparisons (pairs x metrics). mean_diff = mean(a - b)."""
    by = {(r["variant"], r["scenario_id"]): r for r in rows}
    out = []
    for metric in metrics:
        for a, b in pairs(variants):
            common = sorted(s for (v, s) in by if v == a and (b, s) in by
                            and by[(a, s)].get(metric) is not None and by[(b, s)].get(metric) is not None)
            x = [float(by[(a, s)][metric]) for s in common]
            y = [float(by[(b, s)][metric]) for s in common]
            out.append({"a": a, "b": b, "metric": metric, "n": len(common),
                        "mean_diff": float(np.mean(np.subtract(x, y))) if common else math.nan,
                        "p": wilcoxon_p(x, y), "effect_size": rank_biserial(x, y) if common else math.nan})
    for c, padj in zip(out, holm([c["p"] for c in out]), strict=True):
        c["p_adj"] = padj
        c["significant"] = bool(not math.isnan(padj) and padj < alpha)
    return out


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
