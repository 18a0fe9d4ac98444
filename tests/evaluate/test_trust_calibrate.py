"""Judge validation (stage `calibrate`) and the patient-simulator check: degradation set,
AUC against known values, verdicts, and small end-to-end runs with the fake backend and
(marked `model`) the embedded judge."""
from __future__ import annotations

import asyncio
import json
import re

import numpy as np
import pytest

from hybridtune.evaluate import calibrate, simcheck
from hybridtune.evaluate.calibrate import CalibRating, analyze, build_items, verdict, within_item_auc
from hybridtune.records import Message, Persona, Scenario, Session

LISTS = {"generic": ["I see. Go on."], "off_topic": ["The capital of France is Paris."],
         "dismissive": ["Just get over it."]}
KINDS = ["unrelated", "generic", "off_topic", "dismissive", "shuffled", "unrelated_matched"]


def real_session(i: int, turns: int = 2) -> Session:
    msgs = [Message(role="system", content="own system prompt")]
    for t in range(turns):
        msgs += [Message(role="user", content=f"client {i} says thing {t}"),
                 Message(role="assistant", content=f"counselor {i} reflects thing {t} warmly")]
    return Session(id=f"s{i}", source="real", messages=msgs, meta={"situation": f"situation {i}"})


def test_degradation_set_structure():
    sessions = [real_session(i) for i in range(5)]
    items = build_items(sessions, 4, context=3, kinds=KINDS, lists=LISTS, seed=1)
    by_item: dict[str, dict[str, object]] = {}
    for it in items:
        by_item.setdefault(it.item, {})[it.version] = it
    assert len(by_item) == 4  # one original per session, up to n
    for versions in by_item.values():
        assert set(versions) == {"original", *KINDS}
        orig = versions["original"]
        assert orig.reply.startswith(f"counselor {orig.session_id[1:]}")
        # the context ends with the client turn the original answers, has no system message, at most 3 messages
        assert orig.context[-1].role == "user" and len(orig.context) <= 3
        assert all(m.role != "system" for m in orig.context)
        unrel = versions["unrelated"]
        assert unrel.reply.startswith("counselor ") and not unrel.reply.startswith(f"counselor {orig.session_id[1:]} ")
        assert versions["off_topic"].reply == LISTS["off_topic"][0]
        assert all(v.context == orig.context for v in versions.values())
        # the length-keeping degradations: same word count as the original, different text
        for kind in ("shuffled", "unrelated_matched"):
            assert len(versions[kind].reply.split()) == len(orig.reply.split()) and versions[kind].reply != orig.reply
        assert sorted(versions["shuffled"].reply.split()) == sorted(orig.reply.split())
        assert f"counselor {orig.session_id[1:]} " not in versions["unrelated_matched"].reply
    # deterministic: same inputs, same ids
    assert [i.id for i in build_items(sessions, 4, 3, KINDS, LISTS, 1)] == [i.id for i in items]


def test_single_session_has_no_unrelated_version():
    items = build_items([real_session(0)], 5, 3, KINDS, LISTS, 0)
    assert {i.version for i in items} == {"original", "generic", "off_topic", "dismissive", "shuffled"}


def test_within_item_auc_known_values():
    v = {("i1", "original"): 3, ("i1", "g"): 1, ("i1", "d"): 3, ("i2", "original"): 5, ("i2", "g"): 6}
    auc, per = within_item_auc(v)
    assert per == {"i1": 0.75, "i2": 0.0} and auc == 0.375  # i1: 3>1, 3=3 -> (1 + .5) / 2; i2: 5<6
    assert within_item_auc(v, ["g"])[0] == 0.5
    # pooled, i2's original (5) would beat i1's degraded versions: only the item's own versions count
    assert within_item_auc({("i1", "g"): 1})[0] is None


def _ratings(scores: dict[tuple[str, str], list[float]], words=None) -> list[CalibRating]:
    out = []
    for (item, version), vals in scores.items():
        for k, v in enumerate(vals):
            out.append(CalibRating(id=f"{item}{version}{k}", item=item, version=version, metric="empathy", sample=k,
                                   score=v, words=(words or {}).get(version, 5), judge_model="m", prompt="p@1"))
    return out


