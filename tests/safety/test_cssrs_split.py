"""The Reddit C-SSRS users (the shared data sets' cssrs-reddit): the file is read whole (cut cells keep their complete
posts), the split is by user, and no held-out user's post is in what the learned layer trains on, checked
exactly and for near-duplicates by a method independent of the one that filters them (word sets, not
character 5-grams); a head trained on them records the split it was trained on."""
from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from hybridtune.safety.cssrs import (
    AT_RISK, FILE_NAME, FOLDER, TRAIN_POSTS, heldout_digest, heldout_users, parse_posts, read_users, split_of, training_posts,
    training_users)
from hybridtune.safety.learned import HEAD_FILE
from tests.conftest import shared_data



@pytest.fixture(scope="module")
def users():
    return read_users(shared_data(FOLDER, FILE_NAME))  # skips the module's tests without the shared data


def words(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-z0-9']+", text.lower()))


def copies(posts: list[str], others: list[str], threshold: float = 0.8) -> list[tuple[str, str]]:
    """Pairs that are equal ignoring case and punctuation, or share >= threshold of their words (Jaccard of word
    sets, through an inverted index of each post's rarest word)."""
    key = lambda t: " ".join(re.findall(r"[a-z0-9']+", t.lower()))  # noqa: E731
    exact = {key(o) for o in others}
    out = [(p, p) for p in posts if key(p) in exact]
    index = defaultdict(list)
    ows = [words(o) for o in others]
    for j, w in enumerate(ows):
        for x in w:
            index[x].append(j)
    for p in posts:
        w = words(p)
        if len(w) < 4:
            continue  # "thanks :)" is covered by the exact check; a few words share nothing to copy
        cands = {j for x in sorted(w, key=lambda x: len(index.get(x, ())))[:3] for j in index.get(x, ())}
        out += [(p, others[j]) for j in cands if len(w & ows[j]) / len(w | ows[j]) >= threshold]
    return out


def test_every_user_and_the_posts_of_cut_cells_are_read(users):
    assert len(users) == 400 and all(u.posts for u in users)
    assert sum(u.at_risk for u in users) == 228
    cut = "['first post', \"second's post\", 'third post cut mid"
    assert parse_posts(cut) == ["first post", "second's post"]


def test_the_split_is_by_user_and_stratified(users):
    s = split_of(users)
    held, dev = heldout_users(users), training_users(users)
    assert {u.id for u in held}.isdisjoint(u.id for u in dev) and len(held) + len(dev) == 400
    for label in ("Supportive", "Indicator", *AT_RISK):
        n = sum(u.label == label for u in users)
        assert abs(sum(u.label == label for u in held) - 0.3 * n) <= 1
    assert split_of(list(reversed(users))) == s  # fixed by the ids, not the file order


def test_no_held_out_post_is_in_training_exact_or_near(users):
    held = [p for u in heldout_users(users) for p in u.posts]
    raw = [p for u in training_users(users) for p in u.posts]
    assert copies(raw, held), "the unfiltered dev posts do hold copies of held-out posts (the check can fail)"
    train, dropped = training_posts(users)
    assert dropped > 0 and all(len(u.posts) <= TRAIN_POSTS and u.label != "Indicator" for u in train)
    assert copies([p for u in train for p in u.posts], held) == []


def test_a_head_trained_on_reddit_users_records_this_split(users):
    """The shipped head either never saw the Reddit users or was trained on the dev side of this very split."""
    prov = json.loads(HEAD_FILE.read_text())["provenance"]
    assert "reddit" not in prov or prov["heldout_users_sha"] == heldout_digest(users)
