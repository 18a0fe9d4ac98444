"""Dose-response of the real share: which variants form the curve, the paired slope test (a
planted trend is found, a flat one is not), and the report's section and figure."""
from __future__ import annotations

import json

import numpy as np
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