def test_analyze_noise_length_and_verdicts():
    r = _ratings({("i1", "original"): [8, 6], ("i1", "generic"): [2, 2], ("i2", "original"): [7, 7],
                  ("i2", "generic"): [7, 7]}, words={"original": 20, "generic": 4})
    m = analyze(r, ["empathy"], 0.7)["empathy"]
    # within item: i1 original 7 > generic 2 -> 1; i2 original 7 = generic 7 -> .5
    assert m["auc"] == pytest.approx(0.75) and m["items"] == 2 and not m["passes"]
    assert m["auc_ci"][0] < 0.7 and "cannot be validated with 2 items" in m["reach"]
    assert m["repeat_sd"] == pytest.approx((2 ** 0.5 + 0 + 0 + 0) / 4)  # SD(8,6)=1.414; others 0
    assert m["length_baseline_auc"] == 1.0  # originals are always longer here
    assert m["auc_by_degradation"] == {"generic": 0.75}
    ok, text = verdict({"empathy": m}, 0.7)
    assert ok is False and text.startswith("judge not validated on this run") and "lower bound" in text
    assert "length baseline" in text  # 0.75 does not beat length's 1.0 either
    many = {(f"i{k}", v): [9.0 if v == "original" else 2.0] for k in range(12) for v in ("original", "generic",
                                                                                            "shuffled")}
    words = {"original": 20, "generic": 4, "shuffled": 20}
    good = analyze(_ratings(many, words), ["empathy"], 0.7)["empathy"]
    assert good["auc"] == 1.0 and good["auc_ci"][0] >= 0.7 and good["length_baseline_auc"] == 0.75
    assert good["passes"] and good["auc_length_keeping"] == 1.0 and good["reach"] is None
    ok, text = verdict({"empathy": good}, 0.7)
    assert ok is True and text.startswith("judge validated on this run")
    assert verdict({}, 0.7)[0] is None
    assert verdict({"empathy": analyze([], ["empathy"], 0.7)["empathy"]}, 0.7)[0] is None


def _judge_responder(req):
    """A fake judge that reads: it rates the reply high only when it is the counselor's own
    answer to the client turn before it (never by length)."""
    if req.schema_name == "TurnJudgment":
        return json.dumps({"reason": "fine", "consistent": True, "acts_as_counselor": False})
    text = req.messages[-1]["content"]
    last = re.findall(r"Counselor: (.*)", text)[-1].strip()
    i, t = re.findall(r"Client: client (\d+) says thing (\d+)", text)[-1]
    return json.dumps({"rationale": "r", "score": 8 if last == f"counselor {i} reflects thing {t} warmly" else 2})


def _write_inputs(ctx, n_sessions=4):
    ctx.store.stage("mix").write_records("test_real.jsonl", [real_session(i) for i in range(n_sessions)])
    scen = Scenario(id="sc1", summary="exam stress", scenario="failed an exam", persona=Persona(
        id="p1", attributes={"age": "20"}, narrative="A student."))
    ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", [scen])
    sims = [Session(id=f"sim{v}", source="simulated", meta={"variant": v, "scenario_id": "sc1"}, messages=[
        Message(role="user", content="I failed my exam."), Message(role="assistant", content="That sounds hard."),
        Message(role="user", content="How does that make you feel?" if v == "base" else "I feel stupid.")])
        for v in ("base", "hybrid")]
    ctx.store.stage("simulate").write_records("sessions.jsonl", sims)


