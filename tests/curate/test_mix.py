"""Mixing: sizes and real:synthetic ratio, stratification, disjoint held-out test splits,
determinism for a seed, reviewer decisions honoured, short pools, contamination."""
from __future__ import annotations

import pytest

from hybridtune.contamination import ContaminationConfig, session_hits
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


def _variants(decl: dict, size: int = 40, balance: str = "technique"):
    from hybridtune.variants import Recipe, resolve

    return resolve({k: Recipe.model_validate(v) for k, v in decl.items()}, size, balance)


FOUR = {"base": {"sources": []}, "real": {"sources": ["real"]}, "synthetic": {"sources": ["synthetic"]},
        "hybrid": {"real_share": 0.25}}


def test_each_recipe_yields_its_size_and_share_and_no_held_out_session():
    real, syn = _pools()
    vs = _variants({**FOUR, "real": {"sources": ["real"], "size": 10}, "hybrid@{0,0.5,1}": {"size": 20}})
    out = mix.build(real, syn, vs, MixConfig(size=40, valid_fraction=0.1, test_fraction=0.1), seed=3)
    assert "base/train.jsonl" not in out  # untrained: no set
    tests = _ids(out["test_real.jsonl"]) | _ids(out["test_synthetic.jsonl"])
    assert len(out["test_real.jsonl"]) == 3 and len(out["test_synthetic.jsonl"]) == 6
    for v in vs[1:]:
        train, valid = out[f"{v.name}/train.jsonl"], out[f"{v.name}/valid.jsonl"]
        members = train + valid
        assert len(members) == v.size, v.name
        assert sum(s.source == "real" for s in members) == round(v.size * v.real_share), v.name
        assert not _ids(members) & tests and not _ids(train) & _ids(valid)
        for src in ("real", "synthetic"):  # 10% of each source is validation (at least one of two or more)
            n = sum(s.source == src for s in members)
            assert sum(s.source == src for s in valid) == (min(max(round(n * 0.1), 1), n - 1) if n > 1 else 0)
    assert [v.name for v in vs] == ["base", "real", "synthetic", "hybrid", "hybrid@0", "hybrid@0.5", "hybrid@1"]
    # a smaller share nests in a larger one: the sweep differs only by how much of each source it takes
    reals = [{s.id for f in ("train", "valid") for s in out[f"hybrid@{x}/{f}.jsonl"] if s.source == "real"}
             for x in ("0", "0.5", "1")]
    assert reals[0] <= reals[1] <= reals[2] and len(reals[1]) == 10
    assert _ids(out["real/train.jsonl"] + out["real/valid.jsonl"]) == reals[1]
    # variants that take the same members of a source get the same validation units of it: `real` and
    # hybrid@0.5 take the same 10 real sessions (above), so the same one is validation in both
    real_valid = _ids(out["real/valid.jsonl"])
    assert len(real_valid) == 1 and {s.id for s in out["hybrid@0.5/valid.jsonl"] if s.source == "real"} == real_valid
    syn_pick = [s for s in out["hybrid/train.jsonl"] + out["hybrid/valid.jsonl"] if s.source == "synthetic"]
    avail_exposure = 15 - sum(s.meta["techniques"] == ["exposure"] for s in out["test_synthetic.jsonl"])
    picked_exposure = sum(s.meta["techniques"] == ["exposure"] for s in syn_pick)
    assert abs(picked_exposure - 30 * avail_exposure / 54) < 1  # strata kept in proportion


def test_synthetic_test_fraction_is_its_own_setting():
    real, syn = _pools()
    vs = _variants(FOUR, size=10)
    out = mix.build(real, syn, vs, MixConfig(size=10, test_fraction=0.5, test_fraction_synthetic=0.1), seed=3)
    assert len(out["test_real.jsonl"]) == 15 and len(out["test_synthetic.jsonl"]) == 6
    same = mix.build(real, syn, vs, MixConfig(size=10, test_fraction=0.5), seed=3)
    assert len(same["test_synthetic.jsonl"]) == 30  # unset: the real fraction applies to both


