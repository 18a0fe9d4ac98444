"""Judge and annotator against experts (evaluate/experts.py): AnnoMI loading, matched pairs,
AUC within topic and pooled, the calibrate gate with and without the expert labels, and the
annotator's agreement with the experts' therapist codes. AnnoMI-format files written here stand
in for the shared copy; the shared copy itself is read where it is present."""
from __future__ import annotations

import asyncio
import csv
import json
import re
from pathlib import Path

import pytest
from sklearn.metrics import cohen_kappa_score

from hybridtune.evaluate import calibrate, experts
from hybridtune.evaluate.experts import ExpertRating, agreement, analyze, load_annomi, matched_pairs
from tests.conftest import shared_data

HEAD = ["transcript_id", "mi_quality", "video_title", "video_url", "topic", "utterance_id", "interlocutor",
        "timestamp", "utterance_text", "main_therapist_behaviour", "client_talk_type"]
WARM = "It sounds like you feel torn about drinking."
COLD = "You have to stop drinking, that is the rule."


def write_annomi(path: Path, topics: list[tuple[str, str]], turns: int = 8) -> Path:
    """An AnnoMI-simple.csv: one transcript per (quality, topic); high ones reflect, low ones lecture."""
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(HEAD)
        u = 0
        for tid, (q, topic) in enumerate(topics):
            for k in range(turns):
                therapist = k % 2 == 0
                text = (WARM if q == "high" else COLD) if therapist else f"I drink a bit, part {k}."
                code = ("reflection" if q == "high" else "therapist_input") if therapist else "n/a"
                w.writerow([tid, q, "t", "u", topic, u, "therapist" if therapist else "client", "00:00:01", text,
                            code, "n/a" if therapist else "neutral"])
                u += 1
    return path


TOPICS = [("high", "alcohol"), ("low", "alcohol"), ("high", "alcohol"), ("low", "Alcohol; safe sex"),
          ("high", "smoking cessation "), ("low", "Smoking cessation"), ("high", "weight loss"), ("low", "diagnosis"),
          ("high", "weight loss"), ("low", "alcohol"), ("high", "alcohol"), ("low", "smoking cessation")]


def warm_judge(req) -> str:
    """Rates a transcript whose counselor reflects 8, one that lectures 3 (what an expert would)."""
    text = req.messages[-1]["content"]
    return json.dumps({"rationale": "r", "score": 8 if "sounds like" in text else 3})


def test_load_and_matched_pairs_prefer_same_topic(tmp_path):
    ts = load_annomi(write_annomi(tmp_path / "a.csv", TOPICS))
    assert [t.quality for t in ts] == [q for q, _ in TOPICS]
    assert ts[0].utterances[0].role == "assistant" and ts[0].utterances[0].behaviour == "reflection"
    assert ts[0].utterances[1].talk_type == "neutral" and ts[0].utterances[1].behaviour is None
    pairs = matched_pairs(ts, 10, seed=3)
    assert len(pairs) == 6 and all(h.quality == "high" and lo.quality == "low" for h, lo in pairs)
    assert len({h.id for h, _ in pairs}) == 6  # each high transcript used once
    by_low = {lo.id: h for h, lo in pairs}
    # every low transcript whose topic has a high one got one ("smoking cessation " = "Smoking cessation"),
    # "diagnosis" has none and takes another
    same = [lo for h, lo in pairs if h.topic_key == lo.topic_key]
    # 3 alcohol lows and highs; 2 smoking lows for 1 smoking high
    assert {lo.topic_key for lo in same} == {"alcohol", "smoking cessation"} and len(same) == 4
    assert by_low["7"].topic_key != "diagnosis"
    assert matched_pairs(ts, 2, seed=3) == pairs[:2]  # same draw, cut


def test_excerpt_is_the_middle_window_with_turns_merged():
    t = experts.ExpertTranscript(id="0", quality="high", topic="x", utterances=[
        experts.Utterance(role=r, text=f"u{i}") for i, r in enumerate(["assistant", "user", "user", "assistant",
                                                                        "user", "assistant", "user", "assistant"])])
    msgs = experts.excerpt(t, 3)
    assert [m.content for m in msgs] == ["u3", "u4", "u5"]
    assert [m.content for m in experts.excerpt(t, 20)][1] == "u1 u2"


def rating(tid: str, q: str, topic: str, score: float, metric: str = "empathy") -> ExpertRating:
    return ExpertRating(id=f"{tid}{metric}", transcript_id=tid, quality=q, topic=topic, metric=metric, sample=0,
                        score=score, judge_model="m", prompt="p@1")


