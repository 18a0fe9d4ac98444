"""Stage `report`: report/report.md and a self-contained report/report.html, from cached results only.

The page answers first: a headline of one or two lines (evaluate/headline.py: the claims, or
"No winner: <why>"), then the forest plot of the paired differences (likelihood first, judge
metrics when the judge is validated), the verdict, then the tables; details (the paper's
numbers, the power plan, the resolved config) are collapsed. The sections are `SECTIONS`, a
list of functions `(Page) -> [section]` in page order: a new section is one function there.

Input (files only, no model calls, so a rerun is instant and free): score/session_scores.jsonl,
score/summary.json, simulate/sessions.jsonl, eval_scenarios/, models.json, usage.json,
config.yaml, stage summaries (_done.json), and the trust sections
(`hybridtune.evaluate.trust.report_sections`, `judge_validated`, `verdict.verdict_paragraph`).
The headline table and the judge tests cover the scenarios every variant completed
(`stats.paired_rows`); the judge and likelihood comparisons are Holm-adjusted as one family
(`verdict.family`), so every table shows the p the verdict uses. The page opens with the
short verdict (`verdict.summary`); with `train.seeds` the rows of every seed's model are
pooled into their variant first (`stats.pool_seeds`).
Output: report/report.md, report/report.html (figures inlined as base64 data URIs),
report/{box,violin,scatter,bar_<metric>,dose_response}.png, report/summary.json (table +
comparisons + dose-response, machine-readable).

    hybridtune report -c configs/demo.yaml
"""
from __future__ import annotations

import html
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import markupsafe
import yaml

from ..app.conversations import report_section as users_section
from ..context import Context
from ..errors import UserError
from ..records import Session
from ..registry import load_registry
from ..store import StageDir, read_jsonl_dicts
from ..variants import analysed
from . import dose, people, plots
from . import stats as S
from .headline import headline
from .metrics import metric as get_metric
from .render import details, figures, fmt, join, notes_once, para, pre, section, table
from .verdict import SPLIT_WORDS

# The reference paper's Table (50 conversations per model), shown for context only: other
# models, other judge, other scenarios; never compared statistically with this run.
PAPER = [
    {"variant": "hybrid (paper)", "empathy": 8.64, "relevance": 8.66},
    {"variant": "base (paper)", "empathy": 8.48, "relevance": 8.08},
    {"variant": "real-only (paper)", "empathy": 7.32, "relevance": 7.24},
]
TEMPLATE = Path(__file__).parent / "templates" / "report.html.j2"


# -- data -------------------------------------------------------------------------


def load_results(ctx: Context) -> dict:
    """Everything the report shows, read from the run directory."""
    sc = ctx.store.stage("score")
    models = list(sc.read_dicts("session_scores.jsonl"))
    if not models:
        raise UserError(f"{sc.file('session_scores.jsonl')}: no scores; run `hybridtune score` first")
    summary = sc.read_summary({}) or {}
    metrics = summary.get("metrics") or ctx.cfg.evaluate.metrics
    reg = load_registry(ctx.store)
    order = [v.name for v in analysed(ctx.cfg.variant_list())]
    ev = ctx.cfg.evaluate
    k = int(summary.get("judge_samples") or ev.judge_samples)
    rows = S.pool_seeds(models, metrics, ev.failed_as_min, k)  # train.seeds: a scenario's mean over seeds
    seen = [v for v in dict.fromkeys(r["variant"] for r in rows)]
    variants = [v for v in order if v in seen] + [v for v in seen if v not in order]
    scen = ctx.store.path("eval_scenarios", "scenarios.jsonl")
    planned = sum(1 for _ in read_jsonl_dicts(scen)) if scen.exists() else None
    paired, completion = S.paired_rows(rows, variants, metrics, planned, ev.failed_as_min, k)
    comparisons = S.paired_comparisons(paired, variants, metrics, ev.alpha)
    if len(seeds := ctx.cfg.train.seeds) > 1:  # the spread between training seeds, beside the pooled test
        spread = S.seed_spread(models, variants, metrics, seeds, ev.alpha)
        for c in comparisons:
            c["seed_estimates"] = spread.get((c["a"], c["b"], c["metric"]))
    return {"rows": rows, "paired": paired, "completion": completion, "score_summary": summary, "metrics": metrics,
            "variants": variants, "registry": reg, "failed_as_min": ev.failed_as_min,
            "sensitivity": S.failure_sensitivity(rows, variants, metrics, planned, ev.failed_as_min, k, ev.alpha),
            "table": S.summary_table(paired, variants, metrics, ev.bootstrap_resamples),
            "comparisons": comparisons}