def test_qa_units_are_single_exchanges_with_context_from_samples_and_never_held_out():
    from hybridtune.real.config import SegmentConfig
    from hybridtune.real.segment import segment

    real, syn = _pools(n_real=10, n_syn=10)
    real = [s.model_copy(update={"messages": [m.model_copy(update={"content": f"{m.content} x{k}"}) for k, m in
                                              enumerate(s.messages * 2)]}) for s in real]  # 8 turns each
    seg = SegmentConfig(qa_context_turns=3, system_prompt=False)
    samples = {s.id: [x for x in segment(s, seg) if x.kind == "qa"] for s in real}
    vs = _variants({"qa": {"real_share": 0.5, "units": "qa", "size": 20}, "both": {"sources": ["real"], "units": "both", "size": 12}})
    out = mix.build(real, syn, vs, MixConfig(test_fraction=0.2, valid_fraction=0), seed=1, samples=samples, seg=seg)
    held = _ids(out["test_real.jsonl"]) | _ids(out["test_synthetic.jsonl"])
    by_id = {x.id: x for xs in samples.values() for x in xs}
    qa = out["qa/train.jsonl"]
    assert len(qa) == 20 and sum(s.source == "real" for s in qa) == 10
    for u in qa:
        assert u.meta["unit"] == "qa" and u.meta["session_id"] not in held
        assert u.messages[-1].role == "assistant" and u.messages[-2].role == "user"  # one exchange, ends on the answer
        assert sum(m.role == "assistant" for m in u.messages[-1:]) == 1 and len(u.messages) <= 4
        if u.source == "real":  # real units are the real stage's samples, context included
            assert [m.content for m in u.messages] == [m.content for m in by_id[u.id].messages]
    both = out["both/train.jsonl"]
    assert len(both) == 12 and {s.meta.get("unit", "session") for s in both} <= {"qa", "session"}


def test_balance_by_emotion_uses_the_annotations():
    from hybridtune.records import TurnAnnotation

    real, syn = _pools(n_real=0, n_syn=40)
    syn = [s.model_copy(update={"annotations": [TurnAnnotation(index=0, emotion="anger" if i % 4 == 0 else "sadness")]})
           for i, s in enumerate(syn)]
    out = mix.build(real, syn, _variants({"s": {"sources": ["synthetic"], "size": 12, "balance_by": "emotion"}}),
                    MixConfig(test_fraction=0, valid_fraction=0), seed=0)
    assert sum(s.annotations[0].emotion == "anger" for s in out["s/train.jsonl"]) == 3  # 1:3 as in the pool


def test_deterministic_for_a_seed_and_varies_with_it():
    real, syn = _pools()
    vs = _variants(FOUR, size=20)
    cfg = MixConfig(size=20)
    a = {k: [s.id for s in v] for k, v in mix.build(real, syn, vs, cfg, seed=1).items()}
    b = {k: [s.id for s in v] for k, v in mix.build(list(reversed(real)), list(reversed(syn)), vs, cfg, seed=1).items()}
    c = {k: [s.id for s in v] for k, v in mix.build(real, syn, vs, cfg, seed=2).items()}
    assert a == b and a != c


def test_short_pool_is_an_error_naming_the_variant_unless_allowed():
    real, syn = _pools(n_real=8)
    vs = _variants({"hybrid": {"real_share": 0.5}})
    with pytest.raises(UserError, match=r"variant hybrid's source=real.*needs 20 units but only 7 are eligible.*allow_smaller"):
        mix.build(real, syn, vs, MixConfig(size=40), seed=0)
    out = mix.build(real, syn, vs, MixConfig(size=40, allow_smaller=True), seed=0)
    hybrid = out["hybrid/train.jsonl"] + out["hybrid/valid.jsonl"]
    assert sum(s.source == "real" for s in hybrid) == 7 and len(hybrid) == 27


