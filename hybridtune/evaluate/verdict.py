"""The report's plain-language verdict, generated from the numbers (never by an LLM).

Input: the judge comparisons of `stats.paired_comparisons` (items {"a","b","metric","n",
"estimate","ci","p","effect_size",...}, estimate = Hodges-Lehmann median difference a - b,
effect size = matched-pairs rank-biserial, positive when `a` scores higher), the likelihood
stage's summary.json (or None; estimate = token-weighted NLL difference) and the calibrate
stage's summary.json (or None).
Output: one short paragraph: for each pair of variants, whether the difference is
significant, its estimate with CI, and which measures support it. Every claim the paragraph
can make (judge comparisons when the judge is validated, likelihood comparisons) is one
Holm family (`family`), and a claim's direction is read from the estimate that belongs to
its test, never from a mean. Judge claims are withheld unless the judge was validated on
this run; tests that could not reach significance at their n are named.
`summary` gives the same verdict in a few short lines, as data a report page can place:
what was compared (with the question each pair answers), what is significant, and what this
run cannot tell (each reach note once per group, seeds that disagree, confounded pairs).

    verdict_paragraph(comparisons, likelihood=json.load(...), judge_validation=json.load(...))
    summary(comparisons, likelihood, judge_validation, contrasts={frozenset(("hybrid", "real")): "..."})["text"]
"""
from __future__ import annotations

import math
from typing import Any

from . import stats as S

SPLIT_WORDS = {"test_real": "held-out real", "test_synthetic": "held-out synthetic"}


def magnitude(r: float | None) -> str:
    """Conventional words for a rank-biserial |r| (0.1 small, 0.3 medium, 0.5 large)."""
    if r is None or (isinstance(r, float) and math.isnan(r)):
        return "unknown"
    a = abs(r)
    return "negligible" if a < 0.1 else "small" if a < 0.3 else "medium" if a < 0.5 else "large"


def _p(c: dict) -> str:
    """The adjusted p; '<= x' when the test sat at its smallest possible p (its floor)."""
    return S.p_text(c.get("p_adj"), bool(c.get("at_floor")))


def judge_status(judge_validation: dict | None) -> tuple[bool, str]:
    """(trust judge claims?, the sentence that says why)."""
    if not judge_validation or judge_validation.get("validated") is None:
        return False, ("The judge was not validated on this run (no calibration), so judge-based differences "
                       "are withheld; the judge scores stay visible in the tables.")
    why = str(judge_validation.get("verdict", "")).split(": ", 1)[-1]  # "empathy AUC 0.52 < 0.70"
    if not judge_validation["validated"]:
        return False, (f"The judge was NOT validated on this run ({why or 'AUC below threshold'}), "
                       "so judge-based differences are withheld; the judge scores stay visible in the tables.")
    return True, f"The judge passed validation on this run ({why})."


def _num(x: float | None, fmt: str = "+.2f") -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else format(x, fmt)


def _pair_key(a: str, b: str) -> frozenset:
    return frozenset((a, b))


def _orient(c: dict, a: str) -> dict:
    """The comparison seen from `a` (flips the sign when it was computed as b - a)."""
    if c["a"] == a:
        return c
    flip = {k: (-v if isinstance(v, int | float) and v is not None else v) for k, v in c.items()
            if k in ("mean_diff", "estimate", "effect_size")}
    ci = c.get("ci")
    return {**c, **flip, "a": c["b"], "b": c["a"], "ci": [-ci[1], -ci[0]] if ci else None}


def _ci_s(c: dict, fmt_: str = "+.2f") -> str:
    ci = c.get("ci")
    return f", CI [{format(ci[0], fmt_)}, {format(ci[1], fmt_)}]" if ci else ", no CI at this n"


