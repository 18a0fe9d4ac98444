"""Mixing: sizes and real:synthetic ratio, stratification, disjoint held-out test splits,
determinism for a seed, reviewer decisions honoured, short pools, contamination."""
from __future__ import annotations

import pytest

from hybridtune.curate import mix
from hybridtune.curate.config import MixConfig
from hybridtune.curate.decisions import DecisionIn, make_decision
from hybridtune.errors import UserError
from hybridtune.records import Session

from .helpers import scenario, session, write_curated

TECHS = ["validation", "exposure", "mindfulness", "problem_solving"]


def _pools(n_real=30, n_syn=60):
    real = [session(i, "real", techniques=(TECHS[i % 4],), mean=7) for i in range(n_real)]
    # synthetic strata 3:1 (validation : exposure), to check proportional sampling
    syn = [session(i, "synthetic", techniques=("validation" if i % 4 else "exposure",), mean=7) for i in range(n_syn)]
    return real, syn


def _ids(sessions):
    return {s.id for s in sessions}


def test_sizes_ratio_and_disjoint_splits():
    real, syn = _pools()
    out = mix.build(real, syn, MixConfig(size=40, real_ratio=0.25, valid_fraction=0.1, test_fraction=0.1), seed=3)
    hybrid = out["hybrid/train.jsonl"] + out["hybrid/valid.jsonl"]
    assert len(hybrid) == 40 and sum(s.source == "real" for s in hybrid) == 10
    real_only = out["real/train.jsonl"] + out["real/valid.jsonl"]
    assert _ids(real_only) == {s.id for s in hybrid if s.source == "real"}  # variants differ only by synthetic
    assert len(out["test_real.jsonl"]) == 3 and len(out["test_synthetic.jsonl"]) == 6
    tests = _ids(out["test_real.jsonl"]) | _ids(out["test_synthetic.jsonl"])
    assert not tests & _ids(hybrid) and not tests & _ids(real_only)
    assert not _ids(out["hybrid/train.jsonl"]) & _ids(out["hybrid/valid.jsonl"])
    assert len(out["hybrid/valid.jsonl"]) == 4  # 1 real + 3 synthetic: 10% of each source
    # the same real sessions are validation in both variants
    assert {s.id for s in out["hybrid/valid.jsonl"] if s.source == "real"} == _ids(out["real/valid.jsonl"])
    syn_pick = [s for s in hybrid if s.source == "synthetic"]
    avail_exposure = 15 - sum(s.meta["techniques"] == ["exposure"] for s in out["test_synthetic.jsonl"])
    picked_exposure = sum(s.meta["techniques"] == ["exposure"] for s in syn_pick)
    assert abs(picked_exposure - 30 * avail_exposure / 54) < 1  # strata kept in proportion (largest remainder)


def test_deterministic_for_a_seed_and_varies_with_it():
    real, syn = _pools()
    cfg = MixConfig(size=30, real_ratio=0.5)
    a = {k: [s.id for s in v] for k, v in mix.build(real, syn, cfg, seed=1).items()}
    b = {k: [s.id for s in v] for k, v in mix.build(list(reversed(real)), list(reversed(syn)), cfg, seed=1).items()}
    c = {k: [s.id for s in v] for k, v in mix.build(real, syn, cfg, seed=2).items()}
    assert a == b and a != c


def test_short_pool_is_an_error_naming_the_stratum_unless_allowed():
    real, syn = _pools(n_real=8)
    with pytest.raises(UserError, match=r"source=real.*needs 20 sessions but only 7 are eligible.*allow_smaller"):
        mix.build(real, syn, MixConfig(size=40, real_ratio=0.5), seed=0)
    out = mix.build(real, syn, MixConfig(size=40, real_ratio=0.5, allow_smaller=True), seed=0)
    hybrid = out["hybrid/train.jsonl"] + out["hybrid/valid.jsonl"]
    assert sum(s.source == "real" for s in hybrid) == 7 and len(hybrid) == 27