# -- sections ---------------------------------------------------------------------


def main_table(res: dict) -> tuple[str, str]:
    t, metrics = res["table"], res["metrics"]
    head = ["Model", *(h for m in metrics for h in (f"{get_metric(m).label} Avg", "Median", "Min", "Max")),
            "Total Conversations", "Completed", "Failed judgements"]
    body = []
    for v in res["variants"]:
        c = res["completion"][v]
        done = f"{c['completed']}/{c['planned']} ({100 * c['completion_rate']:.0f}%)" if c["completion_rate"] is not None else None
        body.append([v, *(t[v].get(m, {}).get(k) for m in metrics for k in ("mean", "median", "min", "max")),
                     c["in_table"], done, (f"{c['failed_judgements']} (+{c['partial_judgements']} partial)"
                                           if c.get("partial_judgements") else c["failed_judgements"])])
    n = next(iter(res["completion"].values()), {}).get("in_table", 0)
    paired = para(f"Paired table: every row covers the same {n} scenarios, the ones every variant completed "
                  "(simulated and judged on every metric), so the averages compare like with like; the tests below "
                  "use the same scenarios. Completed = scenarios the variant completed of those planned; failed "
                  "judgements = judge calls on its conversations that gave no score, "
                  + ("scored as the metric's minimum (evaluate.failed_as_min)." if res.get("failed_as_min") else
                     "which remove the scenario from the table for every variant (evaluate.failed_as_min=true "
                     "scores them as the minimum instead)."))
    return join(table(head, body), paired, paper_block(metrics))


def paper_block(metrics: list[str]) -> tuple[str, str]:
    """The reference paper's published averages, collapsed and apart from this run's table."""
    rows = [[p["variant"], *(p.get(m) for m in metrics), 50] for p in PAPER if any(m in p for m in metrics)]
    if not rows:
        return "", ""
    return details("The paper's published numbers (context only, not comparable)",
                   para("The reference paper's published averages (its models, judge and scenarios); they are not "
                        "comparable with this run's numbers and no test uses them."),
                   table(["Model", *(f"{get_metric(m).label} Avg" for m in metrics), "Conversations"], rows))


def detail_table(res: dict) -> tuple[str, str]:
    head = ["Variant", "Metric", "n", "Mean", "95% CI (BCa)", "Median", "Std", "Min", "Max", "Note"]
    body = []
    for v in res["variants"]:
        for m in res["metrics"]:
            d = res["table"][v][m]
            ci = f"[{fmt(d['ci_low'])}, {fmt(d['ci_high'])}]" if d["ci_low"] is not None else None
            body.append([v, m, d["n"], d["mean"], ci, d["median"], d["std"], d["min"], d["max"], d.get("ci_note") or ""])
    body, notes = notes_once(body)
    return join(table(head, body), notes)


def comparisons_table(res: dict, validated: bool | None) -> tuple[str, str]:
    head = ["A", "B", "Metric", "n pairs", "Median diff (HL) [95% CI]", "Mean diff (A-B)", "p (Wilcoxon)",
            "p (Holm, verdict family)", "Rank-biserial r", "Significant", "Note"]
    body = []
    for c in res["comparisons"]:
        ci = c.get("ci")
        est = f"{fmt(c.get('estimate'))} [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else f"{fmt(c.get('estimate'))} (no CI at this n)"
        body.append([c["a"], c["b"], c["metric"], c["n"], est, c["mean_diff"], S.p_text(c["p"], c.get("at_floor")),
                     S.p_text(c.get("p_adj"), c.get("at_floor")) if validated else None,
                     c["effect_size"], ("yes" if c["significant"] else "no") if validated else "withheld",
                     "; ".join(x for x in (c.get("unreachable") or "", seeds_note(c)) if x)])
    body, notes = notes_once(body)
    fam = max((c.get("family", 0) for c in res["comparisons"]), default=0)
    intro = para("Paired over the same scenarios: Wilcoxon signed-rank test (two-sided, zero differences "
                 "dropped); the estimate is the Hodges-Lehmann median difference of the same non-zero differences "
                 "with its distribution-free CI, and a claim's direction is read from it (never from the mean, which "
                 "can point the other way); effect size = matched-pairs rank-biserial correlation (positive: A "
                 "scored higher). "
                 + (f"p-values Holm-corrected as one family of {fam} tests together with the likelihood comparisons "
                    f"(every claim the verdict makes), significance at alpha = {res.get('alpha', 0.05)}."
                    if validated else "No Holm-adjusted p is given: with the judge not validated these comparisons "
                    "are not claims, so they are outside the verdict's family."))
    parts = [intro, table(head, body), notes, para(res["sensitivity"]["line"])]
    if not validated:
        parts.append(para("The judge is not validated on this run, so no claim is made from these comparisons: "
                          "the numbers are shown, the 'significant' verdicts are withheld."))
    return join(*parts)


