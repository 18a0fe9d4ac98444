"""Held-out synthetic sessions and the group checks of the `mix` stage.

The held-out real sessions are chosen once, by the `split` stage (hybridtune/split.py), and
read from its artefact; here: synthetic test sessions are held out by whole scenario (no
scenario has sessions on both sides), and `group_overlap` finds held-out real sessions that
share a group (an AnnoMI video or series) with the training side.

    split_off(synth, frac, minimum, rng, group=scenario_of)    # (held-out, rest), whole scenarios
    group_overlap(test_real, training_side, ["video_url", "series"])
"""
from __future__ import annotations

from collections import defaultdict

from ..records import Session
from ..split import groups


def scenario_of(s: Session) -> str:
    """The scenario a synthetic session was generated from (its own id when it has none)."""
    return str(s.meta.get("scenario_id") or s.id)


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
