"""How far the report's numbers can be trusted: report sections for the report stage.

Input: likelihood/summary.json and calibrate/summary.json of the run (either may be absent).
Output: `report_sections(ctx)` -> [{"title", "markdown", "html"}] (html is a fragment, every
value escaped): the held-out likelihood table with CIs, the judge-validation block with its
verdict, the judge against experts' labels (people.experts_section), and the patient-simulator check. `judge_validated(ctx)` -> True/False, or None when
calibration did not run; `summary_paragraph(ctx, comparisons)` is verdict.verdict_paragraph
over this run's files.

    from hybridtune.evaluate import trust
    for sec in trust.report_sections(ctx): md.append(f"## {sec['title']}\\n\\n{sec['markdown']}")
"""
from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

from ..context import Context
from ..tables import html_table, md_table
from . import stats as S
from .verdict import verdict_paragraph

SPLITS = {"test_real": "held-out real", "test_synthetic": "held-out synthetic"}


def load_likelihood(ctx: Context) -> dict | None:
    return ctx.store.stage("likelihood").read_summary()


def load_calibration(ctx: Context) -> dict | None:
    return ctx.store.stage("calibrate").read_summary()


def judge_validated(ctx: Context) -> bool | None:
    """Whether the judge passed calibration on this run; None when calibration did not run (or had no data)."""
    cal = load_calibration(ctx)
    return None if cal is None else cal.get("validated")


def summary_paragraph(ctx: Context, comparisons: list[dict]) -> str:
    return verdict_paragraph(comparisons, load_likelihood(ctx), load_calibration(ctx), ctx.cfg.evaluate.alpha)


# -- formatting -------------------------------------------------------------------

def f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def ci(v: Any, c: list[float] | None, nd: int = 3) -> str:
    return f(v, nd) + (f" [{c[0]:.{nd}f}, {c[1]:.{nd}f}]" if c else "")


def pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f}%"


