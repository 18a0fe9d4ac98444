"""The real embedded model (SmolLM2-135M in llama.cpp) through simulate + score: 1 scenario,
1 variant, 2 counselor turns, short generations. Checks the real path, not the quality."""
from __future__ import annotations

import pytest

from hybridtune.context import open_run
from hybridtune.evaluate import score, simulate
from hybridtune.records import ModelEntry, Scenario
from hybridtune.registry import save_entry


@pytest.mark.model
def test_simulate_and_score_with_embedded_model(make_cfg):
    cfg = make_cfg("evaluate.max_turns=2", "roles.patient.max_tokens=32", "roles.counselor.max_tokens=32",
                   "variants={base: {sources: []}}",
                   "roles.judge.max_tokens=130", "roles.judge.temperature=0", "llm.max_failure_rate=1.0",
                   "endpoints.local.n_ctx=2048", backend="")
    with open_run(cfg) as ctx:
        save_entry(ctx.store, ModelEntry(variant="base", backend="llamacpp", model="smollm2"))
        ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", [Scenario(
            id="sc1", summary="Worries about losing a job after a missed deadline", attitude="neutral",
            scenario="I missed a deadline at work and keep thinking my manager will fire me.")])
        sim = ctx.run_stage("simulate", simulate.run)
        sc = ctx.run_stage("score", score.run)
        sessions = simulate.load(ctx)
        summary = ctx.store.stage("score").read_json("summary.json")
    assert sim["conversations"] == 1
    s = sessions[0]
    assert s.meta["end_reason"] in ("max_turns", "counselor_closed") and 1 <= s.meta["counselor_turns"] <= 2
    assert s.messages[0].role == "system" and s.messages[1].role == "user" and s.messages[1].content
    assert all(m.content for m in s.messages[1:]) or s.meta["end_reason"] == "patient_silent"
    # two judgments (empathy, relevance): each is a valid 1-10 score or a counted failure, never invented
    assert sc["judgments"] == 2 and summary["scored"] + summary["failed"] == 2
    scores = list(ctx.store.stage("score").read("scores.jsonl", score.Score))
    assert all(1 <= x.score <= 10 and x.judge_model for x in scores)