def _judge_sentence(a: str, b: str, comps: list[dict]) -> tuple[str, str | None]:
    """(sentence, direction 'a'/'b'/'mixed'/None of significant judge differences)."""
    sig = [c for c in comps if c.get("significant")]
    if not sig:
        ns = ", ".join(sorted({c["metric"] for c in comps}))
        return f"the judge finds no significant difference ({ns}, n={max(c['n'] for c in comps)})", None
    parts, dirs = [], set()
    for c in sig:
        better = claim_direction(c, a, b)
        if better is None:
            parts.append(f"a significant {c['metric']} difference whose direction is unclear (median difference "
                         f"{_num(c.get('estimate'))} and rank-biserial r={_num(c.get('effect_size'))} disagree)")
            dirs.add("mixed")
            continue
        dirs.add(better)
        parts.append(f"{better} scores higher on {c['metric']} (median difference {_num(c.get('estimate'))} "
                     f"(Hodges-Lehmann) for {a} - {b}{_ci_s(c)}, {magnitude(c.get('effect_size'))} effect "
                     f"r={_num(c.get('effect_size'))}, adjusted p={_p(c)}, n={c['n']})")
    ns = sorted({c["metric"] for c in comps if not c.get("significant")})
    if ns:
        parts.append(f"no significant judge difference on {', '.join(ns)}")
    return "the judge says " + "; ".join(parts), (dirs.pop() if len(dirs) == 1 else "mixed")


def claim_direction(c: dict, a: str, b: str, lower_is_better: bool = False) -> str | None:
    """The variant a comparison favours, read from its test's own estimate (Hodges-Lehmann for
    the judge, the token-weighted difference for likelihood); for the judge the rank-biserial
    r (the signed-rank statistic) must agree, else None (no direction is claimed)."""
    est = c.get("estimate")
    if est is None or (isinstance(est, float) and math.isnan(est)) or est == 0:
        return None
    favours_a = (est < 0) if lower_is_better else (est > 0)
    r = c.get("effect_size")
    if r is not None and not (isinstance(r, float) and math.isnan(r)) and r != 0 and (r > 0) != (est > 0):
        return None
    return a if favours_a else b


def _likelihood_sentence(a: str, b: str, comps: list[dict]) -> tuple[str, str | None]:
    comps = sorted(comps, key=lambda c: list(SPLIT_WORDS).index(c["split"]) if c["split"] in SPLIT_WORDS else 9)
    parts, dirs = [], set()
    for c in comps:
        where = SPLIT_WORDS.get(c["split"], c["split"])
        if c.get("comparable") is False:
            parts.append(f"no likelihood comparison on {where} sessions ({c.get('note', 'not comparable')})")
            continue
        ci_s = _ci_s(c, "+.3f")
        better = claim_direction(c, a, b, lower_is_better=True) if c.get("significant") else None
        if better:
            dirs.add(better)
            parts.append(f"{better} predicts {where} counselor turns better ({_num(c.get('estimate'), '+.3f')} "
                         f"nats/token for {a} - {b}, token-weighted{ci_s}, adjusted p={_p(c)}, n={c['n']})")
        else:
            parts.append(f"no significant likelihood difference on {where} sessions "
                         f"({_num(c.get('estimate'), '+.3f')} nats/token{ci_s}, adjusted p={_p(c)}, n={c['n']})")
    direction = (dirs.pop() if len(dirs) == 1 else "mixed") if dirs else None
    return "; ".join(parts), direction


def trend_claims(trends: dict | None, trust_judge: bool) -> tuple[list[dict], list[dict]]:
    """(claimed, withheld) dose-response trend tests: likelihood trends (nll_*) are always claims,
    judge-score trends only when the judge is trusted."""
    claimed, withheld = [], []
    for m, t in ((trends or {}).get("metrics") or {}).items():
        (claimed if (m.startswith("nll_") or trust_judge) and t.get("p") is not None else withheld).append(t)
    return claimed, withheld


