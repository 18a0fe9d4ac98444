"""Power up front: the smallest difference each test of the verdict can detect at the
configured sizes, before any model is called (`hybridtune plan`, and `run --dry-run`).

Every claim of the verdict is one Holm family (judge pairs x metrics, likelihood pairs x
held-out splits, and the dose-response trend tests when the variants form a curve), so each
test is planned at the level Holm's first step uses, alpha / family. Each test is planned with
its own statistic: the judge's Wilcoxon signed-rank test by simulating the exact test up to
50 pairs (`wilcoxon_mde`; the normal approximation is far off at small n) and above by the
normal approximation with its ARE (0.955 on normal data); the likelihood's sign-flip test of
the token-weighted mean by the spread of that weighted mean (`weighted_spread`: unequal token
counts shrink the effective n), and with a pilot by simulating the test itself on the
pilot's differences and token counts (`simulated_mde`). tests/evaluate/test_claims.py checks
both plans against simulations of the real tests. The
trend tests have no formula here: they are counted in the family and named, not sized. SDs
come from a pilot run's files (`--pilot runs/<name>`) or are stated (`evaluate.plan` /
`--judge-sd`, `--nll-sd`). A test whose n (or resampling floor 2/(R+1)) can never reach
significance after Holm over the family's floors is named, whatever the SD. The judge gate
gets the same treatment: the fewest calibration items at which a perfect judge clears it.

    hybridtune plan configs/cpu-study.yaml --pilot runs/cpu-study-reduced
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..store import read_jsonl_dicts
from ..variants import analysed
from . import stats as S

WILCOXON_ARE = 3 / math.pi  # asymptotic relative efficiency vs the t test on normal data (0.955)


def mde(n: int, sd: float, family: int, alpha: float, power: float = 0.8, are: float = 1.0) -> float | None:
    """Minimum detectable difference of a two-sided paired test in a Holm family (None for n < 2)."""
    if n < 2 or sd is None:
        return None
    z = stats.norm.ppf(1 - alpha / (2 * max(family, 1))) + stats.norm.ppf(power)
    return float(z * sd / math.sqrt(n * are))


def n_for(delta: float, sd: float, family: int, alpha: float, power: float = 0.8, are: float = 1.0) -> int:
    """Pairs needed to detect `delta` (the inverse of `mde`), at least the exact-test floor."""
    z = stats.norm.ppf(1 - alpha / (2 * max(family, 1))) + stats.norm.ppf(power)
    return max(math.ceil((z * sd / delta) ** 2 / are), S.min_pairs(family, alpha))


EXACT_MAX = 50  # scipy's signed-rank test is exact up to 50 pairs (no ties), normal above


def wilcoxon_power(n: int, sd: float, delta: float, level: float, sims: int = 4000, seed: int = 0) -> float:
    """Power of the exact two-sided signed-rank test at `level` for n normal paired differences
    with mean delta and SD sd, by simulation against the exact null distribution (common random
    numbers, so monotone in delta)."""
    cdf = S._signed_rank_cdf(n)
    ok = np.nonzero(cdf < level / 2 * (1 - 1e-12))[0]  # reject when min(W+, W-) <= c: P = 2 cdf[c] < level
    if not len(ok):
        return 0.0
    c = int(ok[-1])
    z = np.random.default_rng(seed).standard_normal((sims, n))
    d = delta + sd * z
    ranks = stats.rankdata(np.abs(d), axis=1)
    w_plus = (ranks * (d > 0)).sum(1)
    w_min = np.minimum(w_plus, n * (n + 1) / 2 - w_plus)
    return float(np.mean(w_min <= c))


def wilcoxon_mde(n: int, sd: float, family: int, alpha: float, power: float = 0.8) -> float | None:
    """Smallest difference the judge's signed-rank test detects at `power` at Holm's first level:
    up to EXACT_MAX pairs by simulating the exact test (the normal formula is far off there: at
    n=10 in a family of 24 only 'every pair on one side' can be significant), above by the
    normal approximation with the test's ARE. None when no difference reaches the power."""
    if n < 2 or sd is None:
        return None
    if n > EXACT_MAX:
        return mde(n, sd, family, alpha, power, WILCOXON_ARE)
    level = alpha / max(family, 1)
    lo, hi = 0.0, sd
    while wilcoxon_power(n, sd, hi, level) < power:
        hi *= 2
        if hi > 1e3 * sd:
            return None
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if wilcoxon_power(n, sd, mid, level) < power else (lo, mid)
    return hi


