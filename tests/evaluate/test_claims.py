"""Claims that survive a statistician's review, each defect written as its failing case:
the unpaired headline table, the direction read from the mean while the test is on ranks,
the likelihood table and test weighted differently, per-token NLL compared across
tokenizers, two Holm families behind one verdict, and tests that could never be significant
at their n reported as plain "no difference"."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

from hybridtune.evaluate import likelihood as L
from hybridtune.evaluate import report
from hybridtune.evaluate import stats as S
from hybridtune.evaluate.verdict import verdict_paragraph
from hybridtune.records import Message, ModelEntry, Session
from hybridtune.registry import save_entry

LISTS = {"generic": ["I see. Go on."], "off_topic": ["The capital of France is Paris."],
         "dismissive": ["Just get over it."]}
VALID = {"validated": True, "verdict": "judge validated on this run: relevance AUC 0.95 >= 0.70"}


def test_headline_table_is_paired_over_scenarios_every_variant_completed(fake_ctx):
    """Defect: hybrid showed 7.75 against real's 10.00 while the paired difference was 0: hybrid's
    1.0 fell on the scenario where real's judgement failed, and that failure was just dropped."""
    rows = [{"id": f"{v}{i}", "variant": v, "scenario_id": f"s{i}", "words": 10, "relevance": 10.0}
            for v in ("real", "hybrid") for i in range(3)]
    rows += [{"id": "real3", "variant": "real", "scenario_id": "s3", "words": 10, "relevance": None},  # failed
             {"id": "hybrid3", "variant": "hybrid", "scenario_id": "s3", "words": 10, "relevance": 1.0}]
    cm, _ = fake_ctx("evaluate.metrics=[relevance]")
    with cm as ctx:
        for v in ("real", "hybrid"):
            save_entry(ctx.store, ModelEntry(variant=v, backend="fake", model=v))
        ctx.store.stage("score").write_records("session_scores.jsonl", rows)
        res = report.load_results(ctx)
    t = res["table"]
    assert t["hybrid"]["relevance"]["mean"] == t["real"]["relevance"]["mean"] == 10.0
    assert t["hybrid"]["relevance"]["n"] == t["real"]["relevance"]["n"] == 3
    (c,) = res["comparisons"]
    assert c["n"] == 3 and c["mean_diff"] == 0.0
    # the failure is counted against the variant whose conversation it was, and shown
    assert res["completion"]["real"]["failed_judgements"] == 1 and res["completion"]["real"]["completed"] == 3
    assert res["completion"]["hybrid"]["completion_rate"] == 1.0


def test_failed_as_min_scores_a_failure_as_the_minimum():
    rows = [{"variant": "real", "scenario_id": "s0", "relevance": None},
            {"variant": "hybrid", "scenario_id": "s0", "relevance": 7.0}]
    kept, counts = S.paired_rows(rows, ["real", "hybrid"], ["relevance"], planned=2, failed_as_min=True)
    assert {(r["variant"], r["relevance"]) for r in kept} == {("real", 1.0), ("hybrid", 7.0)}
    assert counts["real"]["failed_judgements"] == 1 and counts["real"]["completion_rate"] == 0.5


def _rows(diffs, metric="empathy"):
    rows = []
    for i, d in enumerate(diffs):
        rows += [{"variant": "base", "scenario_id": f"s{i}", metric: 5.0},
                 {"variant": "hybrid", "scenario_id": f"s{i}", metric: 5.0 + d}]
    return rows


def test_direction_comes_from_the_rank_statistic_not_the_mean():
    """Defect: 26 differences of +1 and 3 of -9 have mean -0.03; the signed-rank test (r=+0.61)
    says hybrid is higher, and the verdict named base."""
    comps = S.paired_comparisons(_rows([1] * 26 + [-9] * 3), ["base", "hybrid"], ["empathy"])
    text = verdict_paragraph(comps, None, VALID)
    assert "hybrid scores higher on empathy" in text and "base scores higher" not in text
    (c,) = comps
    assert c["mean_diff"] < 0 < c["effect_size"] and c["significant"]
    assert c["estimate"] == 1.0 and c["ci"] is not None and c["ci"][0] > 0  # Hodges-Lehmann, same side as r