def test_variant_declarations_are_checked_at_load(make_cfg):
    cfg = make_cfg("variants={base: {sources: []}, 'hybrid@{0, 0.5,1}': {size: 8}, qa@0.3: {units: qa}}")
    assert cfg.evaluate.max_turns == 10 and cfg.opens == "client"  # the paper's length; real sessions open with the client
    assert [(v.name, v.real_share, v.size, v.sweep) for v in cfg.variant_list()] == [
        ("base", 0.0, cfg.mix.size, None), ("hybrid@0", 0.0, 8, "hybrid"), ("hybrid@0.5", 0.5, 8, "hybrid"),
        ("hybrid@1", 1.0, 8, "hybrid"), ("qa@0.3", 0.3, cfg.mix.size, None)]
    for bad, msg in [("{h: {}}", "variants.h: two sources need real_share"),
                     ("{'h@{0,2}': {}}", "share 2.0 is outside"),
                     ("{r: {sources: [real], real_share: 0.5}}", "sources \\[real\\] means real_share 1"),
                     ("{h@0.5: {}, 'h@{0.5}': {}}", "declared twice")]:
        with pytest.raises(UserError, match=msg):
            make_cfg(f"variants={bad}")


def test_contamination_containment_catches_a_scenario_inside_a_session():
    text = "my manager criticised my report in front of the whole team and I felt like a fraud"
    dirty = session(1, words=text)
    clean = session(2, words="we talked about sleep and a new bedtime routine that might help")
    hits = session_hits([dirty, clean], [scenario(1, text), scenario(2, "a completely different story about a dog")],
                        ContaminationConfig(method="shingles"))
    assert set(hits) == {dirty.id} and hits[dirty.id]["containment"] > 0.9 and hits[dirty.id]["jaccard"] < 1


def test_mix_stage_honours_review_decisions_and_drops_contaminated(fake_ctx):
    real, syn = _pools(n_real=10, n_syn=20)
    pending, rejected_by_policy = syn[18], syn[19]
    leaked = syn[0].model_copy(update={"messages": [*syn[0].messages[:-1], syn[0].messages[-1].model_copy(
        update={"content": "I keep thinking everyone at the party noticed my hands shaking while I spoke"})]})
    cm, _ = fake_ctx("mix.size=20", "mix.allow_smaller=true", "mix.test_fraction=0.1",  # hybrid takes every synthetic one
                     "variants={real: {sources: [real]}, hybrid: {real_share: 0.3, size: 30}}")
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
    text = "My manager criticised my report in front of the whole team and now I feel like a fraud who will be fired."
    sc = scenario(1, text).model_copy(update={"summary": "Criticised at work, feels like a fraud."})
    copy = session(1)
    copy.messages[0].content = "my manager criticised my report in front of the whole team, now I feel like a fraud who'll be fired"
    topic = session(2)
    topic.messages[0].content = "I get anxious at work whenever my supervisor gives feedback on my presentations."
    for m in (*copy.messages[2:], *topic.messages[2:]):
        m.content = "yes"
    hits = session_hits([copy, topic], [sc], ContaminationConfig(method="embedding"))
    assert set(hits) == {copy.id} and hits[copy.id]["method"] == "embedding" and hits[copy.id]["cosine"] >= 0.75
    assert session_hits([copy, topic], [sc], ContaminationConfig(method="off")) == {}


