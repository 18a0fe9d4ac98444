"""The report's figures (matplotlib, Agg backend, PNG): box and violin plots of scores by
variant, scatter of the first two metrics (jittered, coloured by variant), a bar chart of
each metric's mean with 95% CI error bars, and the forest plot of the paired differences
(`forest`). Labels and axes follow each metric's declaration (evaluate/metrics.py, or the
domain pack for its own metrics). A metric whose every score ties (`flat_metrics`) is left
out of the score figures: a flat line says nothing, the report says it in words instead.

Input: per-session rows {variant, <metric>: float}, the summary table of stats.summary_table.
Output: PNG files; each carries its series in the PNG text chunk "Series" (JSON, taken from
the drawn axes) so tests and readers can check what a figure shows without looking at it.

    paths = make_figures(rows, table, ["base", "real", "hybrid"], ["empathy", "relevance"], out_dir)
"""
from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .metrics import metric as get_metric  # noqa: E402


def _ylim(ax, m: str) -> None:
    lo, hi = get_metric(m).scale
    ax.set_ylim(min(0, lo), hi + (hi - lo) * 0.05)


def _values(rows: list[dict], variant: str, metric: str) -> list[float]:
    return [float(r[metric]) for r in rows if r["variant"] == variant and r.get(metric) is not None]


def _save(fig, path: Path, title: str, series: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110, bbox_inches="tight",
                metadata={"Title": title, "Software": "hybridtune", "Series": json.dumps(series)})
    plt.close(fig)
    return path


def _palette(variants: list[str]) -> dict[str, str]:
    cmap = plt.get_cmap("tab10")
    return {v: matplotlib.colors.to_hex(cmap(i % 10)) for i, v in enumerate(variants)}