def _nll(v, sid, nll_sum, tokens, split="test_real"):
    return L.SessionNLL(id=f"{v}{sid}{split}", variant=v, split=split, session_id=sid, turns=1, tokens=tokens,
                        nll_sum=nll_sum)


def test_likelihood_test_uses_the_tables_token_weighting():
    """Defect: the table is token-weighted but the test compared unweighted session means, so the
    table said `a` predicts better while the significant test named `b`."""
    rows = [_nll("a", "long", 1000.0, 1000), _nll("b", "long", 1500.0, 1000)]  # a far better on the long one
    for i in range(15):  # b slightly better on many short sessions
        rows += [_nll("a", f"short{i}", 11.0, 10), _nll("b", f"short{i}", 10.0, 10)]
    res = L.summarize(rows, ["b", "a"], 2000, 0.95, 0)
    table = res["variants"]["a"]["test_real"]["nll"] - res["variants"]["b"]["test_real"]["nll"]
    assert table < 0  # the table: a predicts better
    text = verdict_paragraph([], res, None)
    assert "b predicts held-out real counselor turns better" not in text
    (c,) = res["comparisons"]
    est = c["estimate"] if c["a"] == "a" else -c["estimate"]
    assert est == pytest.approx(table)  # the comparison IS the table's difference
    # the same weighting when the difference is consistent: a significant claim for a
    rows = [r for i in range(12) for r in (_nll("a", f"s{i}", 10.0 * (i + 1), 10 * (i + 1)),
                                           _nll("b", f"s{i}", 12.0 * (i + 1), 10 * (i + 1)))]
    res = L.summarize(rows, ["b", "a"], 2000, 0.95, 0)
    assert "a predicts held-out real counselor turns better" in verdict_paragraph([], res, None)


def test_per_token_nll_is_not_compared_across_tokenizers():
    rows = [_nll("a", "s1", 10.0, 10), _nll("a", "s2", 10.0, 10), _nll("b", "s1", 9.0, 14), _nll("b", "s2", 9.0, 14)]
    c = L.paired_comparison("a", "b", "test_real", rows, 500, 0.95, 0)
    assert c["comparable"] is False and c["p"] is None and "tokenizers differ" in c["note"]
    text = verdict_paragraph([], {"comparisons": [c]}, None)
    assert "tokenizers differ" in text and "predicts" not in text


def test_one_holm_family_for_every_claim_of_the_verdict():
    from hybridtune.evaluate.verdict import family

    judge = [{"a": "h", "b": "b", "metric": "empathy", "n": 30, "n_nonzero": 30, "estimate": 1.0, "p": 0.02,
              "effect_size": 0.5}]
    lik = {"comparisons": [{"a": "h", "b": "b", "split": "test_real", "n": 30, "n_nonzero": 30, "estimate": -0.1,
                            "p": 0.02, "comparable": True}]}
    j, lk = family(judge, lik, VALID, 0.05)
    assert j[0]["p_adj"] == lk["comparisons"][0]["p_adj"] == pytest.approx(0.04) and j[0]["family"] == 2
    j, lk = family(judge, lik, None, 0.05)  # no judge claim: the family is the likelihood claim alone
    assert lk["comparisons"][0]["p_adj"] == pytest.approx(0.02) and not j[0]["significant"]