def section(title: str, blocks: list[tuple[str, Any]]) -> dict:
    """blocks: ("p", text) | ("strong", text) | ("table", (head, rows)) | ("list", [text])."""
    md, h = [], []
    for kind, val in blocks:
        if kind == "table":
            md.append(md_table(*val))
            h.append(html_table(*val, css="trust"))
        elif kind == "strong":
            md.append(f"**{val}**")
            h.append(f'<p class="verdict"><strong>{html.escape(val)}</strong></p>')
        elif kind == "list":
            md.append("\n".join(f"- {x}" for x in val))
            h.append("<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in val) + "</ul>")
        else:
            md.append(val)
            h.append(f"<p>{html.escape(val)}</p>")
    return {"title": title, "markdown": "\n\n".join(md), "html": "\n".join(h)}


# -- sections ---------------------------------------------------------------------

def likelihood_section(lik: dict | None) -> dict:
    title = "Held-out likelihood (judge-free)"
    if lik is None:
        return section(title, [("p", "The likelihood stage did not run on this run.")])
    level = int(round(100 * lik.get("confidence", 0.95)))
    rows = []
    for v, splits in lik.get("variants", {}).items():
        for sp, r in splits.items():
            rows.append([v, SPLITS.get(sp, sp), f(r.get("sessions")), f(r.get("tokens")),
                         ci(r.get("nll"), r.get("nll_ci")), ci(r.get("ppl"), r.get("ppl_ci"), 2)])
    blocks: list[tuple[str, Any]] = [("p", (
        "Mean negative log-likelihood per counselor token (nats) of held-out sessions no variant was trained on, "
        f"given the preceding dialogue; lower is better. Brackets: {level}% BCa bootstrap CIs over sessions. "
        "This measure needs no judge, so it holds even for a small local model."))]
    if rows:
        blocks.append(("table", (["variant", "split", "sessions", "tokens", "NLL", "perplexity"], rows)))
    else:
        blocks.append(("p", "No variant could be scored."))
    comps = lik.get("comparisons") or []
    if comps:
        blocks.append(("p", "Paired by session: difference = NLL(a) - NLL(b) over the sessions both scored, each "
                            "side token-weighted as in the table above (negative when a predicts better), with a "
                            "BCa bootstrap CI; p from a paired sign-flip permutation test of that same difference, "
                            "Holm-adjusted together with every other claim of the verdict (its null: each "
                            "session's difference symmetric around 0, the variants exchangeable; p at the "
                            "test's floor reads <= p). Per-token NLL is "
                            "compared only between variants that tokenize the text the same way."))
        blocks.append(("table", (["a", "b", "split", "n", "difference", "adjusted p", "significant", "note"], [
            [c["a"], c["b"], SPLITS.get(c["split"], c["split"]), f(c["n"]), ci(c.get("estimate"), c.get("ci")),
             S.p_text(c.get("p_adj"), bool(c.get("at_floor"))), f(c.get("significant")),
             "; ".join(x for x in (c.get("note"), c.get("ci_note"), c.get("unreachable"), _seeds(c)) if x) or ""]
            for c in comps])))
    skipped = lik.get("skipped") or {}
    if skipped:
        blocks.append(("list", [f"{v}: not scored — {why}" for v, why in sorted(skipped.items())]))
    return section(title, blocks)


def _seeds(c: dict) -> str | None:
    """The estimate per training seed (train.seeds) and their SD, or None with one seed."""
    est = [e for e in c.get("seed_estimates") or [] if e is not None]
    if len(est) < 2:
        return None
    return f"per seed: {', '.join(f'{e:+.3f}' for e in est)} (SD {c['seed_sd']:.3f})"


def calibration_section(cal: dict | None) -> dict:
    title = "Judge validation"
    if cal is None:
        return section(title, [("strong", "Judge not validated on this run: the calibrate stage did not run."),
                               ("p", "Treat the judge scores above as unchecked.")])
    verdict = str(cal.get("verdict") or "")
    head = "Judge validated on this run" if cal.get("validated") else "Judge not validated on this run"
    # the verdict text already starts with the headline when it explains a failure
    text = verdict[:1].upper() + verdict[1:] if verdict.lower().startswith(head.lower()) else f"{head}. {verdict}"
    blocks: list[tuple[str, Any]] = [("strong", text.strip())]
    blocks.append(("p", (
        f"Judge {cal.get('judge_model')} rated {cal.get('originals')} real counselor turns from {cal.get('source')} "
        f"and degraded versions of each ({cal.get('versions')} replies, k={cal.get('samples')} samples, "
        f"{cal.get('ratings')}/{cal.get('ratings_planned')} ratings parsed). AUC = chance that an original is "
        f"rated above one of its own degraded versions (same context; 0.5 = coin flip, 1 = perfect), with a 95% "
        f"Wilson CI over items. To pass, the CI's lower bound must reach {cal.get('threshold')}, the 95% lower "
        f"bound over items of its lead over the length baseline (the same AUC for simply preferring the longer "
        f"reply) must reach {cal.get('length_margin', 0)}, the AUC on the degradations that keep the original's "
        f"length ({', '.join(cal.get('length_keeping') or []) or 'none'}) must be above chance (CI lower bound "
        f"> 0.5), and at most {cal.get('max_failure_rate', 0.2)} of the ratings may fail; items are counted after "
        "failures.")))
    rows, reach = [], []
    for m, r in (cal.get("metrics") or {}).items():
        by = ", ".join(f"{k} {f(v, 2)}" for k, v in (r.get("auc_by_degradation") or {}).items())
        lb = r.get("length_bias") or {}
        rows.append([m, ci(r.get("auc"), r.get("auc_ci"), 2),
                     f(r.get("items")) + (f" ({r['items_lost']} lost to failures)" if r.get("items_lost") else ""),
                     f(r.get("passes")), by or "n/a",
                     ci(r.get("auc_length_keeping"), r.get("auc_length_keeping_ci"), 2),
                     f(r.get("length_baseline_auc"), 2),
                     f"{f(r.get('beats_length_by'), 2)} (lower {f(r.get('beats_length_lower'), 2)})", f(r.get("mean_original"), 2), f(r.get("mean_degraded"), 2),
                     f(r.get("repeat_sd"), 2), f(lb.get("rho"), 2)])
        if r.get("reach"):
            reach.append(f"{m}: {r['reach']}")
    if rows:
        blocks.append(("table", (["metric", "AUC [95% CI]", "items", "passes", "AUC by degradation",
                                  "AUC (length kept) [95% CI]", "length baseline AUC", "beats length by (95% lower bound)", "mean original",
                                  "mean degraded", "repeat SD", "length rho"], rows)))
    if reach:
        blocks.append(("list", reach))
    if not cal.get("validated"):
        blocks.append(("p", "Comparison claims based on the judge are withheld; its scores stay visible above."))
    if cal.get("warnings"):
        blocks.append(("list", list(cal["warnings"])))
    return section(title, blocks)


def simcheck_section(cal: dict | None) -> dict:
    title = "Patient-simulator check"
    sc = (cal or {}).get("simcheck")
    if not sc or not sc.get("ran"):
        note = (sc or {}).get("note", "the calibrate stage did not run")
        return section(title, [("p", f"Not run: {note}.")])
    blocks: list[tuple[str, Any]] = [("p", (
        f"Simulated client turns checked for staying in character ({sc.get('sessions')} sessions, judge "
        f"{sc.get('judge_model')}, {sc.get('failed', 0)} unparsed). Inconsistent = contradicts or ignores the persona/"
        "scenario (judge); role confusion = the client talks like the counselor (judge, and a phrase heuristic)."))]
    if not (cal or {}).get("validated"):
        blocks.append(("p", "The judge's share is only as good as the judge, which was not validated on this run; "
                            "the heuristic share does not depend on it."))
    rows = [[name, f(r.get("turns")), pct(r.get("inconsistent")), pct(r.get("role_confusion_judge")),
             pct(r.get("role_confusion_heuristic")), pct(r.get("role_confusion_either"))]
            for name, r in [("all", sc.get("overall", {})), *sorted((sc.get("by_variant") or {}).items())]]
    blocks.append(("table", (["variant", "client turns", "inconsistent", "role confusion (judge)",
                              "role confusion (heuristic)", "either"], rows)))
    return section(title, blocks)


def report_sections(ctx: Context, lik: dict | None = None,
                    beside_validation: Callable[[dict | None], dict] | None = None) -> list[dict]:
    """The likelihood table (`lik`: the results as adjusted with the verdict's family, default
    the stage's file), the judge-validation block with what `beside_validation(calibration)` makes
    right after it (the report passes the judge-against-experts check, people.experts_section),
    and the simulator check, for report.md/html."""
    cal = load_calibration(ctx)
    beside = [beside_validation(cal)] if beside_validation else []
    return [likelihood_section(lik if lik is not None else load_likelihood(ctx)), calibration_section(cal),
            *beside, simcheck_section(cal)]
