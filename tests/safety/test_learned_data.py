"""The learned layer's labelled set and shipped head: every C-SSRS level and hard-negative kind in
each split, no held-out statement (or near-duplicate of one) in training, and a head file
whose thresholds and operating point were written by the training command."""
from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from hybridtune.safety.learned import HEAD_FILE, SHORT_WORDS, read_head, windows
from scripts.learned_train import (
    DATA_FILE, NEAR_DUP_COS, NEGATIVE, POSITIVE, grams as _grams, jaccard as _jaccard, load_statements)
from tests.conftest import shared_data

OLD_SET = Path(__file__).parent / "data" / "labelled.jsonl"  # the rules' labelled set: an evaluation set here


def _norm(t: str) -> str:
    return re.sub(r"[^a-z0-9 ]", "", re.sub(r"\s+", " ", t.lower())).strip()


ROWS = load_statements()


def test_every_level_in_every_split():
    counts = Counter((r["level"], r["split"]) for r in ROWS)
    for level in [*POSITIVE, *NEGATIVE]:
        for split in ("train", "val", "test"):
            assert counts[(level, split)] >= 3, (level, split, counts[(level, split)])
    assert sum(r["level"] in POSITIVE for r in ROWS) >= 300 and sum(r["level"] in NEGATIVE for r in ROWS) >= 300
    assert all(r["risk"] == ("imminent" if POSITIVE.get(r["level"]) == "imminent" else
                             "high" if r["level"] in POSITIVE else "none") for r in ROWS)


def test_no_held_out_statement_in_training_exact_or_near():
    train = [r for r in ROWS if r["split"] == "train"]
    held = [r for r in ROWS if r["split"] != "train"]
    seen = {_norm(r["text"]) for r in train}
    assert not [r["id"] for r in held if _norm(r["text"]) in seen]
    tg = [_grams(r["text"]) for r in train]
    old = [json.loads(x)["text"] for x in OLD_SET.read_text().splitlines()]
    for r in held + [{"id": "labelled.jsonl", "text": t} for t in old]:
        g = _grams(r["text"])
        worst = max(_jaccard(g, x) for x in tg)
        assert worst < 0.5, (r["id"], r["text"], worst)


def test_no_near_duplicate_by_embedding():
    """Same check in the embedder's own terms: no held-out statement is a paraphrase of a training one."""
    from hybridtune.embed import embed

    train = [r["text"] for r in ROWS if r["split"] == "train"]
    held = [r["text"] for r in ROWS if r["split"] != "train"]
    old = [json.loads(x)["text"] for x in OLD_SET.read_text().splitlines()]
    T = embed(train)
    S = embed(held + old) @ T.T
    i, j = divmod(int(S.argmax()), S.shape[1])
    assert S.max() < NEAR_DUP_COS, ((held + old)[i], train[j], float(S.max()))


def test_statements_are_written_not_templated():
    texts = [r["text"] for r in ROWS]
    assert len({_norm(t) for t in texts}) == len(texts)
    openings = Counter(" ".join(_norm(t).split()[:3]) for t in texts)
    assert openings.most_common(1)[0][1] <= 0.05 * len(texts), openings.most_common(3)
    assert sum(len(t.split()) > SHORT_WORDS for t in texts) >= 5  # long posts, screened by windows


def test_shipped_head_has_thresholds_operating_point_and_provenance():
    head = read_head()
    t = head.thresholds
    assert 0 < t["unsure"] <= t["high"] < 1 and 0 < t["imminent"] < 1
    op = head.operating_point
    assert "cross-validation" in op["split"] and op["n_counseling_turns"] >= 1000
    assert op["false_alarms_counseling_talk"] <= 0.02 and op["recall_high_or_imminent"] >= 0.5
    assert "learned_train" in head.provenance["command"] and DATA_FILE.name in head.provenance["labelled_set"]
    assert HEAD_FILE.stat().st_size < 2_000_000  # ~1,000 float16 support vectors: about 1 MB
    assert len(head.coef) == 3 and all(len(row) == 384 for row in head.coef)
    assert head.format == 2 and head.kernel.vectors.shape == (len(head.kernel.dual), 384)


def test_stored_kernel_scores_like_the_fitted_svm():
    """The head file's kernel (float16 support vectors, numpy decision) agrees with scikit-learn's SVC."""
    import numpy as np

    from scripts.learned_train import fit_kernel, kernel_of

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 384)).astype(np.float32)
    X[:40] += 0.15  # a shifted cluster: the "crises"
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.r_[np.ones(40, int), np.zeros(80, int)]
    svm = fit_kernel(X, y, C=4.0, gamma=1.0)
    k = kernel_of(svm, (2.0, -1.0))
    Q = rng.normal(size=(30, 384)).astype(np.float32)
    Q /= np.linalg.norm(Q, axis=1, keepdims=True)
    np.testing.assert_allclose(k.decision(Q), svm.decision_function(Q), atol=2e-3)
    assert np.all(np.diff(k.p_risk(np.r_[Q, X[:5]])[np.argsort(k.decision(np.r_[Q, X[:5]]))]) >= 0)  # monotone