def pilot_sds(run_dir: Path) -> dict[str, Any]:
    """SDs of the paired differences in a finished (pilot) run: per judge metric over scenarios,
    and for the likelihood the spread of its own statistic (`weighted_spread`), pooled over pairs."""
    out: dict[str, Any] = {"judge": {}, "nll": None, "nll_k": None, "source": str(run_dir)}
    rows = list(read_jsonl_dicts(run_dir / "score" / "session_scores.jsonl")) if (run_dir / "score").exists() else []
    variants = sorted({r["variant"] for r in rows})
    metrics = sorted({k for r in rows for k, v in r.items() if isinstance(v, int | float) and k not in ("words",)
                      and not isinstance(v, bool)})
    by = {(r["variant"], r["scenario_id"]): r for r in rows}
    for m in metrics:
        diffs = [[by[(a, s)][m] - by[(b, s)][m] for (v, s) in by if v == a and (b, s) in by
                  and by[(a, s)].get(m) is not None and by[(b, s)].get(m) is not None] for a, b in S.pairs(variants)]
        if (sd := pooled_sd(diffs)) is not None:
            out["judge"][m] = sd
    nll_file = run_dir / "likelihood" / "sessions.jsonl"
    if nll_file.exists():
        nll = {(r["variant"], r["session_id"]): (r["nll_sum"], r["tokens"])
               for r in read_jsonl_dicts(nll_file) if r.get("tokens") and r.get("split") == "test_real"}
        vs = sorted({v for v, _ in nll})
        per_pair = []  # (per-token differences, token counts) of each pair over the sessions both scored
        for a, b in S.pairs(vs):
            both = [s for (v, s) in nll if v == a and (b, s) in nll]
            if len(both) >= 3:
                per_pair.append((np.array([(nll[(a, s)][0] - nll[(b, s)][0]) / nll[(a, s)][1] for s in both]),
                                 np.array([nll[(a, s)][1] for s in both], dtype=float)))
        spreads = [weighted_spread(list(d), list(w)) for d, w in per_pair]
        if spreads:
            out["nll"] = float(math.sqrt(np.mean([sd ** 2 for sd, _ in spreads])))
            out["nll_k"] = float(np.mean([k for _, k in spreads]))
        # each pair's differences around its own weighted mean, pooled: what the simulation draws from
        resid = [float(x) for d, w in per_pair for x in d - (w * d).sum() / w.sum()]
        weights = [float(x) for _, w in per_pair for x in w]
        out["nll_pilot"] = {"resid": resid, "weights": weights} if resid else None
    return out


def simulated_power(resid: np.ndarray, weights: np.ndarray, delta: float, n: int, level: float, sims: int = 1000,
                    flips: int = 2000, seed: int = 0) -> float:
    """Power of the likelihood's sign-flip test of the token-weighted mean at a true difference
    `delta`, by simulation: n sessions drawn from a pilot's (residual, token count) pairs, the
    residuals shifted by delta, each data set tested against `flips` random sign patterns at
    `level` (the same statistic and null as likelihood.sign_flip_p), half the data sets with
    the difference of each sign. Common random numbers, so
    the power is monotone in delta for the search in `simulated_mde`."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(resid), (sims, n))
    eps = rng.choice([-1.0, 1.0], (flips, n))
    sign = np.where(np.arange(sims) % 2, -1.0, 1.0)[:, None]  # either direction: residuals need not be symmetric
    x = weights[idx] * (sign * delta + resid[idx])  # w_i d_i per simulated session
    t_obs = np.abs(x.sum(1))
    t_null = np.abs(x @ eps.T)
    p = (1 + (t_null >= t_obs[:, None] * (1 - 1e-12)).sum(1)) / (flips + 1)
    return float(np.mean(p < level))  # as the verdict: significant when p x family < alpha


def simulated_mde(resid: list[float], weights: list[float], n: int, family: int, alpha: float,
                  power: float = 0.8) -> float:
    """The smallest difference at which `simulated_power` reaches `power`, at Holm's first level
    alpha / family (bisection)."""
    r, w = np.asarray(resid, dtype=float), np.asarray(weights, dtype=float)
    level = alpha / max(family, 1)
    lo, hi = 0.0, max(float(np.std(r)), 1e-9)
    while simulated_power(r, w, hi, n, level) < power and hi < 1e6:
        hi *= 2
    for _ in range(20):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if simulated_power(r, w, mid, n, level) < power else (lo, mid)
    return hi


def weighted_spread(d: list[float], w: list[float]) -> tuple[float, float] | None:
    """(s, k) of the likelihood test's statistic T = sum(w d) / sum(w) over n sessions: its SE is
    s / sqrt(n) (s^2 = n sum(w^2 r^2) / sum(w)^2, r = d - T), and k = n sum(w^2) / sum(w)^2 >= 1
    is how much unequal token counts cost (n / k sessions of equal weight would do as well).
    None under 3 sessions."""
    if len(d) < 3:
        return None
    x, wt = np.asarray(d, dtype=float), np.asarray(w, dtype=float)
    t = float((wt * x).sum() / wt.sum())
    n, sw = len(x), float(wt.sum())
    return float(math.sqrt(n * float((wt ** 2 * (x - t) ** 2).sum()) / sw ** 2)), float(n * (wt ** 2).sum() / sw ** 2)


def pooled_sd(groups: list[list[float]]) -> float | None:
    """SD of paired differences pooled over the pairs of variants (each pair around its own mean,
    so a difference between pairs is not counted as noise); None with under 3 values in all."""
    groups = [g for g in groups if len(g) > 1]
    dof = sum(len(g) - 1 for g in groups)
    if sum(len(g) for g in groups) < 3 or dof < 1:
        return None
    return float(math.sqrt(sum(float(np.var(g, ddof=1)) * (len(g) - 1) for g in groups) / dof))


def heldout_real(cfg, run_dir: Path | None = None) -> tuple[int | None, str]:
    """(held-out real sessions the likelihood test will have, where the number comes from): the
    `split` stage's artefact of this run or the pilot, when it was made with this config."""
    from ..split import FILE, load, split_config

    for d in [cfg.run_dir, *([run_dir] if run_dir else [])]:
        f = Path(d) / "split" / FILE
        if f.exists():
            sp = load(f)
            if sp.config == split_config(cfg):
                return (min(len(sp.heldout), cfg.evaluate.trust.likelihood_sessions),
                        f"the held-out split of {sp.real_sessions} ingested real sessions in {f}")
    lower = min(cfg.mix.min_test, cfg.evaluate.trust.likelihood_sessions)
    return (lower or None), (f"at least mix.min_test={cfg.mix.min_test}: no held-out split made with this config yet "
                             "(run the real and split stages, or give --pilot, for the exact number)")