def test_dose_response_trends_join_the_same_family():
    """Defect: the dose-response trend tests were Holm-corrected on their own, beside the verdict's family."""
    from hybridtune.evaluate.verdict import family

    lik = {"comparisons": [{"a": "h", "b": "b", "split": "test_real", "n": 30, "n_nonzero": 30, "estimate": -0.1,
                            "p": 0.01, "comparable": True}]}
    trends = {"curve": [], "metrics": {"empathy": {"n": 30, "slope": 1.0, "p": 0.01},
                                       "nll_test_real": {"n": 30, "slope": -0.2, "p": 0.02}}}
    _, lk = family([], lik, None, 0.05, trends)  # judge not trusted: its trend is no claim
    nll, emp = trends["metrics"]["nll_test_real"], trends["metrics"]["empathy"]
    assert lk["comparisons"][0]["family"] == nll["family"] == 2 and nll["p_adj"] == pytest.approx(0.02)
    assert emp["p_adj"] is None and not emp["significant"]
    text = verdict_paragraph([], lik, None, 0.05, trends)
    assert "All 2 tests" in text and "significant trend with the real share in nll_test_real" in text
    family([], lik, VALID, 0.05, trends)  # trusted judge: three claims, adjusted together
    assert emp["family"] == 3 and emp["p_adj"] == pytest.approx(0.03) and nll["p_adj"] == pytest.approx(0.03)


def test_report_says_when_a_test_could_not_reach_significance():
    """Defect: at n=4 the smallest exact p is 0.125 (x6 tests after Holm: 0.75), and the report
    said only 'no significant difference'."""
    rows = [{**e, **r} for e, r in zip(_rows([1, 2, 3, 4]), _rows([1, 1, 2, 2], "relevance"), strict=True)]
    comps = S.paired_comparisons(rows, ["base", "hybrid"], ["empathy", "relevance"])
    assert all(c["unreachable"] and "n=4" in c["unreachable"] for c in comps)
    text = verdict_paragraph(comps, None, VALID)
    assert "could not have reached significance" in text and "0.125" in text
    assert S.min_pairs(6, 0.05) == 8 and S.p_floor(3) == 0.25
    # the reason is said once for both tests it holds for, after naming them (the demo's verdict
    # repeated it for each of 14 tests)
    assert text.count("the smallest exact two-sided p") == 1
    assert "hybrid vs base empathy, hybrid vs base relevance (2 tests): could not reach" in text


def test_hodges_lehmann_ci_matches_inverting_the_signed_rank_test():
    # the CI is the set of shifts the exact two-sided test does not reject at 5% (checked by scanning
    # scipy.stats.wilcoxon(x - shift, method="exact") over a fine grid: [0.40, 2.15])
    x = [1.2, -0.5, 2.3, 0.7, 1.9, -0.1, 3.1, 0.4, 1.5, 2.2]
    hl = S.hodges_lehmann(x)
    assert hl["estimate"] == pytest.approx(1.3) and hl["ci"] == pytest.approx([0.4, 2.15])
    assert S.hodges_lehmann([1, 2, 3])["ci"] is None  # n=3: no 95% interval exists


