"""The held-out split is made once, by the `split` stage right after `real`, and written as
runs/<name>/split/split.json; synth, mix and the power plan read that artefact (they no longer
recompute it), and a missing or stale one is refused in one line naming the command to rerun.

    .venv/bin/python -m pytest tests/test_split.py -q
"""
from __future__ import annotations

import json

import pytest

from hybridtune import split
from hybridtune.curate import mix
from hybridtune.errors import UserError
from hybridtune.records import Session
from hybridtune.synth.sessions import Exemplars
from tests.curate.helpers import session, write_curated

SETS = ("mix.size=40", "mix.allow_smaller=true", "mix.test_fraction=0.3", "mix.contamination='off'",
        "synth.fewshot=0", "variants={real: {sources: [real]}}")


def _real(n=10):
    return [session(i, "real", mean=7) for i in range(n)]


def _ingest(ctx, real):
    ctx.store.stage("real").write_records("sessions.jsonl", real)


def test_the_split_is_written_once_and_mix_and_synth_follow_the_artefact(fake_ctx):
    real = _real()
    cm, _ = fake_ctx(*SETS)
    with cm as ctx:
        _ingest(ctx, real)
        summary = ctx.run_stage("split", split.run)
        f = ctx.store.stage("split").file(split.FILE)
        made = json.loads(f.read_text())
        assert summary["heldout"] == len(made["heldout"]) == 3 and made["real_sessions"] == 10
        assert made["config"] == {"test_fraction": 0.3, "min_test": ctx.cfg.mix.min_test, "seed": ctx.cfg.seed, "group_by": []}
        # another held-out choice written into the artefact (same config, same real sessions): the
        # later stages take it as it is, so they read the artefact and recompute nothing
        other = sorted(s.id for s in real if s.id not in made["heldout"])[:3]
        f.write_text(json.dumps({**made, "heldout": other}))
        exemplars = {s.id for s in Exemplars(ctx).sessions}
        write_curated(ctx.store.root, selected=[*real, *(session(i, mean=7) for i in range(10))])
        ctx.run_stage("mix", mix.run)
        test_real = {s.id for s in ctx.store.stage("mix").read("test_real.jsonl", Session)}
    assert test_real == set(other) and not exemplars & set(other) and len(exemplars) == 7


def _refusal(fn) -> str:
    with pytest.raises(UserError) as e:
        fn()
    msg = str(e.value)
    assert "\n" not in msg and "split.json" in msg and "hybridtune split" in msg, msg
    return msg


def test_a_missing_or_stale_split_is_refused_in_one_line(fake_ctx):
    real = _real()
    cm, _ = fake_ctx(*SETS)
    with cm as ctx:
        _ingest(ctx, real)
        write_curated(ctx.store.root, selected=[*real, *(session(i, mean=7) for i in range(10))])
        assert "missing" in _refusal(lambda: mix.run(ctx, ctx.store.stage("mix")))
        assert "missing" in _refusal(lambda: Exemplars(ctx))
        ctx.run_stage("split", split.run)
        _ingest(ctx, [*real, session(99, "real", mean=7)])  # the real stage reran with one more session
        msg = _refusal(lambda: mix.run(ctx, ctx.store.stage("mix")))
        assert "stale (real/sessions.jsonl changed since the split was made (10 sessions then, 11 now))" in msg
        assert "stale" in _refusal(lambda: Exemplars(ctx))
        _ingest(ctx, real)
        Exemplars(ctx)  # the same sessions again: the split fits
        ctx.store.stage("split").write_text(split.FILE, '{"heldout": ["x"]}')  # not a split
        assert "not a held-out split" in _refusal(lambda: Exemplars(ctx))
        ctx.run_stage("split", split.run, force=True)
    cm, _ = fake_ctx(*SETS, "mix.test_fraction=0.5", "mix.group_by=[topic]")
    with cm as ctx:
        msg = _refusal(lambda: mix.run(ctx, ctx.store.stage("mix")))
    assert "made with other mix.test_fraction, mix.group_by" in msg and "--force" in msg


def test_grouped_split_artefact_keeps_whole_groups_of_annomi():
    """mix.group_by: the artefact holds out whole AnnoMI videos/series and records their groups."""
    from hybridtune.curate.holdout import group_overlap
    from tests.curate.test_mix import _annomi_sessions

    real = _annomi_sessions()
    keys = ["video_url", "series"]
    sp = split.make(real, split.SplitConfig(test_fraction=0.5, min_test=3, seed=11, group_by=keys))
    held = set(sp.heldout)
    assert set(sp.groups) == held and len(set(sp.groups.values())) < len(held)
    assert group_overlap([s for s in real if s.id in held], sp.training_side(real), keys) == []
    assert split.stale(sp, real, sp.config) == ""
    moved = [s.model_copy(update={"meta": {**s.meta, "series": "one series"}}) if s.id == sp.heldout[0] else s
             for s in real]  # a session's group key changed at ingest: the split may no longer hold
    assert "changed since the split was made" in split.stale(sp, moved, sp.config)