def test_added_design_is_exactly_the_real_variants_units_plus_synthetic_ones():
    """Defect (issue 27): hybrid took round(size x share) units of a fixed total, so its real units
    were the first half of real's: 'more real data' and 'synthetic data' were confounded. A recipe
    with design: added keeps exactly the real variant's real units (train and validation alike)
    and adds synthetic ones; synthetic-only at that size is exactly the hybrid's synthetic part."""
    from hybridtune.variants import contrast

    real, syn = _pools()
    vs = _variants({"base": {"sources": []}, "real": {"sources": ["real"], "size": 20},
                    "hybrid": {"design": "added", "adds_to": "real", "synthetic_units": 16},
                    "synthetic": {"sources": ["synthetic"], "size": 16}})
    hybrid = vs[2]
    assert hybrid.counts() == {"real": 20, "synthetic": 16} and hybrid.size == 36
    out = mix.build(real, syn, vs, MixConfig(size=40, valid_fraction=0.1, test_fraction=0.1), seed=3)
    part = {f: {s.id for s in out[f"hybrid/{f}.jsonl"] if s.source == "real"} for f in ("train", "valid")}
    assert part == {f: _ids(out[f"real/{f}.jsonl"]) for f in ("train", "valid")}
    assert {s.id for f in ("train", "valid") for s in out[f"hybrid/{f}.jsonl"] if s.source == "synthetic"} == \
        _ids(out["synthetic/train.jsonl"] + out["synthetic/valid.jsonl"])
    assert "adding 16 synthetic units to the same 20 real ones" in contrast(hybrid, vs[1])
    assert "adding 20 real units to the same 16 synthetic ones" in contrast(hybrid, vs[3])
    assert "the same total" in contrast(*_variants(FOUR)[1:3])
    assert "no single cause" in contrast(vs[1], vs[3]) and "untrained base" in contrast(vs[1], vs[0])
    # a replace recipe's stored recipe is unchanged (its data key, and so its trained model, holds)
    assert set(vs[1].recipe()) == {"sources", "real_share", "size", "units", "balance_by"}
    for bad, says in [({"design": "added", "synthetic_units": 4, "real_share": 0.5}, "drop sources, real_share"),
                      ({"design": "added"}, "needs synthetic_units"),
                      ({"design": "added", "adds_to": "nope", "synthetic_units": 4}, "adds_to 'nope'"),
                      ({"real_share": 0.5, "synthetic_units": 4}, "belong to design: added")]:
        with pytest.raises(ValueError, match=says):
            _variants({"real": {"sources": ["real"]}, "h": bad})


def _annomi_sessions():
    """AnnoMI's 113 transcripts as the real reader records them (meta: video_url, series)."""
    from hybridtune.real.config import RealConfig
    from hybridtune.real.formats import read_csv
    from tests.conftest import shared_data

    text = shared_data("annomi", "AnnoMI-simple.csv").read_text(encoding="utf-8")
    return [Session(id=f"t{r.key}", source="real", messages=[], meta=r.meta)
            for r in read_csv(text, "AnnoMI-simple.csv", "annomi", RealConfig())]


def test_grouped_split_holds_out_whole_videos_and_series_of_annomi():
    """Defect (issue 27): AnnoMI was split by transcript, and transcripts of one video or series
    fell on both sides (the text-based leakage check cannot see it). mix.group_by holds out whole
    groups; group_overlap reports what a by-session split leaves."""
    from hybridtune.curate.holdout import group_overlap
    from hybridtune.real.formats import series_of
    from hybridtune.split import SplitConfig, groups, make

    def heldout_real_ids(real, mc, seed):
        return set(make(real, SplitConfig.of(mc, seed)).heldout)

    assert series_of("Monkey on My Back - Part 2") == series_of("Monkey on My Back - Part 1") == "monkey on my back"
    assert series_of("Part Two: Motivational Interviewing in an Integrated Care Setting (Counselor Scenario)") == \
        "motivational interviewing in an integrated care setting"
    assert series_of("ComMIt Asthma Dialogue without MI") == series_of("ComMIt Asthma Dialogue with MI")
    assert series_of("The Ineffective Physician: Non-Motivational Approach") == \
        series_of("The Effective Physician: Motivational Interviewing Demonstration")
    assert series_of('NEW VIDEO: Brief intervention: "Barbara"') != series_of('NEW VIDEO: Brief intervention: "Dave"')
    real = _annomi_sessions()
    assert len(real) == 113 and all(s.meta.get("video_url") and s.meta.get("series") for s in real)
    keys = ["video_url", "series"]
    assert len(set(groups(real, keys).values())) < 100  # a generic key, transitively joined
    by_session = MixConfig(test_fraction=0.5, min_test=3)
    held = heldout_real_ids(real, by_session, 11)
    split = lambda h: ([s for s in real if s.id in h], [s for s in real if s.id not in h])  # noqa: E731
    assert len(group_overlap(*split(held), keys)) > 0
    grouped = heldout_real_ids(real, by_session.model_copy(update={"group_by": keys}), 11)
    assert abs(len(grouped) - 56) <= 4 and group_overlap(*split(grouped), keys) == []