def family(comparisons: list[dict], likelihood: dict | None, judge_validation: dict | None,
           alpha: float = 0.05, trends: dict | None = None) -> tuple[list[dict], dict | None]:
    """(judge comparisons, likelihood results) with every claim the verdict can make adjusted as
    ONE Holm family: the judge comparisons when the judge is trusted, the comparable likelihood
    comparisons, and the dose-response trend tests of `trends` (dose.dose_response's result,
    adjusted in place). Comparisons are copied; idempotent (adjusting the same family again
    gives the same numbers), so tables, the dose section and the verdict built from it agree."""
    trust_judge, _ = judge_status(judge_validation)
    judge = [dict(c) for c in comparisons]
    lik = None if likelihood is None else {**likelihood,
                                           "comparisons": [dict(c) for c in likelihood.get("comparisons") or []]}
    claims = [c for c in (judge if trust_judge else []) if c.get("p") is not None]
    claims += [c for c in (lik or {}).get("comparisons", []) if c.get("p") is not None and c.get("comparable", True)]
    claimed_trends, withheld_trends = trend_claims(trends, trust_judge)
    S.adjust_family(claims + claimed_trends, alpha)
    for t in withheld_trends:  # not a claim: no adjusted p, never significant
        t.update(p_adj=None, significant=False, family=None)
    if not trust_judge:  # no judge claim is made: shown, not adjusted, never significant
        for c in judge:
            c["significant"] = False
    return judge, lik


def trend_sentence(trends: dict | None) -> str | None:
    """The dose-response trends the verdict claims, in words (None when there is no curve)."""
    ms = {m: t for m, t in ((trends or {}).get("metrics") or {}).items() if t.get("family")}
    if not ms:
        return None
    sig = [f"{m} (mean slope {t['slope']:+.3f} per unit of real share, adjusted p={_p(t)})"
           for m, t in ms.items() if t.get("significant")]
    return ("Dose-response: " + ("a significant trend with the real share in " + "; ".join(sig) if sig
                                 else "no significant trend with the real share") + f" ({len(ms)} trend tests, "
            "in the same family).")


def unreachable_sentence(comparisons: list[dict], likelihood: dict | None) -> str | None:
    """Plainly: which tests could never have been significant at their n, and why (each reason
    once, after the tests it holds for: at a small n it is the same for most of them)."""
    tests_by_note: dict[str, list[str]] = {}
    for c in [*comparisons, *((likelihood or {}).get("comparisons") or [])]:
        if c.get("unreachable"):
            what = c.get("metric") if c.get("metric") != "nll" else f"likelihood ({SPLIT_WORDS.get(c['split'], c['split'])})"
            tests_by_note.setdefault(c["unreachable"], []).append(f"{c['a']} vs {c['b']} {what}")
    if not tests_by_note:
        return None
    groups = [f"{', '.join(names)} ({len(names)} {'test' if len(names) == 1 else 'tests'}): {note}"
              for note, names in tests_by_note.items()]
    return ("Some tests could not have reached significance at this run's size, whatever the true difference: "
            + "; ".join(groups) + ". A 'no significant difference' there is no evidence of equality.")


