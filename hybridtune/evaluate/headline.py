"""The report's headline: which variant is better and whether to trust it, in one or two lines.

Input: the verdict's data as the report has it after `verdict.family` (judge comparisons, the
likelihood summary with Holm-adjusted comparisons) and whether the judge was validated
(True/False, None when calibration did not run). Output: lines of plain text, e.g.

    No winner: judge not validated; n=3 cannot reach significance
    Held-out likelihood, A - B in nats/token (lower is better), estimates not claims: real - base -0.29 [-0.33, -0.27]

or, with claims, "hybrid beats base on held-out likelihood (real sessions); ...". The full
reasoning stays in the verdict paragraph (evaluate/verdict.py); this reads the same numbers.

    lines = headline(comparisons, likelihood, validated)
"""
from __future__ import annotations

from .verdict import SPLIT_WORDS, claim_direction

MAX_ITEMS = 3  # claims or estimates named in a line; the rest are counted


def _tests(comparisons: list[dict], likelihood: dict | None, validated: bool | None) -> list[dict]:
    """The tests that can be claims: comparable likelihood comparisons, judge ones when validated."""
    lik = [{**c, "measure": f"held-out likelihood ({SPLIT_WORDS.get(c['split'], c['split'])} sessions)"}
           for c in (likelihood or {}).get("comparisons") or [] if c.get("comparable", True) and c.get("p") is not None]
    judge = [{**c, "measure": f"judge {c['metric']}"} for c in comparisons if c.get("p") is not None]
    return lik + (judge if validated is True else [])


def _claims(tests: list[dict]) -> list[tuple[str, str, str]]:
    """(winner, loser, measure) of each significant test with a clear direction."""
    out = []
    for c in tests:
        if not c.get("significant"):
            continue
        win = claim_direction(c, c["a"], c["b"], lower_is_better=c.get("metric", "nll") == "nll")
        if win:
            out.append((win, c["b"] if win == c["a"] else c["a"], c["measure"]))
    return out


def _listed(items: list[str]) -> str:
    more = len(items) - MAX_ITEMS
    return "; ".join(items[:MAX_ITEMS]) + (f"; and {more} more" if more > 0 else "")


def _no_winner(tests: list[dict], validated: bool | None, likelihood: dict | None) -> str:
    reasons = []
    if validated is not True:
        reasons.append("judge not validated" + ("" if validated is False else " (calibration did not run)"))
    if not tests:
        reasons.append("no likelihood comparison" if likelihood is None or not likelihood.get("comparisons")
                       else "no comparable test")
    elif all(c.get("unreachable") for c in tests):
        ns = sorted({c["n"] for c in tests})
        reasons.append(f"n={'/'.join(map(str, ns))} cannot reach significance")
    else:
        blocked = sum(1 for c in tests if c.get("unreachable"))
        reasons.append(f"no significant difference in {len(tests)} tests"
                       + (f" ({blocked} of them could not reach significance at their n)" if blocked else ""))
    return "No winner: " + "; ".join(reasons)


def _estimates(likelihood: dict | None) -> str | None:
    """The judge-free differences as estimates, so a CI that excludes 0 does not read as a claim."""
    comps = [c for c in (likelihood or {}).get("comparisons") or []
             if c.get("comparable", True) and c.get("estimate") is not None and c.get("split") == "test_real"]
    if not comps:
        return None
    items = [f"{c['a']} - {c['b']} {c['estimate']:+.2f}"
             + (f" [{c['ci'][0]:+.2f}, {c['ci'][1]:+.2f}]" if c.get("ci") else "") for c in comps]
    return ("Held-out likelihood on real sessions, A - B in nats/token (lower is better), estimates not claims: "
            + _listed(items))


def headline(comparisons: list[dict], likelihood: dict | None, validated: bool | None) -> list[str]:
    """One or two lines: the claims (winner, loser, measure), or "No winner: <why>" and the estimates."""
    tests = _tests(comparisons, likelihood, validated)
    claims = _claims(tests)
    if claims:
        pairs: dict[frozenset, set[str]] = {}
        for win, lose, _ in claims:
            pairs.setdefault(frozenset((win, lose)), set()).add(win)
        mixed = [" vs ".join(sorted(p)) for p, wins in pairs.items() if len(wins) > 1]
        first = _listed([f"{w} beats {lo} on {m}" for w, lo, m in claims])
        lines = [first + " (significant after Holm)"]
        if mixed:
            lines.append(f"No overall winner for {', '.join(mixed)}: significant differences point both ways")
        elif validated is not True:
            lines.append("Judge not validated: its scores make no claim")
        return lines
    lines = [_no_winner(tests, validated, likelihood)]
    est = _estimates(likelihood)
    return lines + ([est] if est else [])