def test_mix_stage_reports_group_overlap_and_fails_none_when_grouped(fake_ctx):
    real, syn = _pools(n_real=20, n_syn=20)
    real = [s.model_copy(update={"meta": {**s.meta, "video_url": f"v{i // 2}"}}) for i, s in enumerate(real)]
    for group_by, overlap in (("[]", True), ("[video_url]", False)):
        cm, _ = fake_ctx(f"name=g{overlap}", "mix.size=10", "mix.allow_smaller=true", "mix.test_fraction=0.5",
                         f"mix.group_by={group_by}",
                         "variants={real: {sources: [real]}}")
        with cm as ctx:
            write_curated(ctx.store.root, selected=[*real, *syn])
            summary = ctx.run_stage("mix", mix.run)
            leak = ctx.store.stage("mix").read_json("leakage.json")
            md = (ctx.store.stage("mix").path / "report.md").read_text()
        assert bool(summary["group_overlap"]) is overlap and leak["group_keys"] == ["video_url"]
        assert ("set mix.group_by: [video_url]" in md) is overlap and ("whole groups (video_url)" in md) is not overlap
        from hybridtune.evaluate.report import leakage_text

        assert ("Split by session: " in leakage_text(leak)) is overlap  # and the evaluation report says it too


def test_each_training_seed_draws_its_own_subsets_and_keeps_the_designs():
    """Issue 27: with train.seeds a further seed's models (variant~s<seed>) train on subsets drawn
    with that seed; within a seed hybrid keeps exactly real's real units; the held-out split never
    moves. One seed (the default) changes nothing."""
    from hybridtune.variants import with_seeds

    real, syn = _pools()
    decl = {"base": {"sources": []}, "real": {"sources": ["real"], "size": 12},
            "hybrid": {"design": "added", "synthetic_units": 10}}
    one = _variants(decl)
    vs = with_seeds(one, [11, 12, 13])
    assert [v.name for v in vs] == ["base", "real", "real~s12", "real~s13", "hybrid", "hybrid~s12", "hybrid~s13"]
    assert vs[2].replicate_of == "real" and vs[5].adds_to == "real~s12" and vs[1].seed == 11
    mc = MixConfig(size=40, valid_fraction=0.1, test_fraction=0.1)
    out = mix.build(real, syn, vs, mc, seed=3)
    assert out["test_real.jsonl"] == mix.build(real, syn, one, mc, seed=3)["test_real.jsonl"]
    draw = {n: _ids(out[f"{n}/train.jsonl"] + out[f"{n}/valid.jsonl"]) for n in ("real", "real~s12", "real~s13")}
    assert len({frozenset(x) for x in draw.values()}) == 3  # 12 of the 27 training-side real sessions, per seed
    for s in ("", "~s12"):
        assert {x.id for f in ("train", "valid") for x in out[f"hybrid{s}/{f}.jsonl"] if x.source == "real"} == draw[f"real{s}"]
    same = mix.build(real, syn, one, mc, seed=3)
    assert all(_ids(same[k]) == _ids(out[k]) for k in same)  # the first seed is the old single draw