def test_auc_within_topic_pooled_and_matched_pairs_known_values():
    # topic a: high 5, 7; low 6 -> within pairs (5>6? no, 7>6 yes) = 0.5; topic b: high 9, low 1 -> 1.0
    rs = [rating("h1", "high", "a", 5), rating("h2", "high", "a", 7), rating("l1", "low", "a", 6),
          rating("h3", "high", "b", 9), rating("l2", "low", "b", 1)]
    r = analyze(rs, [("h1", "l1"), ("h3", "l2")], ["empathy"], threshold=0.5, resamples=500)["empathy"]
    assert r["auc_within_topic"] == pytest.approx(2 / 3) and r["within_topic_pairs"] == 3
    # pooled: l1=6 beaten by 7, 9 (not 5): 2/3; l2=1 beaten by all three -> 5/6
    assert r["auc_pooled"] == pytest.approx(5 / 6)
    assert r["matched_share"] == 0.5 and r["matched_pairs"] == 2 and r["auc_kind"] == "within topic"
    assert r["auc_ci"][0] <= r["auc"] <= r["auc_ci"][1]


def test_a_judge_that_cannot_tell_high_from_low_does_not_pass():
    rs = [rating(f"h{i}", "high", f"t{i}", 5) for i in range(10)] + [rating(f"l{i}", "low", f"t{i}", 5) for i in range(10)]
    flat = analyze(rs, [(f"h{i}", f"l{i}") for i in range(10)], ["empathy"], 0.5)["empathy"]
    assert flat["auc"] == 0.5 and flat["passes"] is False and flat["matched_share"] == 0.5
    good = [r.model_copy(update={"score": 8.0 if r.quality == "high" else 2.0}) for r in rs]
    res = analyze(good, [(f"h{i}", f"l{i}") for i in range(10)], ["empathy"], 0.5)
    assert res["empathy"]["auc"] == 1.0 and res["empathy"]["passes"] is True
    assert "cannot tell" in experts.verdict({"empathy": flat}, 0.5)
    assert experts.verdict(res, 0.5).startswith("judge tells experts' high from low")


def test_calibrate_scores_the_judge_on_expert_labels(fake_ctx, tmp_path):
    path = write_annomi(tmp_path / "AnnoMI-simple.csv", TOPICS * 2)
    cm, fake = fake_ctx("evaluate.trust.calib_items=2", "evaluate.trust.calib_samples=1", "evaluate.metrics=[empathy]",
                        f"evaluate.trust.experts={path}", "evaluate.trust.expert_pairs=12",
                        "evaluate.trust.simcheck_sessions=0", responder=warm_judge)
    with cm as ctx:
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
        rated = list(ctx.store.stage("calibrate").read_dicts("experts.jsonl"))
    ex = res["experts"]
    assert ex["ran"] and ex["pairs"] == 12 and ex["ratings"] == ex["ratings_planned"] == 24 and len(rated) == 24
    assert ex["metrics"]["empathy"]["auc"] == 1.0 and ex["metrics"]["empathy"]["matched_share"] == 1.0
    assert ex["passes"] and "tells experts' high from low" in res["verdict"]
    # the judge saw the empathy rubric with an AnnoMI excerpt
    assert any(WARM in q.messages[-1]["content"] and "Rate the counselor's empathy" in q.messages[-1]["content"]
               for q in fake.requests)


def test_calibrate_gate_fails_a_judge_blind_to_expert_quality(fake_ctx, tmp_path):
    path = write_annomi(tmp_path / "AnnoMI-simple.csv", TOPICS * 2)
    cm, _ = fake_ctx("evaluate.trust.calib_items=2", "evaluate.metrics=[empathy]", f"evaluate.trust.experts={path}",
                     "evaluate.trust.simcheck_sessions=0", responder=lambda req: json.dumps({"rationale": "r", "score": 6}))
    with cm as ctx:
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert res["experts"]["ran"] and res["experts"]["passes"] is False
    assert res["validated"] is False and "cannot tell experts' high from low" in res["verdict"]


def test_gate_combination():
    ok = {"ran": True, "passes": True, "verdict": "judge tells experts' high from low MI quality: x"}
    bad = {"ran": True, "passes": False, "verdict": "judge cannot tell experts' high from low MI quality: x"}
    assert calibrate.with_experts(True, "judge validated on this run: a", ok)[0] is True
    v, text = calibrate.with_experts(True, "judge validated on this run: a", bad)
    assert v is False and text.startswith("judge not validated on this run: a;")
    v, text = calibrate.with_experts(True, "judge validated on this run: a", {"ran": False, "note": "no labels"})
    assert v is True and "expert check not run (no labels)" in text


def test_calibrate_without_expert_data_says_the_check_did_not_run(fake_ctx, tmp_path, monkeypatch):
    monkeypatch.setenv("HYBRIDTUNE_DATA_DIR", str(tmp_path / "nothing"))
    cm, _ = fake_ctx("evaluate.trust.simcheck_sessions=0")
    with cm as ctx:
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert res["experts"]["ran"] is False and "not downloaded" in res["experts"]["note"]
    assert "expert check not run" in res["verdict"]


def test_shared_annomi_loads_with_expert_labels():
    ts = load_annomi(shared_data("annomi", "AnnoMI-simple.csv"))
    q = [t.quality for t in ts]
    assert q.count("low") >= 15 and q.count("high") > q.count("low")
    pairs = matched_pairs(ts, 100, seed=0)
    assert len(pairs) == q.count("low")
    assert sum(h.topic_key == lo.topic_key for h, lo in pairs) >= 10
    codes = {u.behaviour for t in ts for u in t.utterances if u.role == "assistant"}
    assert codes <= {*experts.CODES, None} and {"reflection", "question"} <= codes