def verdict_paragraph(comparisons: list[dict], likelihood: dict | None, judge_validation: dict | None,
                      alpha: float = 0.05, trends: dict | None = None) -> str:
    """One plain-language paragraph: per pair of variants, what is significant and by which
    measure, and the dose-response trends when the run has a curve."""
    trust_judge, judge_line = judge_status(judge_validation)
    comparisons, likelihood = family(comparisons, likelihood, judge_validation, alpha, trends)
    lik_comps = list((likelihood or {}).get("comparisons") or [])
    order: dict[frozenset, tuple[str, str]] = {}
    for c in [*comparisons, *lik_comps]:
        order.setdefault(_pair_key(c["a"], c["b"]), (c["a"], c["b"]))
    if not order:
        return ("No variant comparisons are available on this run: neither judge scores nor held-out likelihood "
                "results were produced, so no claim is made about which variant is better.")
    sentences = [judge_line] if comparisons else []
    n_claims = max((c.get("family", 0) for c in [*comparisons, *lik_comps, *trend_claims(trends, trust_judge)[0]]
                    if c.get("family")), default=0)
    if n_claims:
        sentences.append(f"All {n_claims} tests behind this verdict are Holm-corrected together as one family.")
    for key, (a, b) in order.items():
        jc = [_orient(c, a) for c in comparisons if _pair_key(c["a"], c["b"]) == key]
        lc = [_orient(c, a) for c in lik_comps if _pair_key(c["a"], c["b"]) == key]
        parts, support, dirs = [], [], set()
        if jc and trust_judge:
            s, d = _judge_sentence(a, b, jc)
            parts.append(s)
            if d:
                support.append("judge")
                dirs.add(d)
        elif jc:
            parts.append("judge-based differences withheld")
        if lc:
            s, d = _likelihood_sentence(a, b, lc)
            parts.append(s)
            if d:
                support.append("likelihood")
                dirs.add(d)
        else:
            parts.append("no likelihood comparison")
        if not support:
            tail = "No measure shows a significant difference."
        elif len(dirs) > 1 or "mixed" in dirs:
            tail = (f"Significant differences ({' and '.join(support)}) point in different directions, "
                    "so no overall winner.")
        else:
            tail = f"Supported by: {' and '.join(support)}."
        sentences.append(f"{a} vs {b}: {'; '.join(parts)}. {tail}")
    trend = trend_sentence(trends)
    if trend:
        sentences.append(trend)
    reach = unreachable_sentence(comparisons if trust_judge else [], likelihood)
    if reach:
        sentences.append(reach)
    skipped = (likelihood or {}).get("skipped") or {}
    if skipped:
        sentences.append("Likelihood was not available for " + ", ".join(sorted(skipped)) + " (its backend returns no "
                         "prompt log-probabilities).")
    if likelihood is None:
        sentences.append("The held-out likelihood stage did not run.")
    return " ".join(sentences)


def support_table(comparisons: list[dict], likelihood: dict | None,
                  judge_validation: dict | None, alpha: float = 0.05) -> list[dict[str, Any]]:
    """The same verdict as rows (pair, judge, likelihood, supported_by) for a report table."""
    trust_judge, _ = judge_status(judge_validation)
    comparisons, likelihood = family(comparisons, likelihood, judge_validation, alpha)
    lik = list((likelihood or {}).get("comparisons") or [])
    keys: dict[frozenset, tuple[str, str]] = {}
    for c in [*comparisons, *lik]:
        keys.setdefault(_pair_key(c["a"], c["b"]), (c["a"], c["b"]))
    rows = []
    for key, (a, b) in keys.items():
        js = any(c.get("significant") for c in comparisons if _pair_key(c["a"], c["b"]) == key)
        ls = any(c.get("significant") for c in lik if _pair_key(c["a"], c["b"]) == key)
        rows.append({"pair": f"{a} vs {b}",
                     "judge": ("significant" if js else "not significant") if trust_judge else "withheld",
                     "likelihood": "significant" if ls else ("not significant" if lik else "n/a"),
                     "supported_by": [m for m, ok in (("judge", js and trust_judge), ("likelihood", ls)) if ok]})
    return rows


def _claim_line(c: dict, lower_is_better: bool) -> str | None:
    """One significant claim in a few words (None when its direction is unclear)."""
    better = claim_direction(c, c["a"], c["b"], lower_is_better)
    if better is None:
        return None
    worse = c["b"] if better == c["a"] else c["a"]
    if c.get("metric") == "nll":
        what = f"predicts {SPLIT_WORDS.get(c['split'], c['split'])} counselor turns better than {worse}"
        est = f"{_num(c.get('estimate'), '+.3f')} nats/token for {c['a']} - {c['b']}"
    else:
        what = f"scores higher on {c['metric']} than {worse}"
        est = f"median difference {_num(c.get('estimate'))} for {c['a']} - {c['b']}"
    return f"{better} {what} ({est}, adjusted p {_p(c)}, n={c['n']})"


