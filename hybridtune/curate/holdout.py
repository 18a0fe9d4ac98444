"""Held-out splits decided before any stage can see them: leak-free by construction.

The held-out real sessions (`mix/test_real.jsonl`, scored by the likelihood and calibrate
stages) are chosen from `real/sessions.jsonl` by a pure function of the real session ids,
`mix.test_fraction`, `mix.min_test` and the mix seed, so every stage gets the same answer
without a shared file: `synth` takes its few-shot exemplars only from the training side,
and `mix` holds out exactly these sessions. Synthetic test sessions are held out by whole
scenario, so no scenario has sessions on both sides.

    held = heldout_real_ids(real_sessions, cfg.mix, seed)      # ids no training data may see
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


def heldout_real_ids(real: list[Session], mc: MixConfig, seed: int) -> set[str]:
    """Ids of the real sessions held out for testing: a function of the ids and the config only."""
    test, _ = split_off(real, mc.test_fraction, mc.min_test, random.Random(f"heldout-real:{seed}"))
    return {s.id for s in test}


def training_side(cfg, real: list[Session]) -> list[Session]:
    """The real sessions that may feed training data (few-shot exemplars, annotation examples...)."""
    held = heldout_real_ids(real, cfg.mix, mix_seed(cfg))
    return [s for s in real if s.id not in held]
