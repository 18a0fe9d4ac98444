"""Simulation and scoring logic with the fake backend: pairing across variants, turn limit and
counselor close, contamination against the mix training sets, judge failures, noise, agreement."""
from __future__ import annotations

import json
import re

import pytest

from hybridtune.errors import UserError
from hybridtune.evaluate import score as score_mod
from hybridtune.evaluate import simulate
from hybridtune.records import ModelEntry, Scenario, Session
from hybridtune.registry import save_entry

SCENARIOS = [
    Scenario(id="sc1", summary="Worries about losing a job", attitude="negative",
             scenario="I missed a deadline at work last week and I keep thinking my manager will fire me soon."),
    Scenario(id="sc2", summary="Feels like a bad father", attitude="positive",
             scenario="My son was upset I missed his football game and now I believe I am a terrible parent."),
]
VARIANTS = ["base", "real", "hybrid"]


def is_patient(req) -> bool:
    return req.messages[0]["content"].startswith("You are role-playing a client")


def responder(req):
    if req.json_schema is not None:  # the judge: score from the transcript length, so scores vary
        text = req.messages[-1]["content"]
        if "BROKEN" in text:
            return "not json at all"
        return json.dumps({"rationale": "Reflects feelings.", "score": 3 + len(text) % 7})
    if is_patient(req):
        topic = "deadline" if "deadline" in req.messages[0]["content"] else "son"
        return f"I feel stuck about my {topic}, turn {len(req.messages)}."
    last = req.messages[-1]["content"]
    if "deadline" in req.messages[1]["content"] and len(req.messages) >= 4:
        return "Let's end the session here. Goodbye and take care."
    return f"That sounds heavy. What went through your mind? ({len(last) % 5})"


def setup_run(ctx, scenarios=SCENARIOS):
    for v in VARIANTS:
        save_entry(ctx.store, ModelEntry(variant=v, backend="fake", model="fake"))
    ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", scenarios)


def test_simulation_is_paired_and_ends_are_recorded(fake_ctx):
    ctx_cm, fake = fake_ctx("evaluate.max_turns=3", responder=responder)
    with ctx_cm as ctx:
        setup_run(ctx)
        summary = ctx.run_stage("simulate", simulate.run)
        sessions = simulate.load(ctx)
    assert summary["conversations"] == 6 and summary["failed"] == 0
    assert {(s.meta["scenario_id"], s.meta["variant"]) for s in sessions} == {(sc.id, v) for sc in SCENARIOS for v in VARIANTS}
    # same patient prompt + seed for every variant: the opening request is identical across variants
    openings = [r for r in fake.requests if is_patient(r) and len(r.messages) == 2]
    for sc in SCENARIOS:
        reqs = [r for r in openings if sc.scenario in r.messages[0]["content"]]
        assert len(reqs) == 3 and all(r.model_dump() == reqs[0].model_dump() for r in reqs)
    # the counselor's seeds follow the turn number, identical across variants
    first_turns = [r for r in fake.requests if not is_patient(r) and r.json_schema is None and len(r.messages) == 2]
    assert len(first_turns) == 6 and len({r.seed for r in first_turns}) == 1
    assert all(r.messages[0]["content"] == ctx.system_prompt for r in first_turns)
    by = {(s.meta["scenario_id"], s.meta["variant"]): s for s in sessions}
    closed, cut = by[("sc1", "hybrid")], by[("sc2", "hybrid")]
    assert closed.meta["end_reason"] == "counselor_closed" and closed.meta["counselor_turns"] == 2
    assert cut.meta["end_reason"] == "max_turns" and cut.meta["counselor_turns"] == 3
    assert [m.role for m in cut.messages] == ["system", "user", "assistant", "user", "assistant", "user", "assistant"]
    assert all(s.source == "simulated" for s in sessions)


def test_contaminated_scenario_is_left_out(fake_ctx):
    ctx_cm, _ = fake_ctx("evaluate.max_turns=1", responder=responder)
    with ctx_cm as ctx:
        setup_run(ctx)
        leak = Session(id="t1", source="real", messages=[{"role": "user", "content": SCENARIOS[1].scenario + " Help."}])
        ctx.store.stage("mix").path.joinpath("hybrid").mkdir(parents=True)
        ctx.store.path("mix", "hybrid", "train.jsonl").write_text(leak.model_dump_json() + "\n")
        ctx.run_stage("simulate", simulate.run)
        report = ctx.store.stage("simulate").read_json("contamination.json")
        sessions = simulate.load(ctx)
    assert report["contaminated_scenarios"] == ["sc2"] and report["training_sessions"] == 1
    assert {s.meta["scenario_id"] for s in sessions} == {"sc1"}


def test_no_variants_is_a_user_error(fake_ctx):
    ctx_cm, _ = fake_ctx()
    with ctx_cm as ctx:
        ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", SCENARIOS)
        with pytest.raises(UserError, match="models.json"):
            ctx.run_stage("simulate", simulate.run)


