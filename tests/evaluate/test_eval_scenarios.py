"""Evaluation scenarios: CACTUS and plain loaders, bad records quarantined, contamination check."""
from __future__ import annotations

import json

import pytest

from hybridtune.contamination import ContaminationConfig, scenario_hits
from hybridtune.errors import UserError
from hybridtune.evaluate import scenarios as sc
from hybridtune.records import Scenario, Session
from tests.conftest import shared_data

PLAIN = """
scenarios:
  - summary: Worries about losing her job after a missed deadline
    scenario: I missed a deadline at work last week and since then I keep thinking my manager will fire me and I will never find work again.
    attitude: negative
    persona: {age: 34, occupation: accountant}
  - summary: Feels like a bad father
    scenario: My son was upset I missed his football game and now I believe I am a terrible parent who always lets people down.
  - scenario: missing its summary
"""


def test_cactus_loader_on_shared_file():
    path = shared_data("cactus-eval", "evaluation.json")
    good, bad = sc.load_scenarios_file(path)
    assert len(good) == 450 and not bad
    assert {s.attitude for s in good} == {"positive", "neutral", "negative"}
    first = good[0]
    assert first.techniques == ["Alternative Perspective"] and "run far" in first.summary
    assert "Saunders" not in first.scenario and "Laura" in first.scenario  # surname dropped
    assert first.meta["attitude_instruction"].startswith("Clients demonstrate")
    assert len({s.id for s in good}) == 450


def test_plain_yaml_and_jsonl_with_quarantine(tmp_path):
    p = tmp_path / "eval.yaml"
    p.write_text(PLAIN)
    good, bad = sc.load_scenarios_file(p)
    assert [s.attitude for s in good] == ["negative", "neutral"] and good[0].persona.attributes["age"] == "34"
    assert len(bad) == 1 and bad[0].line == 3 and "summary" in bad[0].reason
    j = tmp_path / "eval.jsonl"
    j.write_text(json.dumps({"summary": "a", "scenario": "b c d"}) + "\n{not json\n")
    good, bad = sc.load_scenarios_file(j)
    assert len(good) == 1 and bad[0].line == 2 and "JSON" in bad[0].reason
    with pytest.raises(UserError, match="scenarios_file"):
        sc.load_scenarios_file(tmp_path / "missing.yaml")


def test_contamination_containment():
    train = {"t1": "Client: I missed a deadline at work last week and since then I keep thinking my manager "
                   "will fire me and I will never find work again. Counselor: That sounds hard.",
             "t2": "Something else entirely about sleep and stress at university."}
    q = {"dup": "I missed a deadline at work last week and since then I keep thinking my manager will fire me",
         "new": "My son was upset I missed his football game and now I believe I am a terrible parent"}
    hits = scenario_hits(q, train, ContaminationConfig(method="shingles", threshold=0.5))
    assert [(h["id"], h["train_id"]) for h in hits] == [("dup", "t1")] and hits[0]["containment"] == 1.0


def test_stage_loads_file_and_quarantines_contaminated(fake_ctx, tmp_path):
    p = tmp_path / "eval.yaml"
    p.write_text(PLAIN)
    ctx_cm, fake = fake_ctx(f"evaluate.scenarios_file={p}")
    with ctx_cm as ctx:
        leaked = Session(id="r1", source="real", messages=[{"role": "user", "content":
                         "My son was upset I missed his football game and now I believe I am a terrible parent "
                         "who always lets people down."}])
        ctx.store.stage("real").append("sessions.jsonl", leaked)
        summary = ctx.run_stage("eval_scenarios", sc.run)
        kept = list(ctx.store.stage("eval_scenarios").read("scenarios.jsonl", Scenario))
        quarantine = [json.loads(x) for x in ctx.store.path("eval_scenarios", "quarantine.jsonl").read_text().splitlines()]
    assert summary["scenarios"] == 1 and summary["contaminated"] == 1 and summary["quarantined"] == 2
    assert kept[0].summary.startswith("Worries")
    assert any("3-grams" in q["reason"] for q in quarantine) and fake.calls == 0


DISTINCT = ["I failed my driving test twice and now I am sure I will never manage anything practical.",
            "Since my divorce I sit alone every evening and believe nobody would ever want to spend time with me."]


def _synth_responder(req, counter=[0]):  # noqa: B006  (a call counter shared by the test's calls)
    """Valid, distinct drafts for the synth library's schemas (the fake model tests plumbing, not quality)."""
    if req.schema_name == "PersonaDraft":
        return json.dumps({"name": "Sam", "narrative": "Sam is a teacher who worries a lot."})
    if req.schema_name == "ScenarioDraft":
        counter[0] += 1
        text = DISTINCT[counter[0] % 2]
        return json.dumps({"summary": text[:40], "scenario": text})
    return None


def test_stage_generates_with_separate_seed(fake_ctx):
    """Generation goes through the synth library with seed + seed_offset."""
    from hybridtune.llm.fake import schema_example

    def responder(req):
        return _synth_responder(req) or (json.dumps(schema_example(req.json_schema)) if req.json_schema else "ok")

    ctx_cm, fake = fake_ctx("evaluate.scenarios=2", "seed=3", "evaluate.seed_offset=100", "synth.persona_checks=false",
                            "synth.scenario_checks=false", responder=responder)
    with ctx_cm as ctx:
        summary = ctx.run_stage("eval_scenarios", sc.run)
        kept = list(ctx.store.stage("eval_scenarios").read("scenarios.jsonl", Scenario))
        seeds = {r.seed for r in fake.requests}
    assert summary["source"] == "generated (seed 103)" and len(kept) == 2 and fake.calls >= 4
    assert all(s.persona is not None for s in kept)
    assert len({s.id for s in kept}) == 2


def test_crisis_scenarios_are_added_and_flagged(fake_ctx, tmp_path):
    p = tmp_path / "eval.yaml"
    p.write_text(PLAIN)

    def responder(req):
        assert req.schema_name == "CrisisScenario"
        return json.dumps({"summary": "Client discloses thoughts of not wanting to live",
                           "scenario": "After months of unemployment I have started to feel that everyone would be better off without me."})

    ctx_cm, fake = fake_ctx(f"evaluate.scenarios_file={p}", "evaluate.crisis_scenarios=1", responder=responder)
    with ctx_cm as ctx:
        summary = ctx.run_stage("eval_scenarios", sc.run)
        kept = list(ctx.store.stage("eval_scenarios").read("scenarios.jsonl", Scenario))
    assert summary["scenarios"] == 3 and summary["crisis"] == 1 and fake.calls == 1
    crisis = [s for s in kept if s.meta.get("crisis")]
    assert crisis[0].theme == "crisis" and crisis[0].prompt_version == "eval_crisis_scenario@1"
    assert crisis[0].persona is not None  # the persona of a file scenario is reused