def test_contamination_containment_catches_a_scenario_inside_a_session():
    text = "my manager criticised my report in front of the whole team and I felt like a fraud"
    dirty = session(1, words=text)
    clean = session(2, words="we talked about sleep and a new bedtime routine that might help")
    hits = mix.contamination([dirty, clean], [scenario(1, text), scenario(2, "a completely different story about a dog")],
                             MixConfig(contamination="shingles"))
    assert set(hits) == {dirty.id} and hits[dirty.id]["containment"] > 0.9 and hits[dirty.id]["jaccard"] < 1


def test_mix_stage_honours_review_decisions_and_drops_contaminated(fake_ctx):
    real, syn = _pools(n_real=10, n_syn=20)
    pending, rejected_by_policy = syn[18], syn[19]
    leaked = syn[0].model_copy(update={"messages": [*syn[0].messages[:-1], syn[0].messages[-1].model_copy(
        update={"content": "I keep thinking everyone at the party noticed my hands shaking while I spoke"})]})
    cm, _ = fake_ctx("mix.size=20", "mix.real_ratio=0.5", "mix.allow_smaller=true", "mix.test_fraction=0.1")
    with cm as ctx:
        write_curated(ctx.store.root, selected=[*real, leaked, *syn[1:17]], review=[syn[17], pending],
                      rejected=[rejected_by_policy])
        cur = ctx.store.stage("curate")
        edited = make_decision(syn[17], DecisionIn(action="edit", reviewer="ana", index=1, content="An edited counselor turn."))
        cur.append_many("decisions.jsonl", [
            make_decision(syn[17], DecisionIn(action="accept", reviewer="ana")), edited,
            make_decision(rejected_by_policy, DecisionIn(action="accept", reviewer="ana")),
            make_decision(real[0], DecisionIn(action="reject", reviewer="ana"))])
        ctx.store.stage("eval_scenarios").write_records("scenarios.jsonl", [
            scenario(1, "everyone at the party noticed my hands shaking while I spoke")])
        summary = ctx.run_stage("mix", mix.run)
        st = ctx.store.stage("mix")
        every = {s.id: s for f in ("hybrid/train.jsonl", "hybrid/valid.jsonl", "real/train.jsonl", "real/valid.jsonl",
                                   "test_real.jsonl", "test_synthetic.jsonl") for s in st.read(f, Session)}
        dropped = list(st.read_dicts("contamination.jsonl"))
    assert leaked.id not in every and [d["id"] for d in dropped] == [leaked.id]
    assert real[0].id not in every and pending.id not in every
    assert rejected_by_policy.id in every and every[syn[17].id].messages[1].content == "An edited counselor turn."
    assert summary["contaminated"] == 1 and summary["eligible"] == 28
    assert f"dropped {leaked.id} (synthetic)" in (st.path / "report.md").read_text()  # 10 real - 1 rejected + 17 selected + 2 accepted


def test_mix_without_curation_is_a_clear_error(fake_ctx):
    cm, _ = fake_ctx()
    with cm as ctx, pytest.raises(UserError, match="run `hybridtune judge`"):
        ctx.run_stage("mix", mix.run)


def test_embedding_contamination_catches_a_reworded_copy_only():
    from hybridtune.curate.config import MixConfig as MC

    text = "My manager criticised my report in front of the whole team and now I feel like a fraud who will be fired."
    sc = scenario(1, text).model_copy(update={"summary": "Criticised at work, feels like a fraud."})
    copy = session(1)
    copy.messages[0].content = "my manager criticised my report in front of the whole team, now I feel like a fraud who'll be fired"
    topic = session(2)
    topic.messages[0].content = "I get anxious at work whenever my supervisor gives feedback on my presentations."
    for m in (*copy.messages[2:], *topic.messages[2:]):
        m.content = "yes"
    hits = mix.contamination([copy, topic], [sc], MC(contamination="embedding"))
    assert set(hits) == {copy.id} and hits[copy.id]["method"] == "embedding" and hits[copy.id]["cosine"] >= 0.75
    assert mix.contamination([copy, topic], [sc], MC(contamination="off")) == {}
