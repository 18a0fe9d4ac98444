"""Dose-response of the real share: every metric, with its 95% CI, against the share of real
data in the variants' training sets, and a paired test of the trend (no eyeballing).

Which variants form the curve: the trained ones that differ only by their real share (same
declared size, units and balance), e.g. `synthetic`, `hybrid@0.25`, `hybrid`, `real` at
equal size, or a sweep `hybrid@{0,0.5,1}`; the x value is the share each set really got
(mix/summary.json), one variant per share. A curve needs 3 or more shares.

Trend test, paired: for each evaluation scenario (judge metrics) or held-out session
(likelihood), the least-squares slope of the metric over the real share across the curve's
variants; the slopes are tested against 0 with the two-sided Wilcoxon signed-rank test, with their
Hodges-Lehmann median and its 95% CI (the estimate of that test, so the direction shown cannot
contradict it). `dose_response` Holm-corrects its trends across metrics; in a report they join
the verdict's one family instead (verdict.family). A slope is "per unit of real share": the
change from an all-synthetic to an all-real set.

    curve = curve_points(variants, composition)     # [(name, share)], or [] when no curve
    res = dose_response(rows, curve, metrics, resamples=2000, alpha=0.05)
    fig = figure(res, out_dir / "dose_response.png")
"""
from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..variants import Variant
from . import stats as S
from .render import figures, join, para, table


def curve_points(variants: list[Variant], composition: dict[str, dict] | None = None) -> list[tuple[str, float]]:
    """(variant, realised real share) of the largest group of trained variants that differ only by
    their share (a declared sweep's group first), one per share, sorted by share; [] under 3 shares."""
    composition = composition or {}
    groups: dict[tuple, list[Variant]] = defaultdict(list)
    for v in variants:
        if v.trained:
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


def trend(values: dict[str, dict[str, float]], curve: list[tuple[str, float]], resamples: int, seed: int = 0) -> dict:
    """values: {unit: {variant: metric}}. Slopes of units that have every curve variant, their mean
    with a bootstrap CI, and the Wilcoxon signed-rank p of the slopes against 0."""
    x = np.array([s for _, s in curve], dtype=float)
    slopes = [slope(x, np.array([vals[n] for n, _ in curve], dtype=float))
              for vals in values.values() if all(vals.get(n) is not None for n, _ in curve)]
    if not slopes:
        return {"n": 0, "slope": None, "slope_ci": None, "p": None}
    # the estimate that belongs to the signed-rank test (its direction cannot contradict the test)
    hl = S.hodges_lehmann(slopes)
    p = S.wilcoxon_p(slopes, [0.0] * len(slopes)) if len(slopes) > 1 else math.nan
    return {"n": len(slopes), "slope": hl["estimate"], "slope_ci": hl["ci"], "mean_slope": float(np.mean(slopes)),
            "p": None if math.isnan(p) else p}


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
    return list(last.values())


def compute(ctx, res: dict) -> dict:
    """The run's dose-response result (report stage): curve from the declared variants and the
    mix's realised shares, judge rows from `res`, likelihood rows from the likelihood stage."""
    mix = ctx.store.stage("mix").read_summary({}) or {}
    curve = curve_points(ctx.cfg.variant_list(), mix.get("variants"))
    ev = ctx.cfg.evaluate
    return dose_response(res["rows"], curve, res["metrics"], ev.bootstrap_resamples, ev.alpha,
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
        rows.append([m, pts, d["n"], d["slope"], ci, d["p"], d["p_adj"], sig])
    intro = para(f"Variants on the curve (realised real share): {', '.join(f'{n} {s:g}' for n, s in curve)}. "
                 "Each point is the metric's mean with a bootstrap 95% CI. Trend: per scenario (judge metrics) or "
                 "held-out session (nll_*, lower is better), the least-squares slope over the real share; the slopes "
                 "are tested against 0 (Wilcoxon signed-rank, two-sided, Holm-corrected together with every other "
                 "claim of the verdict); the slope shown is "
                 "their Hodges-Lehmann median with its CI. A slope is "
                 "the change from an all-synthetic to an all-real training set.")
    parts = [intro, table(["Metric", "Points: variant (share): mean [95% CI]", "n paired", "Median slope (HL)",
                           "Slope 95% CI", "p (Wilcoxon)", "p (Holm)", "Significant trend"], rows)]
    if not validated:
        parts.append(para("The judge is not validated on this run: trends of judge scores are shown, their "
                          "significance withheld; the likelihood trends (nll_*) do not depend on the judge."))
    path = figure(dr, out_dir / "dose_response.png")
    if path is not None:
        parts.append(figures({"dose_response": path}))
    return join(*parts)
