"""Speaker roles from the words alone: the shipped head loads offline, captions without `>>` marks
are attributed, doubtful sessions are quarantined, the embedded default skips model annotation."""
from __future__ import annotations

import random
import shutil

import numpy as np

from conftest import ROOT
from hybridtune.context import open_run
from hybridtune.real import speakers as S
from hybridtune.real.annotate import annotate_enabled, ask_llm_about_speakers
from hybridtune.real.captions import read_vtt
from hybridtune.real.config import AttributionConfig
from hybridtune.real.stage import run
from hybridtune.records import Session

# written for this test (not from any data set): a short intake, counselor (therapist) first
UTTS = [
    ("therapist", "Hi, thanks for coming in today. What would you like to talk about?"),
    ("client", "I've been having a really hard time sleeping since I started my new job."),
    ("therapist", "That sounds exhausting. How long has this been going on for you?"),
    ("client", "About two months now. I lie awake and my mind just keeps racing about work."),
    ("therapist", "What kinds of thoughts go through your mind when you're lying there?"),
    ("client", "Mostly that I'm going to mess something up and my boss will think I'm useless."),
    ("therapist", "So you're worried about making mistakes, and that worry keeps you awake. Is that right?"),
    ("client", "Yeah, exactly. I know it's probably silly but I can't stop it."),
    ("therapist", "It doesn't sound silly to me. What have you tried so far to help yourself sleep?"),
    ("client", "I tried reading and some tea, but honestly nothing really works for me."),
]