def summary(comparisons: list[dict], likelihood: dict | None, judge_validation: dict | None, alpha: float = 0.05,
            trends: dict | None = None, contrasts: dict[frozenset, str] | None = None) -> dict[str, Any]:
    """The verdict in a few short lines, as data a report page can place: `compared` (each pair
    with the question it answers, `contrasts` from variants.contrast), `significant` (each
    claim once), `cannot_tell` (withheld judge claims, each reach note once with the tests it
    holds for, pairs whose difference has no single cause), `family`, and `text`."""
    trust_judge, judge_line = judge_status(judge_validation)
    judge, lik = family(comparisons, likelihood, judge_validation, alpha, trends)
    lik_comps = [c for c in (lik or {}).get("comparisons") or [] if c.get("comparable", True)]
    pairs: dict[frozenset, tuple[str, str]] = {}
    for c in [*judge, *lik_comps]:
        pairs.setdefault(_pair_key(c["a"], c["b"]), (c["a"], c["b"]))
    contrasts = contrasts or {}
    compared = [f"{a} vs {b}" + (f": {contrasts[k]}" if k in contrasts else "") for k, (a, b) in pairs.items()]
    claims = [c for c in (judge if trust_judge else []) if c.get("significant")]
    significant = [x for c in claims if (x := _claim_line(c, False))]
    significant += [x for c in lik_comps if c.get("significant") and (x := _claim_line(c, True))]
    significant += [f"dose-response trend in {m} (mean slope {t['slope']:+.3f} per unit of real share, adjusted p "
                    f"{_p(t)})" for m, t in ((trends or {}).get("metrics") or {}).items() if t.get("significant")]
    cannot = [] if trust_judge or not judge else [judge_line]
    reach: dict[str, list[str]] = {}
    for c in [*(judge if trust_judge else []), *lik_comps]:
        if c.get("unreachable"):
            what = c["metric"] if c.get("metric", "nll") != "nll" else f"likelihood ({SPLIT_WORDS.get(c['split'], c['split'])})"
            reach.setdefault(c["unreachable"], []).append(f"{c['a']} vs {c['b']} {what}")
    for note, names in reach.items():
        head, _, why = note.partition(": ")  # "could not reach significance at n=6 non-zero pairs", reason
        cannot.append(f"{len(names)} {'test' if len(names) == 1 else 'tests'} ({', '.join(names[:3])}"
                      f"{', ...' if len(names) > 3 else ''}) could not have reached significance "
                      f"{head.removeprefix('could not reach significance ')}: {why}")
    cannot += [f"{a} vs {b}: {contrasts[k].split(': ', 1)[-1]}" for k, (a, b) in pairs.items()
               if "no single cause" in contrasts.get(k, "")]
    for c in [*(judge if trust_judge else []), *lik_comps]:  # train.seeds: training noise larger than the effect
        est = [e for e in c.get("seed_estimates") or [] if e]
        if len(est) > 1 and min(est) < 0 < max(est):
            what = c["metric"] if c.get("metric", "nll") != "nll" else f"likelihood ({SPLIT_WORDS.get(c['split'], c['split'])})"
            cannot.append(f"{c['a']} vs {c['b']} {what}: the training seeds disagree in direction "
                          f"({', '.join(f'{e:+.3g}' for e in est)})")
    fam = max((c.get("family") or 0 for c in [*judge, *lik_comps]), default=0)
    text = "\n".join([f"Compared ({fam} tests, Holm-corrected as one family at alpha {alpha}):",
                      *(f"- {x}" for x in compared), "Significant:",
                      *(f"- {x}" for x in significant or ["nothing"]), "What this run cannot tell:",
                      *(f"- {x}" for x in cannot or ["nothing beyond the tests above"])])
    return {"compared": compared, "significant": significant, "cannot_tell": cannot, "family": fam, "text": text}
