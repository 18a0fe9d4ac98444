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
      hybrid_added: {design: added, adds_to: real, synthetic_units: 40}   # real's units + 40 synthetic

Two designs answer two questions. `replace` (the default) holds the total fixed and lets
synthetic units replace real ones (the dose sweep: "at this size, what share of real data is
best?"). `added` keeps exactly the real units of `adds_to` and adds synthetic ones (the
paper's hybrid: "does adding synthetic data to the real data help?"); its size and real share
follow. `contrast(a, b)` says in words which question a comparison of two variants answers.

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
Design = Literal["replace", "added"]
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
    design: Design = Field(
        "replace", description="replace: synthetic units replace real ones at a fixed total (size x real_share real; "
        "a dose sweep); added: exactly the real units of variant `adds_to` plus `synthetic_units` synthetic ones "
        "(the paper's hybrid)")
    adds_to: str | None = Field(
        None, description="design added: the variant whose real units this one keeps (default: real)")
    synthetic_units: int | None = Field(
        None, ge=1, description="design added: synthetic units added to the real ones")


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
    design: Design = "replace"
    adds_to: str | None = None  # design added: the variant whose real units it keeps
    real_units: int | None = None  # design added: fixed counts per source (size and real_share follow)
    synthetic_units: int | None = None
    seed: int | None = None  # train.seeds: this model's training seed (None: train.seed)
    replicate_of: str | None = None  # a further seed's model of this variant (its name is variant~s<seed>)

    @property
    def trained(self) -> bool:
        return bool(self.sources)

    def counts(self) -> dict[str, int]:
        """Units wanted per source."""
        if self.design == "added":
            return {"real": self.real_units or 0, "synthetic": self.synthetic_units or 0}
        n_real = round(self.size * self.real_share)
        return {"real": n_real, "synthetic": self.size - n_real}

    def recipe(self) -> dict:
        """The fields that define the training set (stored with the model, keyed into its data;
        a `replace` recipe keeps the fields it had before designs existed, so its data key holds)."""
        added = {"design", "adds_to", "real_units", "synthetic_units"}
        unset = {k for k in ("seed", "replicate_of") if getattr(self, k) is None}
        return self.model_dump(mode="json", exclude={"name", "sweep", *unset,
                                                     *(added if self.design == "replace" else ())})

    def describe(self) -> str:
        """What it trains on, in words."""
        if not self.trained:
            return "no fine-tuning"
        c = self.counts()
        return f"{c['real']} real + {c['synthetic']} synthetic {self.units}"


def contrast(a: Variant, b: Variant) -> str:
    """The question a comparison of two variants answers, in words (the report names it)."""
    if not a.trained or not b.trained:
        t = a if a.trained else b
        return (f"fine-tuning on {t.describe()} vs the untrained base model" if t.trained
                else "two untrained base models")
    for x, y in ((a, b), (b, a)):
        if x.design == "added" and x.adds_to == y.name:
            return (f"adding {x.counts()['synthetic']} synthetic units to the same {x.counts()['real']} real ones "
                    f"(the paper's hybrid question: {x.name} = {y.name} + synthetic)")
        if (x.design == "added" and y.sources == ("synthetic",) and y.size == x.counts()["synthetic"]
                and (y.units, y.balance_by) == (x.units, x.balance_by)):
            return f"adding {x.counts()['real']} real units to the same {y.size} synthetic ones"
    if a.design == b.design == "replace" and (a.size, a.units, a.balance_by) == (b.size, b.units, b.balance_by):
        return (f"real share {a.real_share:g} vs {b.real_share:g} at the same total of {a.size} {a.units} "
                "(synthetic units replace real ones)")
    return (f"{a.name} ({a.describe()}) vs {b.name} ({b.describe()}): they differ in more than one way, so the "
            "difference has no single cause")


REPLICATE = "~s"  # real~s12: variant real trained (and its subsets drawn) with seed 12


def with_seeds(variants: list[Variant], seeds: list[int]) -> list[Variant]:
    """`train.seeds`: every trained variant once per seed. The first seed keeps the variant's
    name (and the mix seed's draw of its subsets, so one seed changes nothing); each further
    seed s adds `name~s<s>`, trained with seed s on subsets drawn with seed s. Untrained
    variants have no training noise and stay single."""
    out: list[Variant] = []
    for v in variants:
        if not v.trained or not seeds:
            out.append(v)
            continue
        out.append(v.model_copy(update={"seed": seeds[0]}))
        out += [v.model_copy(update={"name": f"{v.name}{REPLICATE}{s}", "seed": s, "replicate_of": v.name,
                                     "adds_to": f"{v.adds_to}{REPLICATE}{s}" if v.adds_to else None})
                for s in seeds[1:]]
    return out


def analysed(variants: list[Variant]) -> list[Variant]:
    """The variants the analysis compares: the declared ones, a seed's replicates pooled into them."""
    return [v for v in variants if v.replicate_of is None]


def variant_of(name: str) -> str:
    """The declared variant a model belongs to (real~s12 -> real)."""
    return name.split(REPLICATE, 1)[0]


def seed_index(name: str, seeds: list[int]) -> int:
    """Which of `train.seeds` a model was trained with: 0 for the declared name, i for name~s<seeds[i]>."""
    _, sep, s = name.partition(REPLICATE)
    return seeds.index(int(s)) if sep and seeds and int(s) in seeds else 0


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
    if r.design == "added":
        if src != ("real", "synthetic") or r.real_share is not None or share is not None or r.size is not None:
            raise ValueError(f"variants.{name}: design added takes the real units of adds_to and adds "
                             "synthetic_units; drop sources, real_share and size")
        if not r.synthetic_units:
            raise ValueError(f"variants.{name}: design added needs synthetic_units (e.g. synthetic_units: 40)")
        return Variant(name=name, sources=src, real_share=0.0, size=1, units=r.units,  # counts: _added
                       balance_by=r.balance_by or balance, sweep=sweep, design="added",
                       adds_to=r.adds_to or "real", synthetic_units=r.synthetic_units)
    if r.adds_to is not None or r.synthetic_units is not None:
        raise ValueError(f"variants.{name}: adds_to and synthetic_units belong to design: added")
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


def _added(v: Variant, out: dict[str, Variant]) -> Variant:
    """An `added` variant with its counts: exactly the real units of `adds_to` (same units and
    balance, so the same stratified order and the same prefix in mix) plus its synthetic ones."""
    ref = out.get(v.adds_to or "")
    if ref is None or not ref.trained or ref.design != "replace" or "real" not in ref.sources:
        raise ValueError(f"variants.{v.name}: adds_to '{v.adds_to}' must name a declared trained variant with "
                         f"real data and design replace (declared: {', '.join(out)})")
    if (ref.units, ref.balance_by) != (v.units, v.balance_by):
        raise ValueError(f"variants.{v.name}: units and balance_by must equal those of {ref.name}, whose real units "
                         "it keeps")
    n_real, n_syn = ref.counts()["real"], v.synthetic_units or 0
    return v.model_copy(update={"real_units": n_real, "size": n_real + n_syn,
                                "real_share": n_real / (n_real + n_syn)})


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
    return [_added(v, out) if v.design == "added" else v for v in out.values()]
