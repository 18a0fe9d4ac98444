"""Stage `split`: the held-out real sessions, chosen once, right after the real stage, and
written as an artefact that every later stage reads (`runs/<name>/split/split.json`).

The held-out real sessions (`mix/test_real.jsonl`, scored by the likelihood and calibrate
stages) are a pure function of the real session ids, their group keys (`mix.group_by`: whole
AnnoMI videos and series held out) and `mix.test_fraction`, `mix.min_test` and the mix seed.
Made here before any stage sees real data, so `synth` takes its few-shot exemplars only from
the training side, `mix` holds out exactly these sessions and `evaluate/power.py` plans with
their number. A reader refuses, in one line, a split that is missing or stale (the real
sessions or the split's config changed since it was made).

    hybridtune split -c configs/demo.yaml      # or: hybridtune run configs/demo.yaml --stage split
    held = read(ctx.store, ctx.cfg, real)       # Split | None (None: the real stage has no sessions)
    held.training_side(real)                    # what exemplars may come from
"""
from __future__ import annotations

import hashlib
import json
import random
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel

from .errors import UserError
from .records import Session
from .store import RunStore, StageDir

if TYPE_CHECKING:
    from .config import ExperimentConfig
    from .context import Context
    from .curate.config import MixConfig

FILE = "split.json"
NAMES = {"seed": "seed (mix.seed, else seed)"}  # the config keys a SplitConfig field comes from


class SplitConfig(BaseModel):
    """What the split was made with: the config keys that decide it."""
    test_fraction: float
    min_test: int
    seed: int
    group_by: list[str]

    @classmethod
    def of(cls, mc: MixConfig, seed: int) -> SplitConfig:
        return cls(test_fraction=mc.test_fraction, min_test=mc.min_test, seed=seed, group_by=list(mc.group_by))


class Split(BaseModel):
    """The artefact: held-out real ids, their group labels, the config and the real sessions' fingerprint."""
    config: SplitConfig
    fingerprint: str             # of the real sessions' ids and group keys (what the split is a function of)
    real_sessions: int
    heldout: list[str]           # sorted
    groups: dict[str, str] = {}  # held-out id -> group label (mix.group_by only)

    def training_side(self, real: list[Session]) -> list[Session]:
        """The real sessions that may feed training data (few-shot exemplars, annotation examples...)."""
        held = set(self.heldout)
        return [s for s in real if s.id not in held]


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
        by_group: dict[str, list[Session]] = defaultdict(list)
        for s in pool:
            by_group[group(s)].append(s)
        picked = set()
        for g in rng.sample(sorted(by_group), max(len(by_group) - 1, 0)):  # one group always stays for training
            if len(picked) >= k:
                break
            picked |= {s.id for s in by_group[g]}
    return [s for s in pool if s.id in picked], [s for s in pool if s.id not in picked]


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


def mix_seed(cfg: ExperimentConfig) -> int:
    return cfg.seed if cfg.mix.seed is None else cfg.mix.seed


def split_config(cfg: ExperimentConfig) -> SplitConfig:
    return SplitConfig.of(cfg.mix, mix_seed(cfg))


def fingerprint(real: list[Session], keys: list[str]) -> str:
    """A hash of what the split is a function of: the ids and their values of the group keys."""
    rows = sorted([s.id, [str(s.meta.get(k, "")) for k in keys]] for s in real)
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16]


def make(real: list[Session], sc: SplitConfig) -> Split:
    """The split of these real sessions under this config (pure: same inputs, same split)."""
    label = groups(real, sc.group_by) if sc.group_by else None
    test, _ = split_off(real, sc.test_fraction, sc.min_test, random.Random(f"heldout-real:{sc.seed}"),
                        group=(lambda s: label[s.id]) if label else None)
    held = sorted(s.id for s in test)
    return Split(config=sc, fingerprint=fingerprint(real, sc.group_by), real_sessions=len(real), heldout=held,
                 groups={i: label[i] for i in held} if label else {})


def ingested(store: RunStore) -> list[Session]:
    """The real stage's sessions (none when it has not run)."""
    return list(store.stage("real").read("sessions.jsonl", Session))


def run(ctx: Context, st: StageDir) -> dict:
    sp = make(ingested(ctx.store), split_config(ctx.cfg))
    st.write_json(FILE, sp.model_dump())
    return {"real_sessions": sp.real_sessions, "heldout": len(sp.heldout), "group_by": sp.config.group_by,
            "heldout_groups": len(set(sp.groups.values()))}


def read(store: RunStore, cfg: ExperimentConfig, real: list[Session]) -> Split | None:
    """The split made by the `split` stage, checked against the real sessions `real` (the real
    stage's) and the config; None when there is none and no real session to split."""
    f = store.stage("split").file(FILE)
    if not f.exists():
        if not real:
            return None
        raise UserError(f"{f}: missing; the held-out split is made once after the real stage: "
                        "run `hybridtune split` (or `hybridtune run`) first")
    sp = load(f)
    why = stale(sp, real, split_config(cfg))
    if why:
        raise UserError(f"{f}: stale ({why}); rerun `hybridtune split --force`, then the stages after it")
    return sp


def load(f: Path) -> Split:
    """The artefact in `f`; an unreadable one is refused in one line."""
    try:
        return Split.model_validate_json(f.read_text(encoding="utf-8"))
    except ValueError as e:  # pydantic's ValidationError (bad JSON included) is a ValueError
        raise UserError(f"{f}: not a held-out split ({str(e).splitlines()[0]}); rerun `hybridtune split --force`") from None


def stale(sp: Split, real: list[Session], sc: SplitConfig) -> str:
    """Why the split no longer fits (empty: it fits)."""
    changed = [NAMES.get(k, f"mix.{k}") for k in SplitConfig.model_fields if getattr(sp.config, k) != getattr(sc, k)]
    if changed:
        return f"made with other {', '.join(changed)}"
    if sp.fingerprint != fingerprint(real, sc.group_by):
        return f"real/sessions.jsonl changed since the split was made ({sp.real_sessions} sessions then, {len(real)} now)"
    return ""
