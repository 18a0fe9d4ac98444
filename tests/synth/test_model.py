"""The synth stages on the real embedded model (SmolLM2-135M via llama.cpp): one persona, one
scenario, one short role-play session. Checks structure only: a 135M model's text is shallow."""
from __future__ import annotations

import pytest

from hybridtune.context import open_run
from hybridtune.records import Persona, Scenario, Session
from hybridtune.synth import personas, scenarios, sessions

pytestmark = pytest.mark.model


def test_one_persona_scenario_session_on_embedded_model(make_cfg):
    cfg = make_cfg(
        "synth.personas=1", "synth.scenarios_per_persona=1", "synth.sessions=1", "synth.persona_checks=false",
        "synth.scenario_checks=false", "synth.annotate_realised=false", "synth.min_exchanges=1",
        "synth.max_exchanges=1", "synth.max_regenerations=1", "llm.max_reasks=1", "llm.max_failure_rate=1",
        "roles.generator.max_tokens=200", "roles.patient.max_tokens=40", "roles.counselor.max_tokens=40",
        "endpoints.local.n_ctx=2048", backend="llamacpp",
    )
    with open_run(cfg) as ctx:
        for name, fn in (("personas", personas.run), ("scenarios", scenarios.run), ("synth", sessions.run)):
            ctx.run_stage(name, fn)
        ps = list(ctx.store.stage("personas").read("personas.jsonl", Persona))
        sc = list(ctx.store.stage("scenarios").read("scenarios.jsonl", Scenario))
        ss = list(ctx.store.stage("synth").read("sessions.jsonl", Session))
        fails = list(ctx.store.stage("personas").read_dicts("failures.jsonl"))
    # structured output goes through llama.cpp's JSON-schema grammar; a failure must be recorded, not lost
    assert len(ps) == 1 or fails
    if not ps:
        pytest.skip("the 135M model produced no valid persona in 2 attempts (failures recorded)")
    assert ps[0].narrative.strip() and ps[0].prompt_version == "synth_persona@1"
    assert len(sc) == 1 and sc[0].scenario.strip()
    assert len(ss) == 1
    s = ss[0]
    assert [m.role for m in s.messages[:3]] == ["system", "user", "assistant"] and s.messages[-1].role == "assistant"  # opens: client
    assert all(m.content.strip() for m in s.messages) and s.meta["ended_by"] in ("closing", "cap")
    assert (ctx.store.path("synth", "synth_report.md")).read_text().startswith("# Synthetic data report")