def distribution(rows: list[dict], variants: list[str], metrics: list[str], path: Path, kind: str) -> Path:
    """Box or violin plot: one panel per metric, one distribution per variant."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(4.2 * len(metrics), 3.8), squeeze=False)
    series: dict[str, dict[str, int]] = {}
    for ax, m in zip(axes[0], metrics, strict=True):
        data = [_values(rows, v, m) for v in variants]
        shown = [(v, d) for v, d in zip(variants, data, strict=True) if d]
        if shown:
            pos = list(range(1, len(shown) + 1))
            if kind == "box":
                ax.boxplot([d for _, d in shown], positions=pos)
            else:
                ax.violinplot([d for _, d in shown], positions=pos, showmeans=True, showmedians=True)
            ax.set_xticks(pos, [v for v, _ in shown])
        ax.set_title(get_metric(m).label)
        ax.set_ylabel("score")
        _ylim(ax, m)
        series[m] = {t.get_text(): len(_values(rows, t.get_text(), m)) for t in ax.get_xticklabels()}
    fig.suptitle(f"{'Box' if kind == 'box' else 'Violin'} plot of scores by variant")
    return _save(fig, path, f"{kind} plot", series)


def scatter(rows: list[dict], variants: list[str], path: Path, x: str = "empathy", y: str = "relevance", seed: int = 0) -> Path:
    """Metric x vs metric y per conversation; jitter (+-0.15) separates the many ties of integer scores."""
    rng = np.random.default_rng(seed)
    colors = _palette(variants)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    for v in variants:
        pts = [(r[x], r[y]) for r in rows if r["variant"] == v and r.get(x) is not None and r.get(y) is not None]
        if not pts:
            continue
        a = np.asarray(pts, dtype=float) + rng.uniform(-0.15, 0.15, size=(len(pts), 2))
        ax.scatter(a[:, 0], a[:, 1], label=v, color=colors[v], alpha=0.7, s=28)
    mx, my = get_metric(x), get_metric(y)
    ax.set_xlabel(mx.label)
    ax.set_ylabel(my.label)
    ax.set_xlim(min(0, mx.scale[0]), mx.scale[1] + (mx.scale[1] - mx.scale[0]) * 0.05)
    _ylim(ax, y)
    ax.set_title(f"{mx.label} vs {my.label} (jittered)")
    if ax.collections:
        ax.legend(title="variant")
    series = {c.get_label(): len(c.get_offsets()) for c in ax.collections}
    return _save(fig, path, "scatter", series)


def bar(table: dict, variants: list[str], metric: str, path: Path) -> Path:
    """Mean score per variant with its bootstrap 95% CI as error bars (none where no interval exists)."""
    colors = _palette(variants)
    shown = [v for v in variants if table.get(v, {}).get(metric, {}).get("n")]
    means = [table[v][metric]["mean"] for v in shown]

    def _gap(v: str, side: str) -> float:
        d = table[v][metric]
        return 0.0 if d.get(side) is None else abs(d["mean"] - d[side])

    err = np.array([[_gap(v, "ci_low") for v in shown], [_gap(v, "ci_high") for v in shown]])
    fig, ax = plt.subplots(figsize=(4.6, 3.8))
    bars = ax.bar(shown, means, yerr=err if shown else None, capsize=6, color=[colors[v] for v in shown])
    for b, m in zip(bars, means, strict=True):  # value inside the bar's foot, clear of the error bar
        ax.annotate(f"{m:.2f}", (b.get_x() + b.get_width() / 2, 0), ha="center", va="bottom",
                    xytext=(0, 4), textcoords="offset points", fontsize=9, color="white", fontweight="bold")
    _ylim(ax, metric)
    ax.set_ylabel(f"mean {get_metric(metric).label} (95% CI)")
    ax.set_title(f"Mean {get_metric(metric).label} by variant")
    series = {v: round(float(b.get_height()), 4) for v, b in zip(shown, bars, strict=True)}
    return _save(fig, path, f"bar {metric}", series)


def flat_metrics(rows: list[dict], metrics: list[str]) -> dict[str, float]:
    """{metric: the one value} for each metric whose scores all tie (nothing for a figure to show)."""
    out = {}
    for m in metrics:
        vals = {float(r[m]) for r in rows if r.get(m) is not None}
        if len(vals) == 1:
            out[m] = vals.pop()
    return out


def make_figures(rows: list[dict], table: dict, variants: list[str], metrics: list[str], out: Path) -> dict[str, Path]:
    """The report's figures: box and violin of every metric, the first two metrics against
    each other, and a bar chart per metric (`bar_<metric>`); metrics whose scores all tie are
    left out (and a figure with none left is not drawn)."""
    flat = flat_metrics(rows, metrics)
    shown = [m for m in metrics if m not in flat]
    figs = {}
    if shown:
        figs["box"] = distribution(rows, variants, shown, out / "box.png", "box")
        figs["violin"] = distribution(rows, variants, shown, out / "violin.png", "violin")
    if len(metrics) >= 2 and not (metrics[0] in flat and metrics[1] in flat):
        figs["scatter"] = scatter(rows, variants, out / "scatter.png", metrics[0], metrics[1])
    for m in shown:
        figs[f"bar_{m}"] = bar(table, variants, m, out / f"bar_{m}.png")
    return figs


def forest(panels: list[tuple[str, list[dict]]], path: Path) -> Path | None:
    """Forest plot: one panel per measure (title, rows {label, estimate, ci, significant}), each
    row a point estimate with its 95% CI and a line at 0; filled points are significant claims."""
    panels = [(t, [r for r in rows if r.get("estimate") is not None]) for t, rows in panels]
    panels = [(t, rows) for t, rows in panels if rows]
    if not panels:
        return None
    heights = [0.9 + 0.42 * len(rows) for _, rows in panels]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9.0, sum(heights)), squeeze=False,
                             gridspec_kw={"height_ratios": heights})
    series = {}
    for ax, (title, rows) in zip(axes[:, 0], panels, strict=True):
        y = np.arange(len(rows))[::-1]
        for yi, r in zip(y, rows, strict=True):
            ci = r.get("ci")
            if ci:
                ax.plot(ci, [yi, yi], color="#1f4e79", lw=2)
            ax.plot([r["estimate"]], [yi], "o", ms=8, color="#1f4e79",
                    markerfacecolor="#1f4e79" if r.get("significant") else "white")
        ax.axvline(0, color="#888", lw=1, ls="--")
        ax.set_yticks(y, [r["label"] for r in rows])
        ax.set_ylim(-0.7, len(rows) - 0.3)
        ax.set_title(title, fontsize=10, loc="left")
        ax.grid(axis="x", alpha=0.3)
        series[title] = {r["label"]: [r["estimate"], *(r.get("ci") or [None, None])] for r in rows}
    fig.tight_layout()
    return _save(fig, path, "forest", series)


def captions(metrics: list[str]) -> dict[str, str]:
    """Caption of each figure `make_figures` can draw."""
    out = {"box": "Box plot of scores by variant", "violin": "Violin plot of scores by variant"}
    if len(metrics) >= 2:
        out["scatter"] = (f"{get_metric(metrics[0]).label} vs {get_metric(metrics[1]).label} per conversation "
                          "(jittered), coloured by variant")
    out |= {f"bar_{m}": f"Mean {get_metric(m).label.lower()} with bootstrap 95% CI" for m in metrics}
    out["forest"] = ("Paired differences A - B with 95% CIs, one row per comparison; filled points are significant "
                     "after the Holm correction, hollow ones are not")
    return out