def test_calibrate_end_to_end_with_fake_judge(fake_ctx, monkeypatch):
    cm, fake = fake_ctx("evaluate.trust.calib_items=10", "evaluate.trust.calib_samples=2",
                        "evaluate.metrics=[empathy, relevance]", responder=_judge_responder)
    with cm as ctx:
        monkeypatch.setattr(ctx.domain, "data_file", lambda name, _orig=ctx.domain.data_file:
                            LISTS if name == "prompts/trust_degradations.yaml" else _orig(name))
        _write_inputs(ctx, n_sessions=10)
        summary = ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert summary["validated"] is True and res["validated"] is True
    assert res["originals"] == 10 and res["versions"] == 70 and res["ratings"] == 70 * 2 * 2
    for m in ("empathy", "relevance"):
        r = res["metrics"][m]
        assert r["auc_by_degradation"] == {k: 1.0 for k in KINDS} and r["auc"] == 1.0
        assert r["auc_ci"][0] >= 0.7 and r["beats_length_by"] >= 0.1 and r["repeat_sd"] == 0.0
    # the judge saw the score stage's own rubric, with the reply last in the transcript
    rubric = [q for q in fake.requests if q.schema_name == "Rating"]
    assert rubric and "Rate the counselor's empathy" in rubric[0].messages[-1]["content"]
    sc = res["simcheck"]
    assert sc["ran"] and sc["overall"]["turns"] == 4
    assert sc["by_variant"]["base"]["role_confusion_heuristic"] == 0.5  # "How does that make you feel?"
    assert sc["by_variant"]["hybrid"]["role_confusion_heuristic"] == 0.0
    assert sc["overall"]["inconsistent"] == 0.0


def test_calibrate_not_validated_and_fallback_to_real_sessions(fake_ctx):
    # a judge that gives every reply the same score cannot tell originals from degraded ones
    cm, _ = fake_ctx("evaluate.trust.calib_items=3", "evaluate.trust.calib_samples=1", "evaluate.metrics=[empathy]",
                     responder=lambda req: json.dumps({"rationale": "r", "score": 5}))
    with cm as ctx:
        ctx.store.stage("real").write_records("sessions.jsonl", [real_session(i) for i in range(3)])
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert res["validated"] is False and res["metrics"]["empathy"]["auc"] == 0.5
    assert res["source"] == "real/sessions.jsonl" and res["warnings"]
    assert res["simcheck"]["ran"] is False


def test_calibrate_with_no_data_says_so(fake_ctx):
    cm, _ = fake_ctx()
    with cm as ctx:
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert res["validated"] is None and "could not run" in res["verdict"]


def test_role_confusion_heuristic(fake_ctx):
    cm, _ = fake_ctx()
    with cm as ctx:
        pats = simcheck.role_patterns(ctx)
    assert simcheck.looks_like_counselor("Counselor: let's begin", pats)
    assert simcheck.looks_like_counselor("And how does that make you feel about it?", pats)
    assert not simcheck.looks_like_counselor("I feel like I failed everyone again.", pats)
    assert not simcheck.looks_like_counselor("My counselor at school never listened.", pats)


@pytest.mark.model
def test_calibrate_with_embedded_judge(make_cfg):
    """The real embedded judge on a tiny calibration set: the stage completes and reports an
    AUC or an honest n/a (the 135M model's numbers mean nothing; this checks the plumbing)."""
    from hybridtune.context import open_run

    cfg = make_cfg("evaluate.trust.calib_items=2", "evaluate.trust.calib_samples=1", "evaluate.metrics=[empathy]",
                   "evaluate.trust.degradations=[off_topic]", "roles.judge.max_tokens=80",
                   "roles.judge.temperature=0", "llm.max_failure_rate=1.0", "evaluate.trust.simcheck_sessions=0",
                   backend="llamacpp")
    with open_run(cfg) as ctx:
        ctx.store.stage("mix").write_records("test_real.jsonl", [real_session(i, turns=1) for i in range(2)])
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
        asyncio.run(ctx.llms.aclose())
    assert res["versions"] == 4 and res["ratings_planned"] == 4
    a = res["metrics"]["empathy"]["auc"]
    # 2 items can never validate (a perfect judge's CI lower bound is 0.34)
    assert (a is None and res["validated"] is None) or (0.0 <= a <= 1.0 and res["validated"] is False)


def test_unparseable_judge_is_not_validated_and_does_not_stop_the_run(fake_ctx):
    """Judge replies that never parse: the stage finishes, says 'not validated', and counts them."""
    cm, _ = fake_ctx("evaluate.trust.calib_items=2", "evaluate.trust.calib_samples=1", "evaluate.metrics=[empathy]",
                     "llm.max_reasks=0", "llm.max_failure_rate=0.25", responder=lambda req: "no json here")
    with cm as ctx:
        ctx.store.stage("mix").write_records("test_real.jsonl", [real_session(i) for i in range(2)])
        summary = ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
        failures = list(ctx.store.stage("calibrate").read_dicts("failures.jsonl"))
    assert summary["validated"] is False and res["ratings"] == 0 and res["failure_rate"] == 1.0
    assert "could not be parsed" in res["verdict"] and len(failures) == res["ratings_planned"] == 14


