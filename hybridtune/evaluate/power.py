"""Power up front: the smallest difference each test of the verdict can detect at the
configured sizes, before any model is called (`hybridtune plan`, and `run --dry-run`).

Every claim of the verdict is one Holm family (judge pairs x metrics, plus likelihood pairs
x held-out splits), so each test is planned at the Bonferroni level alpha / family (the level
Holm's first step uses). The minimum detectable difference of a paired test at power 1 - beta:
(z[1 - alpha/(2 family)] + z[1 - beta]) * SD / sqrt(n * ARE) (normal approximation; ARE 0.955
for the Wilcoxon signed-rank test on normal data, 1 for the sign-flip test of the likelihood
difference). SD is the SD of the paired differences: from a pilot run's files
(`--pilot runs/<name>`) or stated (`evaluate.plan` / `--judge-sd`, `--nll-sd`). Besides, an
exact paired test cannot go below p = 2 / 2**n: a test whose n is too small to ever be
significant after Holm is named, whatever the SD. The judge gate gets the same treatment:
the fewest calibration items at which even a perfect judge clears the AUC threshold.

    hybridtune plan configs/cpu-study.yaml --pilot runs/cpu-study-reduced
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from ..store import read_jsonl_dicts
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


def pilot_sds(run_dir: Path) -> dict[str, Any]:
    """SDs of the paired differences in a finished (pilot) run: per judge metric over scenarios,
    and of the per-token NLL difference over held-out real sessions (pooled over pairs)."""
    out: dict[str, Any] = {"judge": {}, "nll": None, "source": str(run_dir)}
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
        nll = {(r["variant"], r["session_id"]): r["nll_sum"] / r["tokens"]
               for r in read_jsonl_dicts(nll_file) if r.get("tokens") and r.get("split") == "test_real"}
        vs = sorted({v for v, _ in nll})
        diffs = [[nll[(a, s)] - nll[(b, s)] for (v, s) in nll if v == a and (b, s) in nll] for a, b in S.pairs(vs)]
        out["nll"] = pooled_sd(diffs)
    return out


def pooled_sd(groups: list[list[float]]) -> float | None:
    """SD of paired differences pooled over the pairs of variants (each pair around its own mean,
    so a difference between pairs is not counted as noise); None with under 3 values in all."""
    groups = [g for g in groups if len(g) > 1]
    dof = sum(len(g) - 1 for g in groups)
    if sum(len(g) for g in groups) < 3 or dof < 1:
        return None
    return float(math.sqrt(sum(float(np.var(g, ddof=1)) * (len(g) - 1) for g in groups) / dof))


def heldout_real(cfg, run_dir: Path | None = None) -> tuple[int | None, str]:
    """(held-out real sessions the likelihood test will have, where the number comes from)."""
    from ..curate.holdout import heldout_real_ids, mix_seed
    from ..records import Session

    for d in [cfg.run_dir, *([run_dir] if run_dir else [])]:
        f = Path(d) / "real" / "sessions.jsonl"
        if f.exists():
            real = [Session.model_validate(x) for x in read_jsonl_dicts(f)]
            n = len(heldout_real_ids(real, cfg.mix, mix_seed(cfg)))
            return min(n, cfg.evaluate.trust.likelihood_sessions), f"{len(real)} ingested real sessions in {f}"
    lower = min(cfg.mix.min_test, cfg.evaluate.trust.likelihood_sessions)
    return (lower or None), (f"at least mix.min_test={cfg.mix.min_test}: real data not ingested yet (run the real "
                             "stage, or give --pilot, for the exact number)")


def plan(cfg, pilot: Path | None = None, judge_sd: float | None = None, nll_sd: float | None = None) -> dict:
    """The plan as data: family, per-test n, SD used and minimum detectable difference."""
    ev, pc = cfg.evaluate, cfg.evaluate.plan
    variants = [v.name for v in cfg.variant_list()]
    npairs = len(S.pairs(variants))
    metrics = list(ev.metrics)
    splits = ["test_real"] + (["test_synthetic"] if cfg.mix.test_fraction_synth > 0 else [])
    fam_judge, fam_lik = npairs * len(metrics), npairs * len(splits)
    family = fam_judge + fam_lik  # planned as if the judge is validated: the larger, conservative family
    sds = pilot_sds(pilot) if pilot else {"judge": {}, "nll": None}
    n_real, n_src = heldout_real(cfg, pilot)
    tests = []
    for m in metrics:
        sd = judge_sd or sds["judge"].get(m) or pc.judge_sd
        src = "--judge-sd" if judge_sd else ("pilot" if sds["judge"].get(m) else "evaluate.plan.judge_sd")
        n = ev.scenarios
        tests.append({"test": f"judge {m} (Wilcoxon, per pair)", "n": n, "sd": sd, "sd_from": src, "unit": "points",
                      "mde": mde(n, sd, family, ev.alpha, pc.power, WILCOXON_ARE),
                      "unreachable": S.reach_note(n, family, ev.alpha)})
    sd = nll_sd or sds["nll"] or pc.nll_sd
    src = "--nll-sd" if nll_sd else ("pilot" if sds["nll"] else "evaluate.plan.nll_sd")
    n = n_real
    t = {"test": "likelihood, held-out real (sign-flip, per pair)", "n": n, "n_from": n_src, "sd": sd, "sd_from": src,
         "unit": "nats/token", "mde": mde(n, sd, family, ev.alpha, pc.power) if n else None,
         "unreachable": S.reach_note(n, family, ev.alpha) if n else None}
    if pc.nll_target:
        t["target"] = pc.nll_target
        t["n_needed"] = n_for(pc.nll_target, sd, family, ev.alpha, pc.power)
    tests.append(t)
    tc = ev.trust
    gate = {"items": tc.calib_items, "threshold": tc.auc_threshold, "min_items": S.min_items(tc.auc_threshold),
            "unreachable": S.gate_reach_note(tc.calib_items, tc.auc_threshold)}
    return {"family": family, "family_judge": fam_judge, "family_likelihood": fam_lik, "alpha": ev.alpha,
            "power": pc.power, "tests": tests, "judge_gate": gate, "pilot": str(pilot) if pilot else None}


def lines(p: dict) -> list[str]:
    """The plan in plain words, one line per test."""
    out = [f"power plan: {p['family']} tests in the verdict's Holm family ({p['family_judge']} judge + "
           f"{p['family_likelihood']} likelihood), alpha {p['alpha']}, power {p['power']}"
           + (f", SDs from pilot {p['pilot']}" if p["pilot"] else "")]
    for t in p["tests"]:
        if t["n"] is None:
            out.append(f"  {t['test']}: n unknown ({t.get('n_from')}); SD {t['sd']:.3g} {t['unit']} ({t['sd_from']})"
                       + (f"; detecting {t['target']} needs n >= {t['n_needed']}" if t.get("target") else ""))
            continue
        line = (f"  {t['test']}: n={t['n']}{' (' + t['n_from'] + ')' if t.get('n_from', '').startswith('at least') else ''}, SD {t['sd']:.3g} {t['unit']} ({t['sd_from']}) -> smallest detectable "
                f"difference {t['mde']:.3g} {t['unit']}" if t["mde"] is not None else f"  {t['test']}: n={t['n']}")
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
