"""The curate stage with the queue-driven fake judge: outputs, routing of an invalid judge
reply to review, resume, and Krippendorff's alpha with a second judge."""
from __future__ import annotations

import re

import pytest

from hybridtune.curate import judge
from hybridtune.records import Session

from .helpers import session, verdict


def _responder(req):
    """Score from the words in the transcript: 'great' 8, 'poor' 3, 'mixed' 5; 'again' raises repetition."""
    text = req.messages[1]["content"].split("Transcript:")[-1]  # the judge prompt (re-asks append after it)
    if "broken" in text:
        return "I think this session is fine."  # never valid JSON
    score = 8 if "great" in text else 3 if "poor" in text else 5
    return verdict(score, repetition="again" in text)


def _seed(ctx, synth, real=()):
    ctx.store.stage("synth").write_records("sessions.jsonl", synth)
    ctx.store.stage("real").write_records("sessions.jsonl", list(real))


def test_curate_stage_writes_judged_selected_review(fake_ctx):
    synth = [session(1, words="great"), session(2, words="poor"), session(3, words="mixed"),
             session(4, words="great again"), session(5, words="broken")]
    real = [session(9, "real")]
    cm, fake = fake_ctx("curate.threshold=6", "curate.borderline=1.5", "curate.min_per_technique=0",
                        "llm.max_reasks=1", "llm.max_failure_rate=0.5", responder=_responder)
    with cm as ctx:
        _seed(ctx, synth, real)
        summary = ctx.run_stage("curate", judge.run)
        st = ctx.store.stage("curate")
        judged = {s.id: s for s in st.read("judged.jsonl", Session)}
        sel = {k: {s.id: s for s in st.read(f"{k}.jsonl", Session)} for k in ("selected", "review", "rejected")}
    assert set(judged) == {s.id for s in synth[:4]}  # the broken one failed
    j = judged[synth[0].id].scores["judge"]
    assert j["mean"] == 8 and j["prompt"] == "curate_judge@2" and j["rationales"]["realism"] == "scored 8"
    assert set(sel["selected"]) == {synth[0].id, real[0].id}  # unjudged real kept
    assert set(sel["rejected"]) == {synth[1].id}
    reasons = {k: v.meta["curate"]["reasons"] for k, v in sel["review"].items()}
    assert reasons == {synth[2].id: ["borderline:5.00"], synth[3].id: ["flag:repetition"], synth[4].id: ["judge_failed"]}
    assert summary["judge_failed"] == 1 and summary["selected"] == 2
    # the judge saw the transcript with speaker labels and the planned techniques
    prompt = next(r for r in fake.requests if "session 1 " in r.messages[-1]["content"]).messages[-1]["content"]
    assert "client: synthetic session 1 turn 0" in prompt and "planned: validation" in prompt
    assert all(s.scores["risk"]["risk"] for v in sel.values() for s in v.values())


def test_rerun_resumes_without_rejudging(fake_ctx):
    synth = [session(i, words="great") for i in range(3)]
    cm, fake = fake_ctx("curate.max_tokens=333", responder=_responder)
    with cm as ctx:
        _seed(ctx, synth)
        ctx.run_stage("curate", judge.run)
        calls = fake.calls
        assert {r.max_tokens for r in fake.requests} == {333}  # the stage's limit beats the role's
        ctx.run_stage("curate", judge.run, force=True)
        assert fake.calls == calls  # judged records are reused


def test_second_judge_reports_krippendorff_alpha(fake_ctx):
    synth = [session(i, words=w) for i, w in enumerate(["great", "poor", "mixed", "great", "poor"])]
    cm, _ = fake_ctx("endpoints.second.backend=fake", "curate.second_judge_endpoint=second", responder=_responder)
    with cm as ctx:
        from hybridtune.llm.fake import FakeBackend

        # the second judge agrees exactly, so alpha must be 1
        ctx.llms.install("second", FakeBackend(responder=_responder))
        _seed(ctx, synth)
        summary = ctx.run_stage("curate", judge.run)
        report = ctx.store.stage("curate").file("report.md").read_text()
    assert summary["krippendorff_alpha"]["mean"] == 1.0
    assert re.search(r"Krippendorff's alpha", report)


def test_crisis_screen_routes_risky_sessions_to_review(fake_ctx):
    pytest.importorskip("hybridtune.safety.rules")
    risky = session(1, words="great")
    risky.messages[0].content = "I have pills saved up and I am going to kill myself tonight."
    cm, _ = fake_ctx(responder=_responder)
    with cm as ctx:
        _seed(ctx, [risky, session(2, words="great")])
        ctx.run_stage("curate", judge.run)
        review = list(ctx.store.stage("curate").read("review.jsonl", Session))
    assert [s.id for s in review] == [risky.id]
    assert review[0].meta["curate"]["reasons"][0].startswith("crisis_screen:")
    assert review[0].scores["risk"]["risk"] in ("high", "imminent") and "evidence" not in review[0].scores["risk"]


def test_judge_agreement_alpha_tracks_disagreement_and_skips_failed_second_verdicts():
    def with_two(i, a, b):
        s = session(i, mean=a)
        s.scores["judge2"] = {k: v for k, v in session(i, mean=b).scores["judge"].items()} if b else {"error": "invalid"}
        return s

    agree = [with_two(i, m, m) for i, m in enumerate([2, 4, 6, 8, 9])]
    oppose = [with_two(i, m, 11 - m) for i, m in enumerate([2, 4, 6, 8, 9])]
    assert judge.judge_agreement(agree)["mean"] == 1.0
    assert judge.judge_agreement(oppose)["mean"] < 0
    assert judge.judge_agreement([*agree, with_two(9, 3, None)])["mean"] == 1.0  # the failed one is left out


def test_judge_off_keeps_screened_sessions_without_a_model_call(fake_ctx):
    """curate.judge=false (a judge too weak to select): no judge call, every session the crisis
    screen passes is selected as not_judged, and a crisis session still goes to review."""
    synth = [session(1, words="great"), session(2, words="broken"),
             session(3, words="I have a plan to kill myself tonight")]
    real = session(9, "real")
    cm, fake = fake_ctx("curate.judge=false", "curate.min_per_technique=0", responder=_responder)
    with cm as ctx:
        _seed(ctx, synth, [real])
        summary = ctx.run_stage("curate", judge.run)
        st = ctx.store.stage("curate")
        sel = {k: {s.id: s for s in st.read(f"{k}.jsonl", Session)} for k in ("selected", "review", "rejected")}
    assert not [r for r in fake.requests if "Transcript:" in r.messages[-1]["content"]]  # nobody was judged
    assert set(sel["selected"]) == {synth[0].id, synth[1].id, real.id}
    assert all(s.meta["curate"]["reasons"] == ["not_judged"] for s in sel["selected"].values())
    assert set(sel["review"]) == {synth[2].id} and summary["judge_failed"] == 0


def test_the_judging_line_adds_up():
    """The demo printed 'judging 8 sessions (8 synthetic, 7 real)': the 7 real ones were not judged."""
    from hybridtune.curate.judge import judging_line

    synth, real = [object()] * 8, [object()] * 7
    assert judging_line(synth, real, True, False) == ("curate: judging 8 sessions (8 synthetic); "
                                                      "not judged: 7 real (curate.judge_real=false)")
    assert judging_line(synth, real, True, True) == "curate: judging 15 sessions (8 synthetic + 7 real)"
    assert judging_line(synth, [], True, False) == "curate: judging 8 sessions (8 synthetic)"
