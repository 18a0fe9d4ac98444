"""Dose-response of the real share: every metric, with its 95% CI, against the share of real
data in the variants' training sets, and a paired test of the trend (no eyeballing).

Which variants form the curve: the trained ones that differ only by their real share (same
declared size, units and balance), e.g. `synthetic`, `hybrid@0.25`, `hybrid`, `real` at
equal size, or a sweep `hybrid@{0,0.5,1}`; the x value is the share each set really got
(mix/summary.json), one variant per share. A curve needs 3 or more shares.

Trend test, paired: for each evaluation scenario (judge metrics) or held-out session
(likelihood) that every variant of the curve has, the least-squares slope of the metric over
the real share; the statistic is the mean slope, and its two-sided p comes from permuting the
variants' values within each unit (`permutation_trend_p`: exact in level for any spacing of
the shares, unlike a signed-rank test of the slopes), shown with a BCa CI of the mean slope.
The points are each variant's mean over those same units, and judge rows are the headline
table's (`stats.paired_rows`, so `evaluate.failed_as_min` applies). `dose_response`
Holm-corrects its trends across metrics; in a report they join the verdict's one family
instead (verdict.family). A slope is "per unit of real share": the change from an
all-synthetic to an all-real set. Only `replace` designs (equal size, the real share varied)
form a curve; an `added` variant changes the size too (hybridtune/variants.py).

    curve = curve_points(variants, composition)     # [(name, share)], or [] when no curve
    res = dose_response(rows, curve, metrics, resamples=2000, alpha=0.05)
    fig = figure(res, out_dir / "dose_response.png")
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..variants import Variant, variant_of
from . import stats as S
from .render import figures, join, para, table


def curve_points(variants: list[Variant], composition: dict[str, dict] | None = None) -> list[tuple[str, float]]:
    """(variant, realised real share) of the largest group of trained variants that differ only by
    their share (a declared sweep's group first), one per share, sorted by share; [] under 3 shares."""
    composition = composition or {}
    groups: dict[tuple, list[Variant]] = defaultdict(list)
    for v in variants:
        # an added variant changes the size with the share; a further seed's model pools into its variant
        if v.trained and v.design == "replace" and v.replicate_of is None:
            groups[(v.size, v.units, v.balance_by)].append(v)
    cands = []
    for vs in groups.values():
        pts: dict[float, str] = {}
        for v in vs:
            share = (composition.get(v.name) or {}).get("real_share")
            pts.setdefault(round(v.real_share if share is None else float(share), 4), v.name)
        if len(pts) >= 3:
            cands.append((any(v.sweep for v in vs), len(pts), sorted(((n, s) for s, n in pts.items()), key=lambda x: x[1])))
    return max(cands, key=lambda c: c[:2])[2] if cands else []


def slope(x: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of y over x."""
    xc = x - x.mean()
    return float((xc * (y - y.mean())).sum() / (xc ** 2).sum())


def permutation_trend_p(y: np.ndarray, x: np.ndarray, resamples: int, seed: int = 0) -> float:
    """Two-sided p of the mean per-unit slope, by permuting the variants' values within each unit.

    Under no effect of the real share, a unit's values are exchangeable across the curve's
    variants whatever its level or spread, so the within-unit permutation distribution of the
    statistic is exact for any spacing of the shares and any shape of the scores (a signed-rank
    test of the slopes assumes they are symmetric around 0, which uneven shares break: at
    (0, 0.25, 1) it rejected about 8% at alpha 0.05). Monte Carlo: (1 + #{|T*| >= |T|}) / (R + 1),
    so the smallest p is 1/(R + 1)."""
    xc = x - x.mean()
    sxx = float((xc ** 2).sum())
    t_obs = abs(float((y @ xc).mean() / sxx))
    rng = np.random.default_rng(seed)
    perm = np.argsort(rng.random((resamples, *y.shape)), axis=-1)  # one shuffle of the variants per unit
    t = np.abs((xc[perm] * y[None]).sum(-1).mean(-1) / sxx)
    return float((1 + np.sum(t >= t_obs * (1 - 1e-12))) / (resamples + 1))


def trend(values: dict[str, dict[str, float]], curve: list[tuple[str, float]], resamples: int, seed: int = 0) -> dict:
    """values: {unit: {variant: metric}}. Per unit with every curve variant, the least-squares
    slope over the shares; their mean (the test's statistic) with a BCa CI, and the within-unit
    permutation p of that mean (`permutation_trend_p`)."""
    x = np.array([s for _, s in curve], dtype=float)
    y = np.array([[vals[n] for n, _ in curve] for vals in values.values()
                  if all(vals.get(n) is not None for n, _ in curve)], dtype=float).reshape(-1, len(curve))
    if not len(y):
        return {"n": 0, "slope": None, "slope_ci": None, "p": None}
    slopes = [slope(x, row) for row in y]
    ci = S.bootstrap_ci(slopes, resamples, seed=seed)
    p = permutation_trend_p(y, x, resamples, seed) if len(y) > 1 else math.nan
    return {"n": len(slopes), "slope": float(np.mean(slopes)), "slope_ci": list(ci) if ci else None,
            "ci_note": S.small_n_note(len(slopes)), "p": None if math.isnan(p) else p,
            "p_min": 1.0 / (resamples + 1), "resamples": resamples, "test": "within-unit permutation"}


def dose_response(rows: list[dict], curve: list[tuple[str, float]], metrics: list[str], resamples: int,
                  alpha: float = 0.05, unit_key: str = "scenario_id", nll_rows: list[dict] | None = None) -> dict:
    """{"curve", "metrics": {metric: {"points": [{variant, share, n, mean, ci_low, ci_high}], trend...}}}.

    rows: per-conversation judge scores {variant, scenario_id, <metric>}; nll_rows: per held-out
    session {variant, split, session_id, nll} (judge-free; metric name nll_<split>)."""
    out: dict = {"curve": [{"variant": n, "share": s} for n, s in curve], "metrics": {}}
    if not curve:
        return out
    series: dict[str, dict[str, dict[str, float]]] = {}  # metric -> unit -> variant -> value
    for m in metrics:
        series[m] = defaultdict(dict)
        for r in rows:
            if r.get(m) is not None:
                series[m][str(r[unit_key])][r["variant"]] = float(r[m])
    for r in nll_rows or []:
        if r.get("nll") is not None and math.isfinite(r["nll"]):
            series.setdefault(f"nll_{r['split']}", defaultdict(dict))[r["session_id"]][r["variant"]] = float(r["nll"])
    for m, units in series.items():
        # paired points: every variant's mean over the same units, the ones the trend test uses
        units = {u: vals for u, vals in units.items() if all(n in vals for n, _ in curve)}
        points = []
        for name, share in curve:
            d = S.describe([vals[name] for vals in units.values() if name in vals], resamples)
            points.append({"variant": name, "share": share, "n": d["n"], "mean": d["mean"],
                           "ci_low": d["ci_low"], "ci_high": d["ci_high"]})
        out["metrics"][m] = {"points": points, **trend(units, curve, resamples)}
    names = list(out["metrics"])
    for m, padj in zip(names, S.holm([out["metrics"][m]["p"] if out["metrics"][m]["p"] is not None else math.nan
                                      for m in names]), strict=True):
        t = out["metrics"][m]
        t["p_adj"] = None if math.isnan(padj) else padj
        t["significant"] = bool(t["p_adj"] is not None and t["p_adj"] < alpha)
    return out


def figure(res: dict, path: Path) -> Path | None:
    """One panel per metric: mean with 95% CI error bars against the real share, the median slope in the title."""
    from .plots import _save, plt

    metrics = [m for m, d in res["metrics"].items() if any(p["n"] for p in d["points"])]
    if not metrics:
        return None
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.0 * len(metrics), 3.6), squeeze=False)
    series = {}
    for ax, m in zip(axes[0], metrics, strict=True):
        pts = [p for p in res["metrics"][m]["points"] if p["n"]]
        x = [p["share"] for p in pts]
        y = [p["mean"] for p in pts]
        err = [[0.0 if p["ci_low"] is None else p["mean"] - p["ci_low"] for p in pts],
               [0.0 if p["ci_high"] is None else p["ci_high"] - p["mean"] for p in pts]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=5)
        for p in pts:
            ax.annotate(p["variant"], (p["share"], p["mean"]), xytext=(4, 4), textcoords="offset points", fontsize=7)
        t = res["metrics"][m]
        pv = "n/a" if t["p"] is None else f"{t['p']:.3g}"
        ax.set_title(f"{m}\nslope {t['slope']:+.2f}, p {pv}" if t["slope"] is not None else m, fontsize=9)
        ax.set_xlabel("real share of the training set")
        ax.set_xlim(-0.05, 1.05)
        series[m] = {p["variant"]: [p["share"], round(float(p["mean"]), 4)] for p in pts}
    fig.suptitle("Dose-response: metric (95% CI) against the real share", y=1.06)  # above the panel titles
    return _save(fig, path, "dose response", series)


def load_nll_rows(ctx) -> list[dict]:
    """Per held-out session NLL of each variant (likelihood/sessions.jsonl; the latest row per
    variant, split and session, so a retrained variant's older scores do not count)."""
    p = ctx.store.path("likelihood", "sessions.jsonl")
    if not p.exists():
        return []
    from ..store import read_jsonl_dicts

    last = {}
    for r in read_jsonl_dicts(p):
        if r.get("tokens"):
            last[(r["variant"], r["split"], r["session_id"])] = {**r, "nll": r["nll_sum"] / r["tokens"]}
    pooled: dict[tuple, list[dict]] = defaultdict(list)  # train.seeds: a session's mean over seeds
    for (v, split, sid), r in last.items():
        pooled[(variant_of(v), split, sid)].append(r)
    return [{**rs[0], "variant": v, "nll": float(np.mean([r["nll"] for r in rs]))}
            for (v, _, _), rs in pooled.items()]


def compute(ctx, res: dict) -> dict:
    """The run's dose-response result (report stage): curve from the declared variants and the
    mix's realised shares, judge rows from `res`, likelihood rows from the likelihood stage."""
    mix = ctx.store.stage("mix").read_summary({}) or {}
    curve = curve_points(ctx.cfg.variant_list(), mix.get("variants"))
    ev = ctx.cfg.evaluate
    # the headline table's rows: the same scenarios, failures scored as the minimum under failed_as_min
    return dose_response(res["paired"], curve, res["metrics"], ev.bootstrap_resamples, ev.alpha,
                         nll_rows=load_nll_rows(ctx))


def report_section(dr: dict, out_dir: Path, validated: bool) -> tuple[str, str]:
    """(markdown, html) of the report's dose-response section for a result of `compute`
    (its p_adj from the verdict's family, verdict.family)."""
    curve = [(c["variant"], c["share"]) for c in dr["curve"]]
    if not curve:
        return para("No dose-response curve: it needs 3 or more trained variants that differ only by their real "
                    "share (same size and units), e.g. variants synthetic, hybrid and real at equal size, or a "
                    "sweep hybrid@{0,0.5,1} (configs/sweep.yaml).")
    rows = []
    for m, d in dr["metrics"].items():
        judge_based = not m.startswith("nll_")
        sig = ("yes" if d["significant"] else "no") if (validated or not judge_based) else "withheld"
        pts = "; ".join(f"{p['variant']} ({p['share']:g}): {p['mean']:.2f}"
                        + (f" [{p['ci_low']:.2f}, {p['ci_high']:.2f}]" if p["ci_low"] is not None else " (no CI)")
                        for p in d["points"] if p["n"])
        ci = f"[{d['slope_ci'][0]:.2f}, {d['slope_ci'][1]:.2f}]" if d["slope_ci"] else None
        rows.append([m, pts, d["n"], d["slope"], ci, S.p_text(d["p"], d.get("at_floor")),
                     S.p_text(d.get("p_adj"), d.get("at_floor")), sig])
    intro = para(f"Variants on the curve (realised real share): {', '.join(f'{n} {s:g}' for n, s in curve)}. "
                 "Each point is the metric's mean over the units every curve variant has, with a bootstrap 95% CI. "
                 "Trend: per scenario (judge metrics) or held-out session (nll_*, lower is better), the "
                 "least-squares slope over the real share; their mean is tested against 0 by permuting the "
                 "variants' values within each unit (two-sided; valid for any spacing of the shares), "
                 "Holm-corrected together with every other claim of the verdict. A slope is the change from an "
                 "all-synthetic to an all-real training set.")
    parts = [intro, table(["Metric", "Points: variant (share): mean [95% CI]", "n paired", "Mean slope",
                           "Slope 95% CI", "p (permutation)", "p (Holm)", "Significant trend"], rows)]
    if not validated:
        parts.append(para("The judge is not validated on this run: trends of judge scores are shown, their "
                          "significance withheld; the likelihood trends (nll_*) do not depend on the judge."))
    path = figure(dr, out_dir / "dose_response.png")
    if path is not None:
        parts.append(figures({"dose_response": path}))
    return join(*parts)