def seeds_note(c: dict) -> str:
    """A comparison's estimate per training seed (train.seeds), or '' with one seed."""
    est = [e for e in c.get("seed_estimates") or [] if e is not None]
    return f"per seed: {', '.join(f'{e:+.2f}' for e in est)}" if len(est) > 1 else ""


def power_section(ctx: Context, res: dict, lik: dict | None) -> tuple[str, str]:
    """Which tests could not have reached significance at this run's size (each reason once),
    and the plan at this config's sizes, collapsed."""
    from . import power

    groups: dict[str, list[str]] = {}
    for c in res["comparisons"]:
        if c.get("unreachable"):
            groups.setdefault(c["unreachable"], []).append(f"{c['a']} vs {c['b']} {c['metric']} (judge)")
    for c in (lik or {}).get("comparisons") or []:
        if c.get("unreachable"):
            groups.setdefault(c["unreachable"], []).append(f"{c['a']} vs {c['b']} likelihood ({c['split']})")
    notes = [f"{note}: {', '.join(tests)}" for note, tests in groups.items()]
    intro = para("An exact paired test with n non-zero pairs cannot give p below 2 / 2^n, and Holm multiplies the "
                 "smallest p by the number of tests. " + ("These tests could not have been significant at this "
                 "run's size, whatever the true difference, so their 'no significant difference' is no evidence of "
                 "equality:" if notes else "Every test here could have reached significance at its n."))
    plan = power.lines(power.plan(ctx.cfg, ctx.store.root))
    return join(intro, *([("\n".join(f"- {x}" for x in notes) + "\n",
                           "<ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in notes) + "</ul>")] if notes else []),
                details("Power plan: the smallest difference each test can detect",
                        para("Plan at this config's sizes, with this run's observed SDs where it has them "
                             "(`hybridtune plan CONFIG --pilot RUN_DIR`):"), pre("\n".join(plan))))


def verdict_lines(short: dict) -> tuple[str, str]:
    """(markdown, html) of the short verdict (verdict.summary): three labelled lists."""
    parts = [(f"Compared ({short['family']} tests, one Holm family)", short["compared"]),
             ("Significant", short["significant"] or ["nothing"]),
             ("What this run cannot tell", short["cannot_tell"] or ["nothing beyond the tests above"])]
    md = "\n".join(f"**{t}:**\n\n" + "\n".join(f"- {x}" for x in xs) + "\n" for t, xs in parts)
    h = "".join(f"<p><strong>{html.escape(t)}:</strong></p><ul>" + "".join(f"<li>{html.escape(x)}</li>" for x in xs)
                + "</ul>" for t, xs in parts)
    return md, h


def scoring_quality(res: dict) -> tuple[str, str]:
    s = res["score_summary"]
    parts = [para(f"Judgments: {s.get('judgments', '?')} requested, {s.get('scored', '?')} valid, "
                  f"{s.get('failed', '?')} failed (failure rate {fmt(s.get('failure_rate'), 3)}); "
                  f"judge models: {', '.join(f'{k}={v}' for k, v in (s.get('judges') or {}).items())}; "
                  f"samples per conversation: {s.get('judge_samples', 1)}.")]
    rows = []
    for m in res["metrics"]:
        noise = (s.get("judge_noise") or {}).get(m, {})
        agree = (s.get("agreement") or {}).get(m, {}) if s.get("agreement") else {}
        lb = (s.get("length_bias") or {}).get(m, {})
        rows.append([m, noise.get("mean_sd"), noise.get("alpha"), agree.get("alpha"), agree.get("spearman_rho"),
                     lb.get("rho"), lb.get("p")])
    parts.append(table(["Metric", "Judge repeat SD", "Alpha over repeats", "Alpha judge vs judge2",
                        "Spearman judge vs judge2", "Length bias rho (score vs words)", "Length bias p"], rows))
    parts.append(para("Repeat SD and alpha over repeats need evaluate.judge_samples > 1; judge agreement needs "
                      "evaluate.second_judge_endpoint. A length-bias rho well above 0 means longer counselor "
                      "replies got higher scores regardless of quality."))
    return join(*parts)


def conversations(ctx: Context, res: dict) -> tuple[str, str]:
    """Best and worst conversation per variant by the mean of its metric scores."""
    sessions = {s.id: s for s in ctx.store.stage("simulate").read("sessions.jsonl", Session)}
    ends: dict[str, dict[str, int]] = {}
    md, h = [], []
    for v in res["variants"]:
        scored = [r for r in res["rows"] if r["variant"] == v and all(r.get(m) is not None for m in res["metrics"])]
        for r in res["rows"]:
            if r["variant"] == v:
                ends.setdefault(v, {}).setdefault(str(r.get("end_reason")), 0)
                ends[v][str(r.get("end_reason"))] += 1
        if not scored:
            continue
        key = lambda r: sum(r[m] for m in res["metrics"]) / len(res["metrics"])  # noqa: E731
        best = max(scored, key=key)
        others = [r for r in scored if r is not best]  # on tied scores max and min pick the same one
        picks = [("best", best)] + ([("worst", min(others, key=key))] if others else [])
        for label, r in picks:
            s = sessions.get(r["id"])
            if s is None:
                continue
            title = f"{v}: {label} ({', '.join(f'{m} {fmt(r[m])}' for m in res['metrics'])}; ended by {r.get('end_reason')})"
            lines = [(m.role, m.content) for m in s.messages if m.role != "system"]
            names = {"user": "Client", "assistant": "Counselor"}
            # every line of a reply inside the quote: a blank line would otherwise end it
            md.append(f"#### {title}\n\n" + "\n>\n".join(f"> **{names[r_]}:** " + c.replace("\n", "\n> ")
                                                           for r_, c in lines) + "\n")
            h.append(f"<details><summary>{html.escape(title)}</summary>" + "".join(
                f'<p class="{r_}"><b>{names[r_]}:</b> {html.escape(c)}</p>' for r_, c in lines) + "</details>")
    end_md, end_h = table(["Variant", "End reasons"], [[v, ", ".join(f"{k}: {n}" for k, n in e.items())]
                                                       for v, e in ends.items()])
    return end_md + "\n" + "\n".join(md), end_h + "".join(h)


def dataset_summary(ctx: Context) -> tuple[str, str]:
    rows = []
    for stage in ("real", "personas", "scenarios", "synth", "curate", "eval_scenarios", "mix", "simulate", "score"):
        summ = ctx.store.stage(stage).summary() if ctx.store.path(stage).exists() else {}
        if summ:
            flat = {k: v for k, v in summ.items() if k not in ("stage",) and not isinstance(v, dict | list)}
            rows.append([stage, ", ".join(f"{k}={fmt(v)}" for k, v in flat.items())])
    counts = []
    for f in sorted(ctx.store.path("mix").glob("**/*.jsonl")) if ctx.store.path("mix").exists() else []:
        counts.append([str(f.relative_to(ctx.store.root)), sum(1 for _ in read_jsonl_dicts(f))])
    leak = ctx.store.stage("mix").read_json("leakage.json", None)
    leak_note = para(leakage_text(leak))
    contam = ctx.store.stage("eval_scenarios").read_json("contamination.json", {}) or {}
    sim_contam = ctx.store.stage("simulate").read_json("contamination.json", {}) or {}
    note = para(f"Contamination: {len(contam.get('contaminated', []))} of {contam.get('checked', 0)} evaluation "
                f"scenarios were near-duplicates of training texts before mixing (left out); at simulation "
                f"{len(sim_contam.get('contaminated_scenarios', []))} of {sim_contam.get('checked_scenarios', 0)} "
                f"against {sim_contam.get('training_sessions', 0)} final training sessions.")
    return join(table(["Stage", "Summary"], rows), table(["File", "Records"], counts), leak_note, note)


def leakage_text(leak: dict | None) -> str:
    """The mix stage's leakage check in one sentence."""
    if leak is None:
        return "Leakage check (training sets vs held-out test splits): not run on this run (mix/leakage.json missing)."
    checks = ", ".join(leak.get("checks") or [])
    if leak.get("leaks"):
        return f"Leakage check FAILED: {len(leak['leaks'])} leak(s) between training sets and held-out splits ({checks})."
    keys, over = "/".join(leak.get("group_keys") or []), len(leak.get("group_overlap") or [])
    group = ("" if not keys else f" Held out by whole groups ({keys})." if leak.get("grouped") else
             f" Split by session: {over} held-out real sessions share a {keys} with the training side "
             "(mix.group_by holds out whole groups).")
    return (f"Leakage check passed: {leak.get('train_sessions', 0)} training sessions against "
            f"{leak.get('test_sessions', 0)} held-out sessions, no shared id, no held-out session used as a few-shot "
            f"exemplar or shared scenario, no exact or near-duplicate text ({checks}). Held-out real sessions were "
            "split off before synthesis, so no stage that feeds training saw them." + group)


def training_summary(res: dict) -> tuple[str, str]:
    rows = []
    for v, e in res["registry"].items():
        hp = ", ".join(f"{k}={e.hyperparameters[k]}" for k in list(e.hyperparameters)[:6])
        mt = ", ".join(f"{k}={fmt(val) if not isinstance(val, dict | list) else '…'}" for k, val in list(e.metrics.items())[:6])
        rows.append([v, e.backend, e.model, e.adapter or "", e.data_hash or "", hp, mt])
    return table(["Variant", "Backend", "Model", "Adapter", "Data hash", "Hyperparameters", "Metrics"], rows)


def usage_summary(ctx: Context) -> tuple[str, str]:
    p = ctx.store.path("usage.json")
    data = json.loads(p.read_text()) if p.exists() else {"rows": [], "cost_usd": 0.0}
    rows = [[r["stage"], r["role"], int(r["calls"]), int(r["cached"]), int(r["prompt_tokens"]),
             int(r.get("prompt_tokens_evaluated", r["prompt_tokens"])),  # older usage.json files lack the counter
             int(r["completion_tokens"]), r["cost_usd"], int(r.get("failures", 0))] for r in data.get("rows", [])]
    return join(table(["Stage", "Role", "Calls", "Cached", "Prompt tokens", "Prompt tokens read by the model",
                       "Completion tokens", "Cost USD", "Failures"], rows),
                para(f"Total cost: ${data.get('cost_usd', 0.0):.4f} (prices from llm.prices; local models cost 0)."))


def config_section(ctx: Context, res: dict) -> tuple[str, str]:
    p = ctx.store.path("config.yaml")
    text = p.read_text() if p.exists() else yaml.safe_dump(ctx.cfg.resolved_dict(), sort_keys=False)
    ids = ", ".join(f"{v}={e.model}{' + ' + e.adapter if e.adapter else ''}" for v, e in res["registry"].items())
    roles = ", ".join(f"{r}={rc.model or ctx.cfg.endpoints[rc.endpoint].model}@{rc.endpoint}" for r, rc in ctx.cfg.roles.items())
    head = para(f"Counselor variants: {ids}. Roles: {roles}. Counselor system prompt is shared by every variant.")
    return join(head, details("Resolved config (runs/<name>/config.yaml)", pre(text, "yaml")))


# -- assembly -------------------------------------------------------------------------


def clean(x: Any) -> Any:
    """NaN -> None, so summary.json is strict JSON."""
    if isinstance(x, float) and math.isnan(x):
        return None
    if isinstance(x, dict):
        return {k: clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [clean(v) for v in x]
    return x


@dataclass
class Page:
    """What every section function reads: the run, its results and the verdict's data."""
    ctx: Context
    st: StageDir
    res: dict
    lik: dict | None
    dose: dict
    validated: bool | None
    verdict: str  # the verdict in detail (one paragraph)
    short: dict  # the short verdict (verdict.summary): compared, significant, cannot tell


def forest_panels(page: Page) -> list[tuple[str, list[dict]]]:
    """Likelihood first (one panel per split), then each judge metric when the judge is validated."""
    panels = []
    lik = [c for c in (page.lik or {}).get("comparisons") or [] if c.get("comparable", True)]
    for split in dict.fromkeys(c["split"] for c in lik):
        where = SPLIT_WORDS.get(split, split)
        panels.append((f"Held-out likelihood, {where} sessions: A - B in nats/token (below 0: A predicts better)",
                       [{"label": f"{c['a']} - {c['b']}", **c} for c in lik if c["split"] == split]))
    if page.validated is True:
        for m in page.res["metrics"]:
            rows = [{"label": f"{c['a']} - {c['b']}", **c} for c in page.res["comparisons"] if c["metric"] == m]
            panels.append((f"Judge {get_metric(m).label}: A - B, median difference (above 0: A scored higher)", rows))
    return panels


def s_forest(page: Page) -> list[dict]:
    path = plots.forest(forest_panels(page), page.st.path / "forest.png")
    judge = ("" if page.validated is True else " Judge differences are not plotted: the judge is not validated on "
             "this run (the tables below show them, without claims).")
    if path is None:
        return [section("Paired differences", *para("No paired difference to plot: neither the likelihood stage nor "
                                                      "a validated judge gave a comparison." + judge))]
    return [section("Paired differences", *join(figures({"forest": path}), para(
        "Each row is one paired comparison over the same held-out sessions or scenarios: the point is the "
        "estimate, the bar its 95% CI, the dashed line no difference. A CI that excludes 0 is still not a claim "
        "unless the point is filled (significant after the Holm correction of the whole family)." + judge)))]


def s_verdict(page: Page) -> list[dict]:
    return [section("Verdict", *verdict_lines(page.short))]


def s_verdict_detail(page: Page) -> list[dict]:
    return [section("Verdict in detail", *details("The verdict as one paragraph, every test named", para(page.verdict)))]


def s_results(page: Page) -> list[dict]:
    return [section("Results (paper-style table)", *main_table(page.res))]


def s_comparisons(page: Page) -> list[dict]:
    return [section("Paired comparisons", *comparisons_table(page.res, page.validated is True))]


def s_trust(page: Page) -> list[dict]:
    from . import trust

    return trust.report_sections(page.ctx, page.lik, beside_validation=people.experts_section)


def s_stats(page: Page) -> list[dict]:
    return [section("Per-metric statistics", *detail_table(page.res))]


def s_power(page: Page) -> list[dict]:
    return [section("Power: what this run could detect", *power_section(page.ctx, page.res, page.lik))]


def s_figures(page: Page) -> list[dict]:
    res = page.res
    figs = plots.make_figures(res["paired"], res["table"], res["variants"], res["metrics"], page.st.path)
    page.res["figures"] = sorted(figs)
    flat = plots.flat_metrics(res["paired"], res["metrics"])
    by_value: dict[float, list[str]] = {}
    for m, v in flat.items():
        by_value.setdefault(v, []).append(get_metric(m).label.lower())
    notes = [para(f"Every {' and every '.join(ms)} score is {fmt(v)} ({len(res['paired'])} scored conversations): "
                  "the judge could not tell the conversations apart, so the box, violin, scatter and bar plots of "
                  f"{'these metrics' if len(ms) > 1 else 'this metric'} would be flat lines and are left out.")
             for v, ms in by_value.items()]
    return [section("Figures", *join(*notes, *([figures(figs, res["metrics"])] if figs else [])))]


def s_dose(page: Page) -> list[dict]:
    parts = dose.report_section(page.dose, page.st.path, page.validated is True)
    return [section("Dose-response (real share)", *parts)]


def s_users(page: Page) -> list[dict]:
    users = users_section(page.ctx)
    return [section("Real users (kept conversations)", *users)] if users else []


def s_scoring(page: Page) -> list[dict]:
    return [section("Scoring quality", *scoring_quality(page.res))]


def s_examples(page: Page) -> list[dict]:
    return [section("Example conversations", *conversations(page.ctx, page.res))]


def s_dataset(page: Page) -> list[dict]:
    return [section("Dataset summary", *dataset_summary(page.ctx))]


def s_training(page: Page) -> list[dict]:
    return [section("Training summary (models.json)", *training_summary(page.res))]


def s_usage(page: Page) -> list[dict]:
    return [section("Cost and token use", *usage_summary(page.ctx))]


def s_config(page: Page) -> list[dict]:
    return [section("Configuration and model ids", *config_section(page.ctx, page.res))]


# The page, top to bottom (the headline comes before all of them). A new section is one
# function `(Page) -> list of section(...)` put in its place here.
def s_people(page: Page) -> list[dict]:
    """Pairwise win rates, human ratings and judge-human agreement (or why they are missing)."""
    return people.report_sections(page.ctx)


SECTIONS: list[Callable[[Page], list[dict]]] = [
    s_forest, s_verdict, s_results, s_comparisons, s_verdict_detail, s_trust, s_people, s_stats, s_power, s_figures, s_dose, s_users,
    s_scoring, s_examples, s_dataset, s_training, s_usage, s_config,
]


def build(ctx: Context, st: StageDir) -> dict:
    """Write report.md, report.html, the figures and summary.json; returns the short summary."""
    from . import trust

    from ..variants import contrast
    from .verdict import family, summary, verdict_paragraph

    res = load_results(ctx)
    res["alpha"] = ctx.cfg.evaluate.alpha
    validated = trust.judge_validated(ctx)  # None: calibration did not run -> not validated either
    # one Holm family for every claim: the tables show the same adjusted p as the verdict uses
    cal = trust.load_calibration(ctx)
    dose_res = dose.compute(ctx, res)  # its trend tests are claims too: adjusted in the same family
    res["comparisons"], lik = family(res["comparisons"], trust.load_likelihood(ctx), cal, res["alpha"], dose_res)
    verdict = verdict_paragraph(res["comparisons"], lik, cal, res["alpha"], dose_res)
    variants = {v.name: v for v in ctx.cfg.variant_list()}
    contrasts = {frozenset((a, b)): contrast(variants[a], variants[b])
                 for a, b in S.pairs([v for v in res["variants"] if v in variants])}
    short = summary(res["comparisons"], lik, cal, res["alpha"], dose_res, contrasts)
    if res["sensitivity"]["changed"] and validated is True:
        short["cannot_tell"].append(res["sensitivity"]["line"])
    page = Page(ctx, st, res, lik, dose_res, validated, verdict, short)
    lines = headline(res["comparisons"], lik, validated)
    sections = [s for make in SECTIONS for s in make(page)]
    title = f"hybridtune report: {ctx.cfg.name}"
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    quoted = "\n>\n".join(f"> **{x}**" if i == 0 else f"> {x}" for i, x in enumerate(lines))
    md = f"# {title}\n\n_{when}_\n\n{quoted}\n\n"
    md += "\n".join(f"## {s['title']}\n\n{s['markdown']}\n" for s in sections)
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    page_html = env.from_string(TEMPLATE.read_text(encoding="utf-8")).render(
        title=title, when=when, headline=lines,
        sections=[{**s, "html": markupsafe.Markup(s["html"])} for s in sections])
    st.write_text("report.md", md)
    st.write_text("report.html", page_html)
    st.write_summary(clean({"headline": lines, "variants": res["variants"], "metrics": res["metrics"],
                            "table": res["table"], "completion": res["completion"], "comparisons": res["comparisons"],
                            "likelihood_comparisons": (lik or {}).get("comparisons"),
                            "judge_validated": validated, "dose_response": dose_res,
                            "verdict": short, "failure_sensitivity": res["sensitivity"]}))
    return {"variants": res["variants"], "conversations": len(res["rows"]), "figures": res.get("figures", []),
            "judge_validated": validated, "report": str(st.file("report.html"))}


def describe(ctx: Context) -> str:
    """The headline and where the report is (printed by `hybridtune report` and at the end of `run`)."""
    return describe_run(ctx.store.root) or ""


def describe_run(run_dir: Path) -> str | None:
    """As `describe`, from the files of a run folder; None when its report was not written."""
    summary = run_dir / "report" / "summary.json"
    page = run_dir / "report" / "report.html"
    if not summary.is_file() or not page.is_file():
        return None
    lines = json.loads(summary.read_text()).get("headline") or []
    return "\n".join([*lines, f"report: {page}"])


def run(ctx: Context, st: StageDir) -> dict:
    return build(ctx, st)