def test_head_loads_offline_with_provenance(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    head = S.SpeakerHead.load()
    assert head.weights["in_w"].shape == (S.FEAT_DIM, S.HIDDEN) and head.weights["pair_w"].shape == (2 * S.HIDDEN,)
    assert "AnnoMI" in head.meta["data"] and len(head.meta["data_sha256"]) == 64 and "command" in head.meta
    assert set(head.meta["chosen"]) >= {"epochs", "averaged_checkpoints", "switch_scale", "emit_scale"}  # inner split
    assert head.calibration["slope"] > 0 and head.calibration["sessions"] >= 60  # fitted on held-out sessions
    assert S.HEAD_PATH.stat().st_size < 300_000  # float16 weights, shipped in the package
    p = head.p_counselor(["How did that make you feel when she said that?", "I just can't stop crying at night."])
    assert p[0] > 0.5 > p[1]


def test_mark_raises_and_sentence_continuation_lowers_switch_chance():
    head = S.default_head()
    units = [S.Unit("What happened next?", start_s=0), S.Unit("I went home", start_s=2, mark=True),
             S.Unit("and then I cried", start_s=2, new_line=False)]
    sw = head.p_switch(units, 1.5)
    assert sw[1] > 0.8 and sw[2] < 0.3


def test_words_alone_tell_an_answer_from_a_continuation():
    # no marks, even timing: a question then a first-person answer vs a sentence cut by the caption line
    head = S.default_head()
    units = [S.Unit("How long has this been going on for you?", start_s=0), S.Unit("About two months now.", start_s=2),
             S.Unit("I lie awake and my mind", start_s=4), S.Unit("just keeps racing about work.", start_s=6)]
    sw = head.p_switch(units, 1.5)
    assert sw[1] > 0.5 > 0.1 > sw[3]


def test_complete_marks_leave_speaker_changes_to_the_marks():
    # every change marked: the marks' share of the expected changes is ~1, so unmarked boundaries barely switch
    p_words = np.array([0.0, 0.9, 0.8, 0.1, 0.9])
    assert S.marks_kept(p_words, np.array([0, 1, 1, 0, 1], bool)) == 1.0
    assert 0.3 < S.marks_kept(p_words, np.array([0, 1, 0, 0, 0], bool)) < 0.5
    assert S.marks_kept(p_words, np.zeros(5, bool)) == 0.0


def test_mark_at_the_end_of_a_caption_line_marks_the_next_unit():
    units = S.split_units([(0.0, "how are you today? >>", 1), (2.0, "Fine thanks. >> Good.", 2)])
    assert [(u.text, u.mark) for u in units] == [("how are you today?", False), ("Fine thanks.", True), ("Good.", True)]


def test_interruption_dashes_end_units_so_a_back_channel_stands_alone():
    units = S.split_units([(0.0, "you drink alcohol on average- Mm-hmm. -and you usually have three", 1)])
    assert [u.text for u in units] == ["you drink alcohol on average-", "Mm-hmm.", "-and you usually have three"]
    assert [u.text for u in S.split_units([(0.0, "a well-known x-ray - and so", 1)])] == ["a well-known x-ray - and so"]


def test_numpy_head_computes_what_torch_trained():
    # the shipped head runs in numpy; it must compute the trained torch net's function (float16 aside)
    import torch

    from scripts import speaker_fit as F

    torch.manual_seed(0)
    net = F._net(S.HIDDEN).eval()
    X = np.random.default_rng(0).normal(size=(23, S.FEAT_DIM)).astype(np.float32)
    with torch.no_grad():
        ze, zp = (t[0].numpy() for t in net(torch.from_numpy(X)[None], torch.ones(1, len(X))))
    head = F._export(net, 0.6, 1.0, {})
    he, hp = head.forward(X)
    assert np.abs(he - ze).max() < 0.02 and np.abs(hp[1:] - zp[1:]).max() < 0.02
    assert np.abs(ze).max() > 0.05  # not a trivially zero net


def test_checkpoint_averaging_averages_the_last_checkpoints():
    # train returns, per epoch count, the checkpoint itself (k=1) and the mean of the last k checkpoints
    from scripts import speaker_fit as F

    rng = np.random.default_rng(0)
    data = {str(i): F.Example([S.Unit("x")] * 9, rng.normal(size=(9, S.FEAT_DIM)).astype(np.float32),
                              rng.integers(0, 2, 9)) for i in range(3)}
    heads = F.train(data, list(data), (1, 2), seed=0, avg=(1, 2))
    assert set(heads) == {(1, 1), (2, 1), (2, 2)}  # epoch 1 has only one checkpoint to average
    for k, w in heads[2, 2].weights.items():
        mean = (heads[1, 1].weights[k] + heads[2, 1].weights[k]) / 2
        assert np.abs(w - mean).max() <= 2e-3 * (1 + np.abs(mean).max()), k  # float16 rounding aside
    assert np.abs(heads[1, 1].weights["in_w"] - heads[2, 1].weights["in_w"]).max() > 1e-3  # training moved


def test_confidence_is_calibrated_expected_accuracy():
    from scripts import speaker_fit as F

    scores = np.array([0.8, 0.85, 0.9, 0.95, 1.0])
    cal = F.calibrate(scores, np.array([0.6, 0.7, 0.8, 0.9, 1.0]))
    assert cal["slope"] == 2.0 and cal["intercept"] == -1.0 and cal["spearman"] == 1.0 and cal["mean_abs_error"] < 1e-6
    head = S.SpeakerHead({}, 0.5, 1.0, 1.0, {}, cal)
    assert head.confidence(0.875) == 0.75 and head.confidence(0.3) == 0.0 and head.confidence(1.0) == 0.999
    flat = F.calibrate(scores, np.array([0.9, 0.8, 0.7, 0.6, 0.5]))  # a score that ranks backwards claims nothing
    assert flat["slope"] == 0.0 and S.SpeakerHead({}, 0.5, 1.0, 1.0, {}, flat).confidence(0.99) == 0.7


def test_decode_follows_evidence_and_switch_prior():
    # strong emissions win; a weak contrary unit inside a same-speaker run is smoothed over
    p_c = np.array([0.9, 0.9, 0.45, 0.9, 0.1, 0.1])
    path, post = S.decode(p_c, np.array([0.0, 0.1, 0.1, 0.1, 0.5, 0.1]), prior=0.5)
    assert path.tolist() == [1, 1, 1, 1, 0, 0] and post[2] > 0.5


def _accuracy(utts, vtt_text) -> float:
    s = read_vtt(vtt_text, "x.vtt", AttributionConfig())
    words = [(w, t.role) for t in s.turns for w in t.text.split()]
    gold = [("assistant" if r == "therapist" else "user") for r, text in utts for _ in text.split()]
    assert len(words) == len(gold)  # rolling duplicates removed, nothing lost
    return sum(g == r for g, (_, r) in zip(gold, words, strict=True)) / len(gold)


def test_captions_without_marks_attributed_from_words():
    vtt, _ = S.simulate_captions(UTTS, random.Random(0), mark_p=0.0)
    assert ">>" not in vtt
    assert _accuracy(UTTS, vtt) >= 0.85
    assert read_vtt(vtt, "x.vtt", AttributionConfig()).meta["attribution"]["confidence"] >= AttributionConfig().min_confidence


def test_captions_with_marks_attributed_as_before():
    vtt, _ = S.simulate_captions(UTTS, random.Random(0), mark_p=1.0)
    s = read_vtt(vtt, "x.vtt", AttributionConfig())
    assert [t.role for t in s.turns] == ["assistant", "user"] * 5
    assert s.meta["attribution"]["turns_from"] == "marks+words" and s.meta["attribution"]["confidence"] > 0.9


# written for this test: notices read out on a local channel, no counseling and no cue to who speaks
NOTICES = [("client", t) for t in (
    "The bus was late again this morning.", "The road by the river was closed for repairs.",
    "Rain started around nine and did not stop.", "The shop on the corner sold out of bread.",
    "Traffic lights on Main Street were out.", "A crew came to fix them after lunch.",
    "The school moved the concert to the gym.", "Tickets are five dollars at the door.",
    "The library will close early on Friday.", "Parking is free after six in the evening.")]


def test_low_confidence_session_goes_to_quarantine(fake_ctx, tmp_path):
    # default min_confidence: the doubtful file is quarantined with the reason, the marked session is kept
    d = tmp_path / "in"
    d.mkdir()
    shutil.copy(ROOT / "data" / "demo" / "sleep.vtt", d)
    (d / "notices.vtt").write_text(S.simulate_captions(NOTICES, random.Random(0), mark_p=0.0)[0], encoding="utf-8")
    assert read_vtt((d / "notices.vtt").read_text(), "notices.vtt", AttributionConfig()).meta["attribution"][
        "confidence"] < AttributionConfig().min_confidence
    ctx_cm, fake = fake_ctx(f"real.inputs=[{d}]", "real.llm=false", "real.pii.ner=false")
    with ctx_cm as ctx:
        summary = ctx.run_stage("real", run)
    st = ctx.store.stage("real")
    assert summary["sessions_out"] == 1 and fake.calls == 0
    (q,) = list(st.read_dicts("quarantine.jsonl"))
    assert "speaker attribution unsure" in q["reason"] and "min_confidence=0.8" in q["reason"] and "notices.vtt" in q["file"]


def test_embedded_default_skips_model_annotation_and_llm_attribution(make_cfg):
    with open_run(make_cfg(backend="llamacpp")) as ctx:  # the model is loaded lazily: nothing runs here
        assert not annotate_enabled(ctx) and not ask_llm_about_speakers(ctx)
    with open_run(make_cfg("real.annotate.enabled=true", "real.attribution.llm=true", backend="llamacpp")) as ctx:
        assert annotate_enabled(ctx) and ask_llm_about_speakers(ctx)
    with open_run(make_cfg(backend="fake")) as ctx:  # any other endpoint counts as a real one
        assert annotate_enabled(ctx) and ask_llm_about_speakers(ctx)