def test_dev_folds_keep_near_duplicates_together():
    import numpy as np

    from scripts.learned_train import dev_folds

    rows = [{"id": f"r{i}", "text": t, "level": lv} for i, (t, lv) in enumerate([
        ("I want to die tonight", "intent"), ("I want to die tonight!", "intent"),
        ("The garden needs weeding", "counseling"), ("My cat sleeps all day", "counseling"),
        ("Work was long", "counseling"), ("We argued about money", "counseling")])]
    X = np.eye(6, 384, dtype=np.float32)  # embeddings all far apart: only the 5-gram overlap links rows 0 and 1
    f = dev_folds(rows, X, 3)
    assert f[0] == f[1] and len(set(f[2:].tolist())) == 3


def test_windows_cover_long_posts():
    short = "I don't want to be here anymore."
    assert windows(short) == [short]
    long = " ".join(f"Sentence number {i} is about an ordinary day at work." for i in range(30)) + " I bought the rope today."
    ws = windows(long)
    assert len(ws) > 3 and ws[-1].endswith("I bought the rope today.")
    assert all(len(w.split()) <= 60 for w in ws)


def test_bad_head_file_is_a_clear_error(tmp_path):
    from hybridtune.errors import UserError

    bad = tmp_path / "head.json"
    bad.write_text('{"format": 1}')
    with pytest.raises(UserError, match="not a learned safety head"):
        read_head(bad)
    head = json.loads(HEAD_FILE.read_text())
    head["kernel"]["dual"] = head["kernel"]["dual"][:-1]  # one coefficient short of the support vectors
    bad.write_text(json.dumps(head))
    with pytest.raises(UserError, match="do not match"):
        read_head(bad)
    with pytest.raises(UserError, match="not found"):
        read_head(tmp_path / "missing.json")


def test_annomi_is_split_by_transcript_and_the_eval_half_is_never_trained_on():
    from scripts.learned_train import annomi_client_turns, annomi_half

    csv = shared_data("annomi", "AnnoMI-simple.csv")
    turns = annomi_client_turns(csv)
    calib = {tid for tid, _ in annomi_client_turns(csv, "calib")}
    held = {tid for tid, _ in turns} - calib
    assert len(calib) >= 40 and len(held) >= 40 and all(annomi_half(t) == "eval" for t in held)
    prov = read_head().provenance
    assert "calibration half" in prov["extra_negatives"] and "eval half" in prov["threshold_data"]
    assert "ESConv" not in json.dumps(prov)  # non-commercial data is not in the shipped head's training


def test_learned_layer_encodes_a_repeated_window_once():
    from hybridtune.embed import embed
    from hybridtune.safety.learned import LearnedLayer

    calls: list[int] = []

    def counting(texts):
        calls.append(len(texts))
        return embed(texts)

    layer = LearnedLayer(read_head(), encode=counting)
    a = layer.score(["I slept fine.", "We talked about the garden."])
    b = layer.score(["We talked about the garden.", "I slept fine."])
    assert calls == [2] and [s.p_risk for s in a] == [s.p_risk for s in b][::-1]


def test_the_training_script_reads_its_data_sets_from_data_only(tmp_path, monkeypatch, capsys):
    """scripts/learned_train.py takes the data sets' folder from --data (or $HYBRIDTUNE_DEV_DATA), never
    from a path of its own: without one, or with a folder lacking a file it needs, it stops with one line."""
    from scripts.learned_train import DATA_ENV, main

    monkeypatch.delenv(DATA_ENV, raising=False)
    for argv, says in ((["--pick-check-in"], "--data: name the folder"),
                       (["--data", str(tmp_path), "--pick-check-in"], "cssrs-reddit/cssrs_dev_400_users.csv not there"),
                       (["--data", str(tmp_path), "--reddit"], "annomi/AnnoMI-simple.csv, cssrs-reddit/")):
        with pytest.raises(SystemExit):
            main(argv)
        assert says in capsys.readouterr().err.strip().splitlines()[-1]
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    with pytest.raises(SystemExit):
        main([])
    assert f"--data {tmp_path}: annomi/AnnoMI-simple.csv not there" in capsys.readouterr().err
