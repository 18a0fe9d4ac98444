"""The Reddit C-SSRS users (Gaur et al. 2019, CC BY 4.0, read in place): reading, the split by user, and
the exact and near-duplicate check that keeps held-out users' posts out of training.

    from hybridtune.safety.cssrs import FILE_NAME, read_users, split_of, training_users, heldout_users
    users = read_users(folder / FILE_NAME)            # 400 users: id, label, posts; the caller says where
    dev, held = training_users(users), heldout_users(users)
    clean_posts = without_heldout_duplicates(dev, held)   # dev posts with no exact or near copy in held-out posts
    train, n_dropped = training_posts(users)           # what scripts/learned_train.py trains on

Where the file lives is the caller's to say (tests: `conftest.shared_data(FOLDER, FILE_NAME)`; benchmarks:
`common.dev_data_file`; the training script: `--data`): the package does not know where data sets are kept.

Labels (psychiatrists, C-SSRS): Supportive (supports others, no own risk), Indicator (risk
indicators, no ideation), Ideation, Behavior, Attempt; the last three are "at risk". The split is
fixed by a hash of the user id (HELDOUT_SHARE of each label's users held out), so a user's posts are
never on both sides. The published file's `Post` cells are Python list literals, some cut at the
spreadsheet cell limit of 32,759 characters: the complete posts of such a cell are kept, the cut
one is dropped.
"""
from __future__ import annotations

import ast
import csv
import hashlib
import io
import re
import tokenize
from pathlib import Path

from pydantic import BaseModel

FOLDER = "cssrs-reddit"  # the data set's folder in a collection of data sets
FILE_NAME = "cssrs_dev_400_users.csv"
LABELS = ("Supportive", "Indicator", "Ideation", "Behavior", "Attempt")
AT_RISK = ("Ideation", "Behavior", "Attempt")
HELDOUT_SHARE = 0.3
NEAR_DUP_JACCARD = 0.5  # character 5-gram Jaccard at or above which two posts count as near-duplicates
TRAIN_POSTS = 4  # posts per dev user trained on (the first ones): the embedder's CPU time per post bounds it
TRAIN_LABELS = ("Supportive", *AT_RISK)  # Indicator users (risk indicators, no ideation) are neither risk nor clearly not


class User(BaseModel):
    id: str
    label: str
    posts: list[str]

    @property
    def at_risk(self) -> bool:
        return self.label in AT_RISK


def parse_posts(cell: str) -> list[str]:
    """The posts of one `Post` cell; for a cell cut mid-list, every post before the cut."""
    try:
        return [str(p) for p in ast.literal_eval(cell)]
    except (SyntaxError, ValueError):
        pass
    out: list[str] = []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(cell).readline):
            if tok.type == tokenize.STRING:
                out.append(str(ast.literal_eval(tok.string)))
    except (tokenize.TokenError, SyntaxError, ValueError):
        pass  # the cut string: everything before it is kept
    return out


def read_users(path: Path) -> list[User]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: the Reddit C-SSRS users are not here; pass the path of {FOLDER}/{FILE_NAME}")
    with path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    users = []
    for r in rows:
        posts = [p.strip() for p in parse_posts(r["Post"]) if p.strip()]
        if r["Label"] not in LABELS:
            raise ValueError(f"{path}: user {r['User']}: unknown label {r['Label']!r}; expected one of {', '.join(LABELS)}")
        users.append(User(id=r["User"], label=r["Label"], posts=posts))
    return users


def split_of(users: list[User]) -> dict[str, str]:
    """user id -> "dev" or "heldout": per label, the HELDOUT_SHARE of users first by a hash of their id."""
    out: dict[str, str] = {}
    for label in LABELS:
        ids = sorted((u.id for u in users if u.label == label), key=lambda i: hashlib.sha256(f"cssrs:{i}".encode()).hexdigest())
        k = round(HELDOUT_SHARE * len(ids))
        out.update({i: ("heldout" if n < k else "dev") for n, i in enumerate(ids)})
    return out


def training_users(users: list[User]) -> list[User]:
    s = split_of(users)
    return [u for u in users if s[u.id] == "dev"]


def heldout_users(users: list[User]) -> list[User]:
    s = split_of(users)
    return [u for u in users if s[u.id] == "heldout"]


def _key(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).strip()


def duplicate_pairs(posts: list[str], others: list[str], threshold: float = NEAR_DUP_JACCARD) -> list[tuple[int, int]]:
    """(i, j) for each posts[i] that is an exact (after case and punctuation) or near copy (character 5-gram
    Jaccard >= threshold) of others[j]; a sparse product of hashed 5-gram sets, so 10^7 pairs take seconds."""
    import numpy as np
    from sklearn.feature_extraction.text import HashingVectorizer

    a, b = [_key(p) for p in posts], [_key(p) for p in others]
    exact = {t: j for j, t in enumerate(b)}
    pairs = {(i, exact[t]) for i, t in enumerate(a) if t in exact}
    hv = HashingVectorizer(analyzer="char", ngram_range=(5, 5), n_features=2**20, binary=True, norm=None,
                           alternate_sign=False)
    A, B = hv.transform(a), hv.transform(b)
    inter = (A @ B.T).tocoo()
    na, nb = np.asarray(A.sum(1)).ravel(), np.asarray(B.sum(1)).ravel()
    jac = inter.data / np.maximum(1, na[inter.row] + nb[inter.col] - inter.data)
    pairs |= {(int(i), int(j)) for i, j, v in zip(inter.row, inter.col, jac, strict=True) if v >= threshold}
    return sorted(pairs)


def without_heldout_duplicates(dev: list[User], held: list[User]) -> list[User]:
    """The dev users with every post that copies (exactly or nearly) a held-out user's post removed."""
    posts = [(n, k) for n, u in enumerate(dev) for k in range(len(u.posts))]
    dup = {posts[i] for i, _ in duplicate_pairs([dev[n].posts[k] for n, k in posts], [p for u in held for p in u.posts])}
    return [u.model_copy(update={"posts": [p for k, p in enumerate(u.posts) if (n, k) not in dup]}) for n, u in enumerate(dev)]


def heldout_digest(users: list[User]) -> str:
    """A short hash of the held-out user ids: the head records it, a test compares it with the split."""
    return hashlib.sha256(",".join(sorted(u.id for u in heldout_users(users))).encode()).hexdigest()[:16]


def training_posts(users: list[User]) -> tuple[list[User], int]:
    """The dev users the learned layer trains on (TRAIN_LABELS), each with their first TRAIN_POSTS posts that
    copy no held-out user's post, and how many dev posts were dropped as such copies."""
    dev, held = training_users(users), heldout_users(users)
    kept = without_heldout_duplicates(dev, held)
    dropped = sum(len(u.posts) for u in dev) - sum(len(u.posts) for u in kept)
    return [u.model_copy(update={"posts": u.posts[:TRAIN_POSTS]}) for u in kept
            if u.label in TRAIN_LABELS and u.posts], dropped
