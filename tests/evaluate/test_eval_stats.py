"""Statistics against hand-checked values: Wilcoxon, rank-biserial, Holm, bootstrap, alpha."""
from __future__ import annotations

import math

import pytest

from hybridtune.evaluate import stats as S


def test_wilcoxon_all_positive_exact_p():
    # 8 positive differences: W- = 0, exact two-sided p = 2 / 2**8
    assert S.wilcoxon_p([1, 2, 3, 4, 5, 6, 7, 8], [0] * 8) == pytest.approx(2 / 256)
    assert S.rank_biserial([1, 2, 3, 4, 5, 6, 7, 8], [0] * 8) == 1.0


def test_rank_biserial_hand_checked():
    # d = 1, -2, 3, 4, -5, 6: ranks of |d| = 1..6; W+ = 1+3+4+6 = 14, W- = 2+5 = 7; r = 7/21
    assert S.rank_biserial([1, -2, 3, 4, -5, 6], [0] * 6) == pytest.approx(1 / 3)
    assert S.rank_biserial([0, -2, 3], [0, 0, 0]) == pytest.approx((2 - 1) / 3)  # zero dropped, ranks 1, 2


def test_all_ties_are_not_significant():
    assert S.wilcoxon_p([5, 5, 5], [5, 5, 5]) == 1.0
    assert S.rank_biserial([5, 5], [5, 5]) == 0.0


def test_holm_hand_checked():
    # sorted 0.01*3 = 0.03; 0.03*2 = 0.06; 0.04*1 = 0.04 -> monotone 0.06
    assert S.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    out = S.holm([0.5, float("nan")])
    assert out[0] == 0.5 and math.isnan(out[1])


def test_describe_and_bootstrap_ci():
    d = S.describe(list(range(1, 11)))
    assert (d["n"], d["mean"], d["median"], d["min"], d["max"]) == (10, 5.5, 5.5, 1.0, 10.0)
    assert d["std"] == pytest.approx(3.02765, abs=1e-4)
    # normal approximation: 5.5 +- 1.96 * 2.872/sqrt(10) = [3.72, 7.28]
    assert d["ci_low"] == pytest.approx(3.72, abs=0.25) and d["ci_high"] == pytest.approx(7.28, abs=0.25)
    assert d["ci_note"] is None
    const = S.describe([7, 7, 7])  # no spread: no interval (a zero-width one would claim certainty), and a note
    assert const["ci_low"] is None and const["ci_high"] is None and "n=3" in const["ci_note"]
    assert "no spread" in S.describe([7.0] * 12)["ci_note"]
    assert S.describe([])["n"] == 0


def test_paired_comparisons_shape_and_pairing():
    rows = []
    for i in range(10):
        rows += [{"variant": "base", "scenario_id": f"s{i}", "empathy": 5.0, "relevance": 6.0},
                 {"variant": "hybrid", "scenario_id": f"s{i}", "empathy": 7.0 + (i % 2), "relevance": 6.0}]
    rows.append({"variant": "hybrid", "scenario_id": "extra", "empathy": 1.0, "relevance": 1.0})  # unpaired: ignored
    comps = S.paired_comparisons(rows, ["base", "hybrid"], ["empathy", "relevance"])
    assert [set(c) for c in comps] == [{"a", "b", "metric", "n", "n_nonzero", "mean_diff", "estimate", "ci",
                                        "estimator", "p", "p_adj", "effect_size", "significant", "family",
                                        "unreachable", "p_floor", "at_floor"}] * 2
    emp, rel = comps
    assert (emp["a"], emp["b"], emp["n"], emp["mean_diff"], emp["effect_size"]) == ("hybrid", "base", 10, 2.5, 1.0)
    assert emp["estimate"] == 2.5 and emp["ci"] == [2.0, 3.0] and emp["unreachable"] is None
    assert emp["p"] == pytest.approx(2 / 2**10) and emp["p_adj"] == pytest.approx(min(1, 2 * emp["p"]))
    assert emp["significant"] and not rel["significant"] and rel["p"] == 1.0


def test_alpha_and_spearman():
    assert S.alpha_interval([[1, 2, 3, 4], [1, 2, 3, 4]]) == pytest.approx(1.0)
    assert S.alpha_interval([[5, 5], [5, 5]]) is None
    assert S.spearman([1, 2, 3, 4], [2, 4, 6, 8])["rho"] == pytest.approx(1.0)
    assert S.spearman([1, 2], [1, 2])["rho"] is None