def trend_tests(cfg, metrics: list[str], splits: list[str]) -> list[str]:
    """The dose-response trend tests the verdict's family will hold: one per judge metric and
    held-out split when the declared variants form a curve (dose.curve_points), else none."""
    from .dose import curve_points

    return [*metrics, *(f"nll_{sp}" for sp in splits)] if curve_points(cfg.variant_list()) else []


def plan(cfg, pilot: Path | None = None, judge_sd: float | None = None, nll_sd: float | None = None) -> dict:
    """The plan as data: the verdict's whole family (judge pairs x metrics, likelihood pairs x
    splits, dose trends), per-test n, SD used and minimum detectable difference."""
    ev, pc = cfg.evaluate, cfg.evaluate.plan
    variants = [v.name for v in analysed(cfg.variant_list())]  # a seed's models pool into their variant
    npairs = len(S.pairs(variants))
    metrics = list(ev.metrics)
    splits = ["test_real"] + (["test_synthetic"] if cfg.mix.test_fraction_synth > 0 else [])
    trends = trend_tests(cfg, metrics, splits)
    fam_judge, fam_lik = npairs * len(metrics), npairs * len(splits)
    family = fam_judge + fam_lik + len(trends)  # planned as if the judge is validated: the larger, conservative family
    sds = pilot_sds(pilot) if pilot else {"judge": {}, "nll": None, "nll_k": None, "nll_pilot": None}
    n_real, n_src = heldout_real(cfg, pilot)
    tests = []
    for m in metrics:
        sd = judge_sd or sds["judge"].get(m) or pc.judge_sd
        src = "--judge-sd" if judge_sd else ("pilot" if sds["judge"].get(m) else "evaluate.plan.judge_sd")
        n = ev.scenarios
        tests.append({"test": f"judge {m} (Wilcoxon, per pair)", "n": n, "sd": sd, "sd_from": src, "unit": "points",
                      "mde": wilcoxon_mde(n, sd, family, ev.alpha, pc.power), "floor": S.p_floor(n),
                      "copies": npairs})
    sd = nll_sd or sds["nll"] or pc.nll_sd
    k = (sds.get("nll_k") or 1.0) if not nll_sd else 1.0
    src = "--nll-sd" if nll_sd else ("pilot" if sds["nll"] else "evaluate.plan.nll_sd")
    n = n_real
    from .likelihood import sign_flip_exact

    floor = S.resampling_floor(n, ev.bootstrap_resamples, sign_flip_exact(n, ev.bootstrap_resamples)) if n else None
    sim = sds.get("nll_pilot") if not nll_sd else None
    if sim and n:  # the pilot's own differences and token counts through the test itself
        src += " (power simulated: the sign-flip test on the pilot's differences and token counts)"
        est = simulated_mde(sim["resid"], sim["weights"], n, family, ev.alpha, pc.power)
    else:
        est = mde(n, sd, family, ev.alpha, pc.power) if n else None
    t = {"test": "likelihood, held-out real (sign-flip of the token-weighted mean, per pair)", "n": n, "n_from": n_src,
         "sd": sd, "sd_from": src, "k": k, "unit": "nats/token", "floor": floor, "copies": fam_lik, "mde": est}
    if pc.nll_target:
        t["target"] = pc.nll_target
        t["n_needed"] = n_for(pc.nll_target, sd, family, ev.alpha, pc.power)
    tests.append(t)
    for m in trends:
        tests.append({"test": f"dose-response trend {m} (within-unit permutation)", "n": n if m.startswith("nll_")
                      else ev.scenarios, "sd": None, "unit": "per unit of real share", "mde": None,
                      "floor": 1.0 / (ev.bootstrap_resamples + 1), "copies": 1,
                      "note": "power not planned (no formula here, and no simulation yet)"})
    _reach(tests, family, ev.alpha, ev.bootstrap_resamples)
    tc = ev.trust
    gate = {"items": tc.calib_items, "threshold": tc.auc_threshold, "min_items": S.min_items(tc.auc_threshold),
            "unreachable": S.gate_reach_note(tc.calib_items, tc.auc_threshold)}
    return {"family": family, "family_judge": fam_judge, "family_likelihood": fam_lik, "family_trend": len(trends),
            "alpha": ev.alpha, "power": pc.power, "tests": tests, "judge_gate": gate,
            "pilot": str(pilot) if pilot else None}