# -- annotator against experts --------------------------------------------------------


def test_agreement_against_sklearn_and_majority_baseline():
    gold = ["reflection", "question", "question", "other", "therapist_input", "question", "reflection", "other"]
    pred = ["reflection", "question", "other", "other", "question", "question", "reflection", "reflection"]
    a = agreement(gold, pred)
    assert a["annotator"]["kappa"] == pytest.approx(cohen_kappa_score(gold, pred))
    assert a["majority_class"] == "question" and a["baseline"]["kappa"] == 0.0
    assert a["baseline"]["accuracy"] == 3 / 8 and a["annotator"]["accuracy"] == 5 / 8
    r = a["annotator"]["per_class"]["reflection"]
    assert r["f1"] == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3)) and r["support"] == 2  # P 2/3, R 1
    assert agreement(gold, gold)["annotator"]["kappa"] == 1.0


def test_every_cbt_technique_maps_to_an_annomi_code(fake_ctx):
    cm, _ = fake_ctx()
    with cm as ctx:
        m = experts.code_map(ctx)
        ids = {t.id for t in ctx.domain.techniques}
    assert set(m) == ids and set(m.values()) == set(experts.CODES)
    assert experts.to_code(["open_questions", "reflective_listening"], m) == "question"
    assert experts.to_code([], m) == "other"


def test_annotator_agreement_runs_the_real_stage_annotator(fake_ctx, tmp_path):
    ts = load_annomi(write_annomi(tmp_path / "a.csv", TOPICS))

    def annotator(req) -> str:  # tags reflections right and lecturing as psychoeducation (therapist_input)
        text = "\n".join(m["content"] for m in req.messages)  # a transcript's therapist turns share one style
        return json.dumps({"techniques": ["reflective_listening"] if "sounds like" in text else ["psychoeducation"],
                           "cues": []})

    cm, fake = fake_ctx(responder=annotator)
    with cm as ctx:
        st = ctx.store.stage("calibrate")
        res = asyncio.run(experts.annotator_agreement(ctx, st, ts, 20, seed=1))
    assert res["labelled"] == res["turns"] == res["n"] == 20
    assert any(q.schema_name == "CounselorTurn" for q in fake.requests)
    assert res["annotator"]["kappa"] == 1.0 and res["baseline"]["kappa"] == 0.0


def test_kappa_ci_covers_the_estimate_and_a_noise_annotator_includes_zero():
    rng = __import__("random").Random(0)
    gold = [rng.choice(experts.CODES) for _ in range(200)]
    good = [g if rng.random() < 0.8 else rng.choice(experts.CODES) for g in gold]
    a = agreement(gold, good)
    assert a["kappa_ci"][0] <= a["annotator"]["kappa"] <= a["kappa_ci"][1] and a["kappa_ci"][0] > 0.5
    noise = agreement(gold, [rng.choice(experts.CODES) for _ in gold])
    assert noise["kappa_ci"][0] < 0 < noise["kappa_ci"][1]


def test_calibrate_scores_the_annotator_on_expert_codes_and_the_report_shows_it(fake_ctx, tmp_path):
    from hybridtune.estimate import estimate
    from hybridtune.evaluate import people

    path = write_annomi(tmp_path / "AnnoMI-simple.csv", TOPICS)

    def both(req) -> str:
        if req.schema_name == "CounselorTurn":  # tags reflections right, lecturing as psychoeducation
            text = "\n".join(m["content"] for m in req.messages)
            return json.dumps({"techniques": ["reflective_listening"] if "sounds like" in text else ["psychoeducation"],
                               "cues": []})
        return warm_judge(req)

    sets = ("evaluate.trust.calib_items=2", "evaluate.metrics=[empathy]", f"evaluate.trust.experts={path}",
            "evaluate.trust.simcheck_sessions=0", "evaluate.trust.expert_turns=12")
    cm, _ = fake_ctx(*sets, responder=both)
    with cm as ctx:
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
        md = people.experts_section(res)["markdown"]
        est = estimate(ctx.cfg).by_stage()
    ann = res["annotator"]
    assert ann["ran"] and ann["labelled"] == ann["turns"] == 12 and ann["annotator"]["kappa"] == 1.0
    assert re.search(r"Annotator against experts: \S+ labelled 12 of 12", md) and "| reflection |" in md
    assert est["calibrate"]["calls"] >= 12
    cm, _ = fake_ctx("name=other", "evaluate.trust.simcheck_sessions=0", responder=both)
    with cm as ctx:
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert res["annotator"] == {"ran": False, "note": "evaluate.trust.expert_turns is 0"}
    assert "Annotator against experts: not run (evaluate.trust.expert_turns is 0)" in people.experts_section(res)["markdown"]
