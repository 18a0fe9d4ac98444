"""Dose-response of the real share: which variants form the curve, the paired slope test (a
planted trend is found, a flat one is not), and the report's section and figure."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hybridtune.evaluate import dose, report
from hybridtune.records import Message, ModelEntry, Session
from hybridtune.registry import save_entry
from hybridtune.variants import Recipe, resolve

DECL = {"base": {"sources": []}, "real": {"sources": ["real"]}, "synthetic": {"sources": ["synthetic"]},
        "hybrid": {"real_share": 0.5}}


def _vs(decl, size=16):
    return resolve({k: Recipe.model_validate(v) for k, v in decl.items()}, size, "technique")


def test_curve_is_the_variants_that_differ_only_by_share_at_their_realised_share():
    assert dose.curve_points(_vs(DECL)) == [("synthetic", 0.0), ("hybrid", 0.5), ("real", 1.0)]
    # a sweep's group wins over the plain variants; realised shares come from the mix report
    vs = _vs({**DECL, "hybrid@{0.25,0.5,0.75}": {"size": 8}})
    comp = {"hybrid@0.25": {"real_share": 0.2}}
    assert dose.curve_points(vs, comp) == [("hybrid@0.25", 0.2), ("hybrid@0.5", 0.5), ("hybrid@0.75", 0.75)]
    assert dose.curve_points(_vs({"base": {"sources": []}, "h": {"real_share": 0.5}, "r": {"sources": ["real"]}})) == []


def _rows(curve, slope, n=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        level = rng.uniform(4, 7)  # scenarios differ a lot: only a paired test sees a small trend
        for v, share in curve:
            rows.append({"variant": v, "scenario_id": f"s{i}", "empathy": level + slope * share + rng.normal(0, 0.2)})
    return rows


def test_paired_slope_test_finds_a_planted_trend_and_not_a_flat_one():
    curve = [("synthetic", 0.0), ("hybrid", 0.5), ("real", 1.0)]
    up = dose.dose_response(_rows(curve, 1.0), curve, ["empathy"], 500)["metrics"]["empathy"]
    assert up["n"] == 12 and abs(up["slope"] - 1.0) < 0.3 and up["slope_ci"][0] > 0 and up["significant"]
    assert [p["share"] for p in up["points"]] == [0.0, 0.5, 1.0]
    flat = dose.dose_response(_rows(curve, 0.0, seed=1), curve, ["empathy"], 500)["metrics"]["empathy"]
    assert not flat["significant"] and flat["slope_ci"][0] < 0 < flat["slope_ci"][1]
    # a scenario missing one variant is not paired
    rows = [r for r in _rows(curve, 1.0) if not (r["scenario_id"] == "s0" and r["variant"] == "real")]
    assert dose.dose_response(rows, curve, ["empathy"], 200)["metrics"]["empathy"]["n"] == 11


def test_report_shows_the_dose_response_figure_and_trend_test(fake_ctx):
    curve = [("synthetic", 0.0), ("hybrid", 0.5), ("real", 1.0)]
    cm, fake = fake_ctx("variants={base: {sources: []}, real: {sources: [real]}, synthetic: {sources: [synthetic]}, "
                        "hybrid: {real_share: 0.5}}", "evaluate.bootstrap_resamples=200")
    with cm as ctx:
        rows = [{**r, "id": f"{r['variant']}-{r['scenario_id']}", "relevance": 5.0, "words": 10, "end_reason": "max_turns"}
                for r in _rows(curve, 2.0)]
        rows += [{"id": f"base-s{i}", "variant": "base", "scenario_id": f"s{i}", "empathy": 5.0, "relevance": 5.0,
                  "words": 10, "end_reason": "max_turns"} for i in range(12)]
        for v in ("base", "real", "synthetic", "hybrid"):
            save_entry(ctx.store, ModelEntry(variant=v, backend="fake", model="m"))
        ctx.store.stage("simulate").write_records("sessions.jsonl", [
            Session(id=r["id"], source="simulated", meta={"variant": r["variant"], "scenario_id": r["scenario_id"]},
                    messages=[Message(role="user", content="hi"), Message(role="assistant", content="hello")]) for r in rows])
        ctx.store.stage("score").write_records("session_scores.jsonl", rows)
        ctx.store.stage("score").write_json("summary.json", {"metrics": ["empathy", "relevance"]})
        ctx.store.stage("likelihood").write_records("sessions.jsonl", [
            {"id": f"{v}{k}", "variant": v, "split": "test_real", "session_id": f"t{k}", "turns": 2, "tokens": 10,
             "nll_sum": 30.0 - 5 * share + k} for v, share in curve for k in range(6)])
        ctx.run_stage("report", report.run)
        out = ctx.store.stage("report").path
    assert fake.calls == 0
    md = (out / "report.md").read_text()
    assert "## Dose-response (real share)" in md and "synthetic 0, hybrid 0.5, real 1" in md
    res = json.loads((out / "summary.json").read_text())["dose_response"]
    assert res["metrics"]["empathy"]["slope"] > 1.5 and res["metrics"]["nll_test_real"]["slope"] == -0.5
    # one family with the verdict (issue 19): no judge validation ran, so the judge trends are no claims and
    # the nll trend is the family's only test: 6 identical slopes, exact p 0.031 < 0.05
    assert res["metrics"]["nll_test_real"]["family"] == 1 and res["metrics"]["nll_test_real"]["significant"] is True
    assert res["metrics"]["empathy"]["p_adj"] is None and res["metrics"]["empathy"]["significant"] is False
    assert "Dose-response: a significant trend with the real share in nll_test_real" in md
    series = json.loads(Image.open(out / "dose_response.png").text["Series"])
    assert set(series) == {"empathy", "relevance", "nll_test_real"} and series["empathy"]["real"][0] == 1.0
    assert "data:image/png;base64" in (out / "report.html").read_text()


def test_trend_test_holds_its_level_with_unevenly_spaced_shares():
    """Defect (issue 27): a signed-rank test of per-unit slopes assumes they are symmetric around 0;
    with shares (0, 0.25, 1) and skewed scores it rejected about 9% of null data at alpha 0.05. The
    within-unit permutation test holds the level: 2000 null data sets of 56 units (lognormal
    scores, no effect of the share), rejection rate within alpha + 3 Monte Carlo SEs."""
    x = np.array([0.0, 0.25, 1.0])
    rng = np.random.default_rng(1)
    sims, alpha = 2000, 0.05
    rate = np.mean([dose.permutation_trend_p(rng.lognormal(0, 1, (56, 3)), x, 199, seed=i) < alpha
                    for i in range(sims)])
    se = np.sqrt(alpha * (1 - alpha) / sims)
    assert 0.02 < rate <= alpha + 3 * se
    # and it still finds a planted trend on the same skewed scores
    y = rng.lognormal(0, 1, (56, 3)) + 1.0 * x
    assert dose.permutation_trend_p(y, x, 999) < 0.01


def test_dose_points_are_paired_and_failures_count_as_the_minimum_under_failed_as_min(fake_ctx):
    """Defect: each point averaged its variant over its own scenarios (unpaired), and the trend
    ignored evaluate.failed_as_min. A synthetic judgement failing on the two scenarios where the
    other variants score high moved its point up; with failed_as_min it scores the minimum."""
    curve = [("synthetic", 0.0), ("hybrid", 0.5), ("real", 1.0)]
    rows = [{"variant": v, "scenario_id": f"s{i}", "empathy": 9.0 if i < 2 else 4.0} for v, _ in curve for i in range(6)]
    rows[0]["empathy"] = rows[1]["empathy"] = None  # synthetic failed on s0 and s1
    res = dose.dose_response(rows, curve, ["empathy"], 200)["metrics"]["empathy"]
    assert [p["n"] for p in res["points"]] == [4, 4, 4] and [p["mean"] for p in res["points"]] == [4.0] * 3
    cm, _ = fake_ctx("variants={real: {sources: [real]}, synthetic: {sources: [synthetic]}, hybrid: {real_share: 0.5}}",
                     "evaluate.metrics=[empathy]", "evaluate.failed_as_min=true", "evaluate.bootstrap_resamples=200")
    with cm as ctx:
        ctx.store.stage("score").write_records("session_scores.jsonl", [
            {**r, "id": f"{r['variant']}{r['scenario_id']}", "words": 5} for r in rows])
        res = dose.compute(ctx, report.load_results(ctx))["metrics"]["empathy"]
    assert res["n"] == 6 and res["points"][0]["mean"] == pytest.approx((1 + 1 + 4 * 4) / 6)
    assert res["slope"] > 0  # the failures count against the all-synthetic end