def _reach(tests: list[dict], family: int, alpha: float, resamples: int) -> None:
    """Each planned test's reach note, by Holm over the whole family's floors (a test stands for
    its `copies`: one per pair, or per pair and split), as the report computes it after the run."""
    floors = [1.0 if t["floor"] is None else t["floor"] for t in tests for _ in range(t["copies"])]
    best = S.holm_best(floors)
    at = 0
    for t in tests:
        t["unreachable"] = (None if t["n"] is None or not t["copies"] else  # no copies: no pair to compare
                            S.reach_note(t["n"], family, alpha, t["floor"], best[at], resamples))
        at += t["copies"]


def lines(p: dict) -> list[str]:
    """The plan in plain words, one line per test."""
    out = [f"power plan: {p['family']} tests in the verdict's Holm family ({p['family_judge']} judge + "
           f"{p['family_likelihood']} likelihood + {p.get('family_trend', 0)} dose-response trend), alpha "
           f"{p['alpha']}, power {p['power']}, each planned at Holm's first level alpha/{p['family']}"
           + (f", SDs from pilot {p['pilot']}" if p["pilot"] else "")]
    for t in p["tests"]:
        if t["n"] is None:
            out.append(f"  {t['test']}: n unknown ({t.get('n_from')}); SD {t['sd']:.3g} {t['unit']} ({t['sd_from']})"
                       + (f"; detecting {t['target']} needs n >= {t['n_needed']}" if t.get("target") else ""))
            continue
        weights = (f", unequal token counts x{t['k']:.2f} (effective n {t['n'] / t['k']:.0f})"
                   if t.get("k", 1.0) > 1.005 else "")
        line = (f"  {t['test']}: n={t['n']}{' (' + t['n_from'] + ')' if t.get('n_from', '').startswith('at least') else ''}, SD {t['sd']:.3g} {t['unit']} ({t['sd_from']}){weights} -> smallest detectable "
                f"difference {t['mde']:.3g} {t['unit']}" if t["mde"] is not None else
                f"  {t['test']}: n={t['n']}" + (f"; {t['note']}" if t.get("note") else ""))
        if t.get("target"):
            ok = t["mde"] is not None and t["mde"] <= t["target"]
            line += (f"; target {t['target']} {'reachable' if ok else 'NOT reachable'} (needs n >= {t['n_needed']})")
        if t["unreachable"]:
            line += f"; CANNOT be significant: {t['unreachable']}"
        out.append(line)
    g = p["judge_gate"]
    out.append(f"  judge gate: {g['items']} calibration items, threshold {g['threshold']}: "
               + (f"CANNOT pass: {g['unreachable']}" if g["unreachable"] else
                  f"passable (a perfect judge needs >= {g['min_items']} items)"))
    return out