def _length_judge(req):
    """A judge that only rewards length: the defect a length baseline exists to catch."""
    if req.schema_name == "TurnJudgment":
        return json.dumps({"reason": "fine", "consistent": True, "acts_as_counselor": False})
    last = re.findall(r"Counselor: (.*)", req.messages[-1]["content"])[-1]
    return json.dumps({"rationale": "r", "score": min(10, max(1, len(last.split()) // 2))})


def long_session(i: int) -> Session:
    """A real session whose counselor turns are longer than any listed degradation."""
    long = " ".join(["that"] * 6)
    return Session(id=f"s{i}", source="real", messages=[
        Message(role="user", content=f"client {i} says thing 0"),
        Message(role="assistant", content=f"counselor {i} reflects thing 0 warmly and says {long} {i} at length")])


def test_length_only_judge_is_not_validated(fake_ctx, monkeypatch):
    """Defect: 'prefer the longer reply' passed the gate when degraded replies were shorter (the
    gate ignored the length baseline, and no degradation kept the original's length)."""
    from hybridtune.evaluate import calibrate

    cm, _ = fake_ctx("evaluate.trust.calib_items=12", "evaluate.trust.calib_samples=1",
                     "evaluate.metrics=[empathy]", "evaluate.trust.simcheck_sessions=0", responder=_length_judge)
    with cm as ctx:
        monkeypatch.setattr(ctx.domain, "data_file", lambda name, _orig=ctx.domain.data_file:
                            LISTS if name == "prompts/trust_degradations.yaml" else _orig(name))
        ctx.store.stage("mix").write_records("test_real.jsonl", [long_session(i) for i in range(12)])
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert res["validated"] is False
    assert "length baseline" in res["verdict"]


def test_power_plan_known_values(make_cfg):
    """The issue's numbers: at SD 1 with 6 tests, 50 scenarios detect about 0.5 points and about
    140 are needed for 0.3; n=4 can never be significant, whatever the SD."""
    from hybridtune.evaluate import power

    assert power.mde(50, 1.0, 6, 0.05, 0.8, power.WILCOXON_ARE) == pytest.approx(0.50, abs=0.01)
    assert power.n_for(0.3, 1.0, 6, 0.05, 0.8, power.WILCOXON_ARE) == pytest.approx(141, abs=3)
    p = power.plan(make_cfg("evaluate.scenarios=4", "evaluate.trust.calib_items=5"))
    judge = [t for t in p["tests"] if t["test"].startswith("judge")]
    assert p["family"] == 12 and all("n=4" in t["unreachable"] for t in judge)
    assert "cannot be validated with 5 items" in p["judge_gate"]["unreachable"]
    text = "\n".join(power.lines(p))
    assert "CANNOT be significant" in text and "CANNOT pass" in text


def test_reach_notes_follow_holm_so_a_test_is_never_both_significant_and_unreachable():
    """Defect (issue 27): the note used Bonferroni (6 x 0.031 >= 0.05: 'could not reach') while Holm
    made the same n=6 test significant (ranked last after five tiny p's, multiplier 1)."""
    comps = [{"a": "h", "b": f"b{i}", "metric": "m", "n": 40, "n_nonzero": 40, "p": 1e-6} for i in range(5)]
    comps.append({"a": "h", "b": "r", "metric": "m", "n": 6, "n_nonzero": 6, "p": 0.03125})
    S.adjust_family(comps, 0.05)
    assert comps[-1]["significant"] and comps[-1]["unreachable"] is None
    assert comps[-1]["at_floor"] and comps[-1]["p_floor"] == pytest.approx(0.03125)
    # the invariant over many random families: significant never carries a reach note
    rng = np.random.default_rng(0)
    for _ in range(300):
        fam = [{"a": "x", "b": str(i), "n_nonzero": int(n), "p": float(min(1, S.p_floor(int(n)) * rng.choice([1, 1, 3])))}
               for i, n in enumerate(rng.integers(2, 12, rng.integers(1, 8)))]
        S.adjust_family(fam, 0.05)
        assert not any(c["significant"] and c["unreachable"] for c in fam)
        assert all(c["unreachable"] for c in fam if S.holm_best([d["p_floor"] for d in fam])[fam.index(c)] >= 0.05)


def test_resampling_floor_makes_a_large_n_test_unreachable_and_p_at_the_floor_reads_le():
    """Defect: at R=200 resamples an n=56 sign-flip test cannot go below 2/201, and x6 tests that
    is never significant; nothing said so, and p at the floor printed as if exact."""
    rows = [_nll(v, f"s{k}", 30.0 - (1.0 if v == "h" else 0.0) + 0.01 * k, 10) for v in ("h", "b") for k in range(56)]
    c = L.paired_comparison("h", "b", "test_real", rows, 200, 0.95, 0)
    assert c["p_min"] == pytest.approx(2 / 201) and c["p"] == pytest.approx(2 / 201)
    fam = [dict(c, b=f"b{i}") for i in range(6)]
    S.adjust_family(fam, 0.05)
    assert not fam[0]["significant"] and "at 200 resamples" in fam[0]["unreachable"]
    assert "evaluate.bootstrap_resamples >= 240" in fam[0]["unreachable"]
    assert fam[0]["at_floor"] and S.p_text(fam[0]["p_adj"], True) == "\u2264 0.060"
    assert S.p_text(0.0004, True) == "\u2264 0.0004" and S.p_text(0.2) == "0.200"
    text = verdict_paragraph([], {"comparisons": fam[:1]}, None)
    assert "adjusted p=\u2264 0.010" in text


def test_plan_agrees_with_a_simulation_of_the_actual_likelihood_test(make_cfg, tmp_path):
    """Defect (issue 27): the plan used a normal approximation on the unweighted SD while the test is
    a sign-flip of the token-weighted mean; with unequal token counts its 'detectable difference'
    had power 0.52, not 0.8. Now the plan's difference, fed to likelihood.sign_flip_p on sessions
    drawn like the pilot's, is detected with power 0.8 +- 0.05 at Holm's first level."""
    from hybridtune import split
    from hybridtune.evaluate import power
    from hybridtune.store import RunStore

    rng = np.random.default_rng(0)
    tokens = np.round(rng.lognormal(5.5, 0.8, 56)) + 20
    d = rng.normal(0, 0.1, 56) + rng.standard_t(3, 56) * 0.02  # per-token difference, any token count
    pilot = tmp_path / "pilot"
    st = RunStore(pilot)
    st.stage("likelihood").write_records("sessions.jsonl", [
        {"id": f"{v}{i}", "variant": v, "split": "test_real", "session_id": f"s{i}", "turns": 3, "tokens": int(t),
         "nll_sum": float((3.0 + (d[i] if v == "a" else 0.0)) * t)} for v in ("a", "b") for i, t in enumerate(tokens)])
    real = [Session(id=f"r{i}", source="real", messages=[]) for i in range(112)]
    cfg = make_cfg("mix.test_fraction=0.5", "evaluate.bootstrap_resamples=2000")
    st.stage("split").write_json(split.FILE, split.make(real, split.split_config(cfg)).model_dump())
    p = power.plan(cfg, pilot)
    t = next(t for t in p["tests"] if t["test"].startswith("likelihood"))
    assert t["n"] == 56 and p["family"] == 12 and "simulated" in t["sd_from"] and t["k"] > 1.2
    r = d - (tokens * d).sum() / tokens.sum()
    hits = [L.sign_flip_p((-1) ** i * t["mde"] + r[idx], tokens[idx], 2000, seed=i) * p["family"] < p["alpha"]
            for i, idx in enumerate(rng.integers(0, 56, (400, 56)))]  # a difference of either sign
    assert abs(np.mean(hits) - 0.8) <= 0.05
    assert "effective n" in "\n".join(power.lines(p))


def test_plan_takes_the_heldout_size_from_the_split_artefact(tmp_path, make_cfg):
    """The power plan reads the `split` stage's artefact (it no longer recomputes the split): its
    held-out count when made with this config, else the lower bound mix.min_test."""
    from hybridtune import split
    from hybridtune.evaluate import power
    from hybridtune.store import RunStore

    cfg = make_cfg("mix.test_fraction=0.5", f"runs_dir={tmp_path / 'runs'}")
    real = [Session(id=f"r{i}", source="real", messages=[]) for i in range(40)]
    sp = split.make(real, split.split_config(cfg))
    st = RunStore(cfg.run_dir).stage("split")
    st.write_json(split.FILE, {**sp.model_dump(), "heldout": sp.heldout[:7]})
    assert power.heldout_real(cfg) == (7, f"the held-out split of 40 ingested real sessions in {st.file(split.FILE)}")
    other = make_cfg("mix.test_fraction=0.3", f"runs_dir={tmp_path / 'runs'}")  # made with another config: not used
    n, why = power.heldout_real(other)
    assert n == min(other.mix.min_test, other.evaluate.trust.likelihood_sessions) and "no held-out split" in why


def test_plan_family_is_the_verdicts_whole_family_dose_trends_included(make_cfg):
    """Defect: the plan counted 12 tests where the verdict's family held 16 (the dose trends)."""
    from hybridtune.evaluate import power

    p = power.plan(make_cfg("variants={real: {sources: [real]}, synthetic: {sources: [synthetic]}, "
                            "hybrid: {real_share: 0.5}}"))
    assert (p["family_judge"], p["family_likelihood"], p["family_trend"], p["family"]) == (6, 6, 4, 16)
    assert "+ 4 dose-response trend" in power.lines(p)[0]


def test_partial_failures_are_counted_and_failed_samples_score_the_minimum():
    """Defect (issue 27): with judge_samples > 1 a session whose samples partly failed was averaged
    over the ones that parsed, uncounted. Now counted, and under failed_as_min the failed
    sample scores the minimum in the mean."""
    rows = [{"variant": "real", "scenario_id": "s0", "relevance": 9.0, "samples": {"relevance": 1}},  # 1 of 3 parsed
            {"variant": "hybrid", "scenario_id": "s0", "relevance": 7.0, "samples": {"relevance": 3}}]
    kept, counts = S.paired_rows(rows, ["real", "hybrid"], ["relevance"], samples=3)
    assert counts["real"]["partial_judgements"] == 1 and counts["hybrid"]["partial_judgements"] == 0
    assert {r["variant"]: r["relevance"] for r in kept} == {"real": 9.0, "hybrid": 7.0}
    kept, _ = S.paired_rows(rows, ["real", "hybrid"], ["relevance"], samples=3, failed_as_min=True)
    assert {r["variant"]: r["relevance"] for r in kept} == {"real": pytest.approx((9 + 1 + 1) / 3), "hybrid": 7.0}


def test_failure_sensitivity_says_when_dropping_failures_decides_a_comparison():
    """Defect: a failed rating dropped the scenario for every variant with no sensitivity line. Here
    hybrid's judgements fail exactly where it would score low: dropped, hybrid wins everywhere
    left; scored as the minimum, the difference reverses."""
    rows = []
    for i in range(12):
        fail = i < 7
        rows += [{"variant": "real", "scenario_id": f"s{i}", "relevance": 5.0},
                 {"variant": "hybrid", "scenario_id": f"s{i}", "relevance": None if fail else 6.0}]
    sens = S.failure_sensitivity(rows, ["real", "hybrid"], ["relevance"], 12, failed_as_min=False)
    assert sens["failures"] == 7 and sens["other"] == "scored as the minimum" and len(sens["changed"]) == 1
    assert "hybrid vs real relevance: median difference +1.00 -> -" in sens["changed"][0]
    assert "depends on how failures count" in sens["line"]
    clean = S.failure_sensitivity([{**r, "relevance": r["relevance"] or 4.0} for r in rows],
                                  ["real", "hybrid"], ["relevance"], 12, failed_as_min=False)
    assert clean["failures"] == 0 and clean["changed"] == [] and "No judgement failed" in clean["line"]


def test_seeds_pool_into_their_variant_with_the_session_as_the_unit_and_their_spread_shown(fake_ctx):
    """Issue 27 (train.seeds): each held-out session's NLL is averaged over the seeds' models before
    the paired test (n stays the number of sessions), and each comparison gives its estimate
    per seed; the judge rows pool the same way in the report."""
    rows = [_nll("base", f"s{k}", 30.0, 10) for k in range(8)]
    for name, shift in (("real", -1.0), ("real~s2", -2.0), ("real~s3", -3.0)):
        rows += [_nll(name, f"s{k}", 30.0 + shift + 0.1 * k, 10) for k in range(8)]
    pooled = L.pool_seeds(rows)
    assert {r.variant for r in pooled} == {"base", "real"} and len(pooled) == 16
    res = L.summarize(pooled, ["base", "real"], 200, 0.95, 0)
    L.seed_spread(res, rows, [1, 2, 3], 200, 0)
    (c,) = [c for c in res["comparisons"] if c["split"] == "test_real"]
    assert c["n"] == 8 and c["estimate"] == pytest.approx(-2.0 / 10 + 0.035)
    assert c["seed_estimates"] == pytest.approx([x / 10 + 0.035 for x in (-1.0, -2.0, -3.0)])
    assert c["seed_sd"] == pytest.approx(0.1)
    cm, _ = fake_ctx("variants={base: {sources: []}, real: {sources: [real]}}", "train.seeds=[1, 2]",
                     "evaluate.metrics=[relevance]")
    with cm as ctx:
        scores = [{"id": f"{v}{i}", "variant": v, "scenario_id": f"s{i}", "words": 5, "relevance": x}
                  for i in range(6) for v, x in (("base", 5.0), ("real", 6.0 + i % 2), ("real~s2", 8.0))]
        ctx.store.stage("score").write_records("session_scores.jsonl", scores)
        out = report.load_results(ctx)
    assert out["variants"] == ["base", "real"] and out["table"]["real"]["relevance"]["n"] == 6
    (j,) = out["comparisons"]
    assert (j["a"], j["b"], j["n"]) == ("real", "base", 6) and j["seed_estimates"] == [1.5, 3.0]
    assert out["table"]["real"]["relevance"]["mean"] == pytest.approx((6.5 + 8) / 2)


def test_short_verdict_says_when_the_seeds_disagree_in_direction():
    from hybridtune.evaluate.verdict import summary

    lik = {"comparisons": [{"a": "hybrid", "b": "real", "split": "test_real", "metric": "nll", "n": 56,
                            "n_nonzero": 56, "estimate": 0.01, "p": 0.4, "comparable": True,
                            "seed_estimates": [0.05, -0.02, 0.01]}]}
    out = summary([], lik, None)
    assert any("the training seeds disagree in direction (+0.05, -0.02, +0.01)" in x for x in out["cannot_tell"])
    lik["comparisons"][0]["seed_estimates"] = [0.05, 0.02, 0.01]
    assert not any("disagree" in x for x in summary([], lik, None)["cannot_tell"])


def test_plan_agrees_with_a_simulation_of_the_judges_signed_rank_test(make_cfg):
    """At 10 scenarios in a family of 24 the normal formula planned 1.27 points (SD 1), where the
    exact signed-rank test can only reject 'every pair on one side' and detects 1.27 a third of
    the time. The plan now simulates the exact test: scipy.stats.wilcoxon at its difference
    detects with power 0.8 +- 0.05."""
    from scipy import stats

    from hybridtune.evaluate import power

    p = power.plan(make_cfg("evaluate.scenarios=10", "variants={base: {sources: []}, real: {sources: [real]}, "
                            "synthetic: {sources: [synthetic]}, hybrid: {design: added, synthetic_units: 10}}",
                            "mix.test_fraction_synthetic=0.2"))
    assert p["family"] == 24
    t = next(t for t in p["tests"] if t["test"].startswith("judge empathy"))
    rng = np.random.default_rng(7)
    hits = [stats.wilcoxon(t["mde"] + t["sd"] * rng.standard_normal(10)).pvalue * 24 < 0.05 for _ in range(1000)]
    assert abs(np.mean(hits) - 0.8) <= 0.05 and t["mde"] > 1.8


def test_plan_with_a_single_variant_has_no_family_and_no_reach_note(make_cfg):
    """A run with one variant compares nothing: the plan says so instead of failing (seen in the
    embedded sales_coach pipeline)."""
    from hybridtune.evaluate import power

    p = power.plan(make_cfg("variants={base: {sources: []}}"))
    assert p["family"] == 0 and all(t["unreachable"] is None for t in p["tests"])