def test_score_counts_failures_noise_and_agreement(fake_ctx):
    ctx_cm, fake = fake_ctx("evaluate.max_turns=2", "evaluate.judge_samples=2", "evaluate.second_judge_endpoint=other",
                            "endpoints.other.backend=fake", "llm.max_reasks=0", "llm.max_failure_rate=0.5",
                            responder=responder)
    with ctx_cm as ctx:
        setup_run(ctx)
        ctx.run_stage("simulate", simulate.run)
        # corrupt one session's transcript so the judge's reply for it is invalid
        st = ctx.store.stage("simulate")
        sessions = simulate.load(ctx)
        bad = sessions[0].model_copy(deep=True)
        bad.messages[1].content = "BROKEN " + bad.messages[1].content
        st.write_records("sessions.jsonl", [bad, *sessions[1:]])
        summary = ctx.run_stage("score", score_mod.run)
        s = ctx.store.stage("score").read_json("summary.json")
        rows = list(ctx.store.stage("score").read_dicts("session_scores.jsonl"))
    # 6 sessions x 2 judges x 2 metrics x 2 samples; the broken session fails for judge 1 only
    # (judge 2 is a separate fake endpoint that answers minimal valid JSON)
    assert s["judgments"] == 48 and s["failed"] == 4 and summary["failed"] == 4
    assert s["judges"] == {"judge": "smollm2", "judge2": "smollm2"}
    assert s["judge_noise"]["empathy"]["k"] == 2 and s["judge_noise"]["empathy"]["mean_sd"] == 0.0
    assert s["agreement"]["empathy"]["n"] == 5
    assert set(s["length_bias"]) == {"empathy", "relevance"} and s["unscored_sessions"] == 1
    assert len(rows) == 6 and sum(r["empathy"] is None for r in rows) == 1
    assert all(r["words"] > 0 for r in rows)
    judge_reqs = [r for r in fake.requests if r.json_schema is not None]
    assert any(re.search(r"Counselor: ", r.messages[-1]["content"]) for r in judge_reqs)
    assert {r.seed for r in judge_reqs} and len({r.seed for r in judge_reqs}) == 2  # k=2 distinct samples


def test_limiter_survives_a_new_event_loop():
    """simulate and score run in separate asyncio.run loops over one LLM pool: a semaphore that
    waited in the first loop must not break the second (regression: 'bound to a different event loop')."""
    import asyncio

    from hybridtune.llm.limits import Limiter

    lim = Limiter(1, rpm=6000)

    async def contend():
        async def hold():
            await lim.acquire(1)
            async with lim.sem:
                await asyncio.sleep(0.01)
        await asyncio.gather(hold(), hold(), hold())

    asyncio.run(contend())
    asyncio.run(contend())


def test_ctrs_rubric_scores_eleven_items(fake_ctx):
    ctx_cm, fake = fake_ctx("evaluate.max_turns=1", "evaluate.metrics=[empathy, ctrs]", responder=responder)
    with ctx_cm as ctx:
        setup_run(ctx, SCENARIOS[:1])
        ctx.run_stage("simulate", simulate.run)
        fake.responder = None  # schema stand-ins: every CTRS item 5 (minimal valid instance)
        ctx.run_stage("score", score_mod.run)
        scores = list(ctx.store.stage("score").read("scores.jsonl", score_mod.Score))
        rows = list(ctx.store.stage("score").read_dicts("session_scores.jsonl"))
    ctrs = [s for s in scores if s.metric == "ctrs"]
    assert len(ctrs) == 3 and all(len(s.items) == 11 and s.score == sum(s.items.values()) for s in ctrs)
    assert all(r["ctrs"] == 55.0 and r["empathy"] == 5.0 for r in rows)
    assert any("Cognitive Therapy Rating Scale" in r.messages[0]["content"] for r in fake.requests if r.json_schema)


def test_judge_reply_with_raw_newline_in_rationale_is_scored(fake_ctx):
    """llama.cpp's JSON grammar lets raw newlines into strings; that is a valid score, not a failure."""
    ctx_cm, fake = fake_ctx("evaluate.max_turns=1", "evaluate.metrics=[empathy]", "llm.max_reasks=0", responder=responder)
    with ctx_cm as ctx:
        setup_run(ctx, SCENARIOS[:1])
        ctx.run_stage("simulate", simulate.run)
        fake.responder = lambda req: '{"rationale": "Warm.\nOn topic.", "score": 8}'
        summary = ctx.run_stage("score", score_mod.run)
        scores = list(ctx.store.stage("score").read("scores.jsonl", score_mod.Score))
    assert summary["failed"] == 0 and [s.score for s in scores] == [8.0] * 3 and scores[0].rationale == "Warm.\nOn topic."
