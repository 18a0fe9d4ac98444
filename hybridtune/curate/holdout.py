"""Held-out splits decided before any stage can see them: leak-free by construction.

The held-out real sessions (`mix/test_real.jsonl`, scored by the likelihood and calibrate
stages) are chosen from `real/sessions.jsonl` by a pure function of the real session ids,
`mix.test_fraction`, `mix.min_test` and the mix seed, so every stage gets the same answer
without a shared file: `synth` takes its few-shot exemplars only from the training side,
and `mix` holds out exactly these sessions. Synthetic test sessions are held out by whole
scenario, so no scenario has sessions on both sides.

    held = heldout_real_ids(real_sessions, cfg.mix, seed)      # ids no training data may see (whole groups
                                                                # with mix.group_by: a video and its series)
    training_side(ctx, real_sessions)                           # what exemplars may come from
"""
from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable

from ..records import Session
from .config import MixConfig


def split_off(pool: list[Session], frac: float, minimum: int, rng: random.Random,
              group: Callable[[Session], str] | None = None) -> tuple[list[Session], list[Session]]:
    """(held-out, rest): round(frac*n) sessions, at least `minimum` when the pool has more than
    one. With `group`, whole groups are held out (never one group on both sides), at least one
    group stays in the rest, and the held-out count is the first group total reaching the target."""
    pool = sorted(pool, key=lambda x: x.id)
    k = round(len(pool) * frac) if frac > 0 else 0
    if frac > 0 and len(pool) > 1:
        k = max(k, minimum)
    k = min(k, len(pool) - 1) if len(pool) > 1 else 0
    if group is None:
        picked = set(x.id for x in rng.sample(pool, k))
    else:
        groups: dict[str, list[Session]] = defaultdict(list)
        for s in pool:
            groups[group(s)].append(s)
        picked = set()
        for g in rng.sample(sorted(groups), max(len(groups) - 1, 0)):  # one group always stays for training
            if len(picked) >= k:
                break
            picked |= {s.id for s in groups[g]}
    return [s for s in pool if s.id in picked], [s for s in pool if s.id not in picked]


def scenario_of(s: Session) -> str:
    """The scenario a synthetic session was generated from (its own id when it has none)."""
    return str(s.meta.get("scenario_id") or s.id)


def mix_seed(cfg) -> int:
    return cfg.seed if cfg.mix.seed is None else cfg.mix.seed


def groups(sessions: list[Session], keys: list[str]) -> dict[str, str]:
    """Session id -> group label: sessions sharing a value of any of `keys` (in meta) are one
    group, transitively (a video's transcripts and a series' videos join); a session with none
    of the keys is its own group. The label is the group's smallest id, so it is stable."""
    parent = {s.id: s.id for s in sessions}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    first: dict[tuple[str, str], str] = {}
    for s in sorted(sessions, key=lambda x: x.id):
        for k in keys:
            v = s.meta.get(k)
            if v is None or str(v).strip() == "":
                continue
            other = first.setdefault((k, str(v)), s.id)
            a, b = root(s.id), root(other)
            if a != b:
                parent[max(a, b)] = min(a, b)
    return {s.id: root(s.id) for s in sessions}


def heldout_real_ids(real: list[Session], mc: MixConfig, seed: int) -> set[str]:
    """Ids of the real sessions held out for testing: a function of the ids, their group keys
    (`mix.group_by`: whole groups held out) and the config only."""
    label = groups(real, mc.group_by) if mc.group_by else None
    test, _ = split_off(real, mc.test_fraction, mc.min_test, random.Random(f"heldout-real:{seed}"),
                        group=(lambda s: label[s.id]) if label else None)
    return {s.id for s in test}


# Meta keys that tie real sessions together in the sources this project knows (AnnoMI, at
# ingest): the leakage check reports overlap on them even when mix.group_by is not set.
KNOWN_GROUP_KEYS = ("video_url", "series")


def group_overlap(test: list[Session], train_side: list[Session], keys: list[str]) -> list[dict]:
    """Held-out sessions that share a group (a value of any of `keys`, transitively) with a
    session on the training side: {test_id, train_ids, group}."""
    label = groups([*test, *train_side], keys)
    by_group: dict[str, list[str]] = defaultdict(list)
    for s in train_side:
        by_group[label[s.id]].append(s.id)
    return [{"test_id": s.id, "group": label[s.id], "train_ids": sorted(by_group[label[s.id]])[:5]}
            for s in sorted(test, key=lambda x: x.id) if by_group.get(label[s.id])]


def training_side(cfg, real: list[Session]) -> list[Session]:
    """The real sessions that may feed training data (few-shot exemplars, annotation examples...)."""
    held = heldout_real_ids(real, cfg.mix, mix_seed(cfg))
    return [s for s in real if s.id not in held]