def _gate_ratings(rng, reads_length_kept: bool, items: int = 50) -> list[CalibRating]:
    """A judge that rates short, generic or off-topic replies low and, unless `reads_length_kept`,
    is at chance on the degradations that keep the original's length (it never reads)."""
    out = []
    lens = rng.integers(6, 40, items)
    for i in range(items):
        words = {"original": lens[i], "unrelated": lens[(i + items // 2) % items], "generic": 4, "off_topic": 7,
                 "dismissive": 5, "shuffled": lens[i], "unrelated_matched": lens[i]}
        scores = {"original": rng.integers(4, 10)}
        for k in KINDS:
            kept = k in ("shuffled", "unrelated_matched")
            scores[k] = rng.integers(4, 10) if kept and not reads_length_kept else rng.integers(1, 4)
        out += [CalibRating(id=f"{i}{v}", item=f"i{i}", version=v, metric="empathy", sample=0, score=float(s),
                            words=int(words[v]), judge_model="m", prompt="p@1") for v, s in scores.items()]
    return out


def test_gate_false_pass_rate_at_chance_is_at_most_5_percent():
    """Defect (issue 27): the gate's margin was a point difference and the length-keeping AUC was
    not in the decision, so a judge at chance on the shuffled and length-matched replies passed
    (a third of 400 simulated 50-item calibrations on the old code). Now at most 5%, while a
    judge that reads passes every time."""
    rng = np.random.default_rng(0)
    chance = [analyze(_gate_ratings(rng, False), ["empathy"], 0.7)["empathy"] for _ in range(400)]
    assert np.mean([m["passes"] for m in chance]) <= 0.05
    assert "length-keeping" in verdict({"empathy": chance[0]}, 0.7)[1]
    reads = [analyze(_gate_ratings(rng, True), ["empathy"], 0.7)["empathy"]["passes"] for _ in range(50)]
    assert all(reads)


def test_gate_counts_items_after_failures_and_reports_partial_samples():
    """Defect: failed ratings silently removed items. An item whose original failed is not
    counted (items_lost says so), and a reply with fewer than k ratings is counted as partial."""
    r = _ratings({("i1", "original"): [8, 8], ("i1", "generic"): [2], ("i2", "generic"): [2, 2],
                  ("i3", "original"): [8, 7], ("i3", "generic"): [3, 2]})
    m = analyze(r, ["empathy"], 0.7, planned_items=3, samples=2)["empathy"]
    assert m["items"] == 2 and m["items_lost"] == 1 and m["partial"] == 1


def test_gate_has_its_own_failure_cap(fake_ctx):
    """Defect: the gate failed only above llm.max_failure_rate, which cpu-study sets to 0.9 for its
    weak model, so it could pass on 10% of its ratings. A judge that reads but fails every
    other rating is not validated under evaluate.trust.max_failure_rate (0.2)."""
    calls = {"n": 0}

    def flaky(req):
        calls["n"] += 1
        return "no json here" if calls["n"] % 2 else _judge_responder(req)

    cm, _ = fake_ctx("evaluate.trust.calib_items=12", "evaluate.trust.calib_samples=1", "evaluate.metrics=[empathy]",
                     "evaluate.trust.simcheck_sessions=0", "llm.max_reasks=0", "llm.max_failure_rate=0.9",
                     "evaluate.trust.degradations=[generic, shuffled]", responder=flaky)
    with cm as ctx:
        ctx.store.stage("mix").write_records("test_real.jsonl", [real_session(i) for i in range(12)])
        ctx.run_stage("calibrate", calibrate.run)
        res = ctx.store.stage("calibrate").read_json("summary.json")
    assert res["validated"] is False and "evaluate.trust.max_failure_rate" in res["verdict"]
    assert 0.3 < res["failure_rate"] < 0.7
