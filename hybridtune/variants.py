"""Counselor variants as data: the config's `variants:` section, declared once, read by every stage.

Each variant is a recipe: which sources it trains on, the real share, the size and the
training units. `mix` builds each trained variant's set, `train` fine-tunes every one of
them with the same seed and hyperparameters, and `simulate`, `score`, `likelihood` and
`report` iterate over the declared variants in declared order.

    variants:
      base: {sources: []}                   # untrained: the base model under the shared system prompt
      real: {sources: [real]}               # real data only (real_share 1)
      synthetic: {sources: [synthetic]}     # synthetic data only (real_share 0)
      hybrid: {real_share: 0.5}             # both sources (the default), 50% real
      hybrid@{0.25,0.5,0.75}: {size: 16}    # a sweep: hybrid@0.25, hybrid@0.5, hybrid@0.75 at equal size
      qa_hybrid: {real_share: 0.5, units: qa, balance_by: emotion}

    from hybridtune.variants import resolve
    for v in resolve(cfg.variants, cfg.mix.size, cfg.mix.stratify_by): print(v.name, v.real_share, v.size)

A name `NAME@{a,b,...}` expands to one variant per share, `NAME@x` sets real_share x.
Omitted: size = `mix.size`, balance_by = `mix.stratify_by`, units = sessions.
"""
from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Source = Literal["real", "synthetic"]
Units = Literal["sessions", "qa", "both"]
NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
SWEEP = re.compile(r"^(?P<base>[A-Za-z0-9_.-]+)@\{(?P<vals>[^{}]*)\}$")
POINT = re.compile(r"^(?P<base>[A-Za-z0-9_.-]+)@(?P<val>[0-9.]+)$")


class Recipe(BaseModel):
    """What a variant trains on (as written in the config)."""

    model_config = ConfigDict(extra="forbid")
    sources: list[Source] = Field(
        default_factory=lambda: ["real", "synthetic"],
        description="data sources: [] = untrained base model, [real], [synthetic] or both")
    real_share: float | None = Field(
        None, ge=0, le=1, description="share of real units in the set (both sources: required unless the name "
        "carries it, as in hybrid@0.5; one source: implied)")
    size: int | None = Field(None, ge=1, description="units in the set, train + valid (None: mix.size)")
    units: Units = Field(
        "sessions", description="training units: whole sessions, qa (single exchanges with their context, "
        "from real/samples.jsonl) or both")
    balance_by: str | None = Field(
        None, description="stratify the selection of each source by technique, emotion, distortion or a meta key "
        "(None: mix.stratify_by)")


class Variant(BaseModel):
    """A resolved variant: every field set, a sweep expanded."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str
    sources: tuple[Source, ...]
    real_share: float
    size: int
    units: Units
    balance_by: str
    sweep: str | None = None  # the family name of a sweep (hybrid for hybrid@0.25)

    @property
    def trained(self) -> bool:
        return bool(self.sources)

    def counts(self) -> dict[str, int]:
        """Units wanted per source."""
        n_real = round(self.size * self.real_share)
        return {"real": n_real, "synthetic": self.size - n_real}

    def recipe(self) -> dict:
        """The fields that define the training set (stored with the model, keyed into its data)."""
        return self.model_dump(mode="json", exclude={"name", "sweep"})


DEFAULT = {"base": {"sources": []}, "real": {"sources": ["real"]}, "hybrid": {"real_share": 0.5}}


def default_recipes() -> dict[str, Recipe]:
    return {k: Recipe.model_validate(v) for k, v in DEFAULT.items()}


def _share(text: str, name: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise ValueError(f"variants.{name}: '{text}' is not a share; write numbers in [0, 1], e.g. hybrid@{{0,0.5,1}}") from None
    if not 0 <= x <= 1:
        raise ValueError(f"variants.{name}: share {x} is outside [0, 1]")
    return x


def _one(name: str, r: Recipe, size: int, balance: str, share: float | None, sweep: str | None) -> Variant:
    src = tuple(dict.fromkeys(r.sources))
    if share is not None and r.real_share is not None and share != r.real_share:
        raise ValueError(f"variants.{name}: the name sets real_share {share} but the recipe says {r.real_share}; keep one")
    share = r.real_share if share is None else share
    if not src:
        share = 0.0
    elif src == ("real",):
        if share not in (None, 1.0):
            raise ValueError(f"variants.{name}: sources [real] means real_share 1, not {share}; add synthetic or drop real_share")
        share = 1.0
    elif src == ("synthetic",):
        if share not in (None, 0.0):
            raise ValueError(f"variants.{name}: sources [synthetic] means real_share 0, not {share}; add real or drop real_share")
        share = 0.0
    elif share is None:
        raise ValueError(f"variants.{name}: two sources need real_share (e.g. real_share: 0.5, or name it {name}@0.5)")
    return Variant(name=name, sources=src, real_share=float(share), size=r.size or size, units=r.units,
                   balance_by=r.balance_by or balance, sweep=sweep)


def resolve(recipes: dict[str, Recipe], size: int, balance_by: str) -> list[Variant]:
    """The declared variants in order, sweeps expanded; ValueError naming the key on a bad declaration."""
    out: dict[str, Variant] = {}
    for key, r in recipes.items():
        if m := SWEEP.match(key):
            vals = [v.strip() for v in m["vals"].split(",") if v.strip()]
            if not vals:
                raise ValueError(f"variants.{key}: an empty sweep; list shares, e.g. {m['base']}@{{0,0.5,1}}")
            if set(r.sources) != {"real", "synthetic"}:
                raise ValueError(f"variants.{key}: a sweep varies the real share, so it needs both sources")
            items = [(f"{m['base']}@{_share(v, key):g}", _share(v, key), m["base"]) for v in vals]
        elif m := POINT.match(key):
            items = [(key, _share(m["val"], key), None)]
        elif NAME.match(key):
            items = [(key, None, None)]
        else:
            raise ValueError(f"variants.{key}: names use letters, digits, '_', '.', '-' "
                             "(a sweep: name@{a,b,...}, a share: name@0.5)")
        for name, share, sweep in items:
            if name in out:
                raise ValueError(f"variants.{key}: '{name}' is declared twice; keep one")
            out[name] = _one(name, r, size, balance_by, share, sweep)
    if not out:
        raise ValueError("variants: none declared; declare at least one (e.g. base: {sources: []})")
    return list(out.values())
