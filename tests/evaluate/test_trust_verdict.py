"""The plain-language verdict (validated / not validated / no data) and the trust report
sections (tables, prominent verdict, escaped HTML)."""
from __future__ import annotations

from hybridtune.evaluate import trust
from hybridtune.evaluate.verdict import magnitude, support_table, verdict_paragraph

JUDGE = [
    {"a": "hybrid", "b": "base", "metric": "empathy", "n": 20, "n_nonzero": 20, "mean_diff": 1.2, "estimate": 1.0,
     "ci": [0.5, 1.5], "p": 0.001, "effect_size": 0.62},
    {"a": "hybrid", "b": "base", "metric": "relevance", "n": 20, "n_nonzero": 20, "mean_diff": 0.1, "estimate": 0.0,
     "ci": [-0.5, 0.5], "p": 0.6, "effect_size": 0.05},
]
LIK = {"variants": {}, "skipped": {}, "confidence": 0.95, "comparisons": [
    {"a": "hybrid", "b": "base", "split": "test_real", "metric": "nll", "n": 30, "n_nonzero": 30, "estimate": -0.12,
     "ci": [-0.2, -0.05], "p": 0.001, "comparable": True},
    {"a": "hybrid", "b": "base", "split": "test_synthetic", "metric": "nll", "n": 30, "n_nonzero": 30,
     "estimate": -0.01, "ci": [-0.05, 0.03], "p": 0.5, "comparable": True},
]}
VALID = {"validated": True, "verdict": "judge validated on this run: empathy AUC 0.91 >= 0.70"}
INVALID = {"validated": False, "verdict": "judge not validated on this run: empathy AUC 0.52 < 0.70"}


def test_validated_judge_and_likelihood_agree():
    text = verdict_paragraph(JUDGE, LIK, VALID)
    assert "passed validation" in text
    assert "hybrid scores higher on empathy" in text and "large effect" in text and "adjusted p=0.004" in text
    assert "median difference +1.00 (Hodges-Lehmann) for hybrid - base, CI [+0.50, +1.50]" in text
    assert "All 4 tests behind this verdict are Holm-corrected together as one family" in text
    assert "hybrid predicts held-out real counselor turns better" in text
    assert "no significant likelihood difference on held-out synthetic" in text
    assert "Supported by: judge and likelihood." in text
    assert "no significant judge difference on relevance" in text


def test_unvalidated_judge_claims_are_withheld():
    text = verdict_paragraph(JUDGE, LIK, INVALID)
    assert "NOT validated" in text and "withheld" in text
    assert "scores higher" not in text  # no judge claim
    assert "Supported by: likelihood." in text
    assert "adjusted p=0.002" in text  # the family is the 2 likelihood claims only: no judge claim is made
    none = verdict_paragraph(JUDGE, None, None)
    assert "not validated on this run (no calibration)" in none and "scores higher" not in none
    assert "No measure shows a significant difference." in none and "likelihood stage did not run" in none


def test_no_data_and_orientation_and_conflict():
    assert "No variant comparisons are available" in verdict_paragraph([], None, None)
    # likelihood computed as base - hybrid: oriented to the judge's (hybrid, base), sign flipped
    flipped = {"comparisons": [{**LIK["comparisons"][0], "a": "base", "b": "hybrid", "estimate": 0.12,
                                "ci": [0.05, 0.2]}]}
    text = verdict_paragraph(JUDGE, flipped, VALID)
    assert "-0.120 nats/token for hybrid - base, token-weighted, CI [-0.200, -0.050]" in text and text.count(" vs ") == 1
    worse = {"comparisons": [{**LIK["comparisons"][0], "estimate": 0.12, "ci": [0.05, 0.2]}]}
    assert "different directions" in verdict_paragraph(JUDGE, worse, VALID)
    rows = support_table(JUDGE, LIK, INVALID)
    assert rows == [{"pair": "hybrid vs base", "judge": "withheld", "likelihood": "significant",
                     "supported_by": ["likelihood"]}]
    assert magnitude(0.05) == "negligible" and magnitude(-0.35) == "medium" and magnitude(None) == "unknown"


def test_report_sections_escape_and_verdict(fake_ctx):
    cm, _ = fake_ctx()
    with cm as ctx:
        assert trust.judge_validated(ctx) is None
        secs = trust.report_sections(ctx)
        assert [s["title"] for s in secs] == ["Held-out likelihood (judge-free)", "Judge validation",
                                              "Patient-simulator check"]
        assert "did not run" in secs[0]["markdown"] and "not validated" in secs[1]["markdown"]
        lik = {**LIK, "variants": {"<b>ase": {"test_real": {"sessions": 3, "tokens": 40, "nll": 2.5,
                                                            "nll_ci": [2.1, 2.9], "ppl": 12.18, "ppl_ci": [8.2, 18.2]}}},
               "skipped": {"gpt": "hosted OpenAI models return no prompt log-probabilities"}}
        ctx.store.stage("likelihood").write_json("summary.json", lik)
        cal = {"validated": False, "verdict": "judge not validated on this run: empathy AUC 0.52 < 0.70",
               "threshold": 0.7, "judge_model": "smollm2", "source": "mix/test_real.jsonl", "originals": 8,
               "versions": 40, "samples": 2, "ratings": 70, "ratings_planned": 80, "warnings": [],
               "metrics": {"empathy": {"auc": 0.52, "auc_ci": [0.3, 0.72], "items": 8, "passes": False,
                                       "auc_by_degradation": {"generic": 0.6},
                                       "mean_original": 6.0, "mean_degraded": 5.8, "repeat_sd": 1.1,
                                       "length_bias": {"rho": 0.3}, "length_baseline_auc": 0.8}},
               "simcheck": {"ran": True, "sessions": 2, "judge_model": "smollm2", "failed": 0,
                            "overall": {"turns": 4, "inconsistent": 0.25, "role_confusion_judge": 0.0,
                                        "role_confusion_heuristic": 0.5, "role_confusion_either": 0.5},
                            "by_variant": {}}}
        ctx.store.stage("calibrate").write_json("summary.json", cal)
        assert trust.judge_validated(ctx) is False
        secs = trust.report_sections(ctx)
        para = trust.summary_paragraph(ctx, JUDGE)
    lik_md, cal_md, sim_md = (s["markdown"] for s in secs)
    assert "| <b>ase | held-out real | 3 | 40 | 2.500 [2.100, 2.900] | 12.18 [8.20, 18.20] |" in lik_md
    assert "&lt;b&gt;ase" in secs[0]["html"] and "<b>ase" not in secs[0]["html"]
    assert "gpt: not scored" in lik_md
    assert cal_md.startswith("**Judge not validated on this run") and "| empathy | 0.52 [0.30, 0.72] | 8 | no |" in cal_md
    assert '<p class="verdict"><strong>Judge not validated' in secs[1]["html"]
    assert "| all | 4 | 25% | 0% | 50% | 50% |" in sim_md
    assert "NOT validated" in para
