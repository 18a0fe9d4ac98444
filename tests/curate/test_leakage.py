"""Leak-free held-out data: the held-out real sessions are decided before synthesis (few-shot
exemplars come only from the training side), and the mix stage's leakage check (ids,
lineage, exact and near-duplicate text) fails the run on a leak."""
from __future__ import annotations

import pytest

from hybridtune import split
from hybridtune.curate import mix
from hybridtune.errors import UserError
from hybridtune.records import Message, Session
from hybridtune.synth.sessions import Exemplars

from .helpers import session, write_curated

SETS = ("mix.size=40", "mix.allow_smaller=true", "mix.test_fraction=0.3",
        "mix.contamination='off'", "synth.fewshot=0")


def _real(n=10):
    return [session(i, "real", mean=7) for i in range(n)]


def test_fewshot_exemplars_never_include_a_held_out_real_session(fake_ctx):
    """Defect: synth took exemplars from all of real/sessions.jsonl, and test_real was cut later
    from the same sessions, so synthetic training data was generated from held-out sessions."""
    real = _real()
    cm, _ = fake_ctx(*SETS)
    with cm as ctx:
        ctx.store.stage("real").write_records("sessions.jsonl", real)
        ctx.run_stage("split", split.run)
        pool = {s.id for s in Exemplars(ctx).sessions}
        write_curated(ctx.store.root, selected=[*real, *(session(i, mean=7) for i in range(10))])
        ctx.run_stage("mix", mix.run)
        test_real = {s.id for s in ctx.store.stage("mix").read("test_real.jsonl", Session)}
        leak = ctx.store.stage("mix").read_json("leakage.json")
    assert len(test_real) == 3 and pool and not pool & test_real
    assert pool | test_real == {s.id for s in real}
    assert leak["leaks"] == [] and leak["test_sessions"] > 0


def test_mix_fails_when_training_data_was_generated_from_a_held_out_session(fake_ctx):
    real = _real()
    # synthetic sessions made (elsewhere, before this fix) with every real session as an exemplar
    syn = [session(i, mean=7).model_copy(update={"meta": {"techniques": ["validation"], "topic": "work",
                                                           "fewshot_ids": [s.id for s in real]}}) for i in range(10)]
    cm, _ = fake_ctx(*SETS)
    with cm as ctx:
        ctx.store.stage("real").write_records("sessions.jsonl", real)
        ctx.run_stage("split", split.run)
        write_curated(ctx.store.root, selected=[*real, *syn])
        with pytest.raises(UserError, match=r"leakage\.json: \d+ leak\(s\).*few-shot exemplar"):
            ctx.run_stage("mix", mix.run)
        leak = ctx.store.stage("mix").read_json("leakage.json")
    assert {x["kind"] for x in leak["leaks"]} == {"few-shot exemplar"}


def _dialogue(sid, text, source="real", **meta):
    return Session(id=sid, source=source, meta=meta, messages=[
        Message(role="system", content="the shared system prompt every session starts with"),
        Message(role="user", content=text), Message(role="assistant", content="I hear you, tell me more about it")])


STORY = ("my manager criticised my report in front of the whole team and I keep replaying it every night "
         "wondering whether everyone now thinks I am a fraud who should never have been hired")


def test_leakage_check_exact_near_duplicate_and_scenario():
    from hybridtune.curate import leakage

    test = {"test_real.jsonl": [_dialogue("t1", STORY)],
            "test_synthetic.jsonl": [_dialogue("t2", "a different story about sleep", "synthetic", scenario_id="sc9")]}
    train = {"hybrid/train.jsonl": [
        _dialogue("copy", STORY),                                             # exact copy, other id
        _dialogue("near", STORY.replace("every night", "most nights") + " honestly"),  # near-duplicate
        _dialogue("same-scenario", "unrelated words entirely here", "synthetic", scenario_id="sc9"),
        _dialogue("clean", "we talked about a new bedtime routine and a walk after dinner")]}
    rep = leakage.check(train, test, threshold=0.5, k=8)
    kinds = {(x["kind"], x["train_id"]) for x in rep["leaks"]}
    assert kinds == {("exact text", "copy"), ("near-duplicate text", "near"), ("scenario", "same-scenario")}
    assert rep["train_sessions"] == 4 and rep["test_sessions"] == 2
    assert all("<->" in leakage.describe(x) for x in rep["leaks"])
    same_id = leakage.check({"real/train.jsonl": [_dialogue("t1", "x y z")]}, test)
    assert [x["kind"] for x in same_id["leaks"]] == ["id"]
    unit = leakage.check({"qa/train.jsonl": [_dialogue("u1", "short bit", unit="qa", session_id="t1")]}, test)
    assert [x["kind"] for x in unit["leaks"]] == ["unit of a held-out session"]
