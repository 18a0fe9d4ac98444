"""Quota sampling: attribute values and taxonomy terms dealt so a set covers them by construction.

Input: the domain's `attributes.yaml` (validated here) and taxonomy ids. Output: per-item
attribute dicts / id lists whose counts match the quotas within one (largest remainder).

attributes.yaml format (a user edits it for another domain):

    theme_attribute: presenting_problem    # the attribute that is a scenario's theme
    attitude_attribute: attitude           # the attribute that sets the patient's attitude
    attributes:
      age_band: [18-24, 25-34, ...]        # a list: even quotas
      attitude: {positive: 1, neutral: 2, resistant: 1}   # a mapping: weighted quotas
    session_plan: [{phase: agenda, goal: ...}, ...]      # counselor phases, in order

    spec = load_attribute_spec(domain)
    rows = sample_attributes(spec, n=200, rng=random.Random(7))
"""
from __future__ import annotations

import math
import random
import re
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..domain import Domain
from ..errors import UserError, first_error


class PlanPhase(BaseModel):
    model_config = ConfigDict(extra="forbid")
    phase: str
    goal: str
    step: str | None = None  # the protocol step (protocol.yaml) this phase works on, if any


class AttributeSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    theme_attribute: str
    attitude_attribute: str | None = None
    attributes: dict[str, dict[str, float]]
    session_plan: list[PlanPhase] = Field(min_length=1)

    @field_validator("attributes", mode="before")
    @classmethod
    def _weights(cls, v):
        if not isinstance(v, dict) or not v:
            raise ValueError("expected a mapping attribute -> list of values (or value -> weight)")
        out = {}
        for name, vals in v.items():
            if isinstance(vals, list):
                vals = {str(x): 1.0 for x in vals}
            if not isinstance(vals, dict) or not vals:
                raise ValueError(f"{name}: expected a non-empty list of values or a value -> weight mapping")
            for val, w in vals.items():
                if not isinstance(w, int | float) or w <= 0:
                    raise ValueError(f"{name}.{val}: weight must be a positive number (got {w!r})")
            out[str(name)] = {str(k): float(w) for k, w in vals.items()}
        return out


def _line_of(path, *keys: str) -> str:
    """':N' for the line of the last of `keys`, each searched after the previous (error messages)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return ""
    start, found = 0, None
    for key in keys:
        for i in range(start, len(lines)):
            if re.search(rf"(^|[\s{{\[,-]){re.escape(key)}\s*([:,\]}}]|$)", lines[i].strip()):
                start = found = i
                break
    return "" if found is None else f":{found + 1}"


def load_attribute_spec(domain: Domain) -> AttributeSpec:
    """The domain's attributes.yaml, validated; errors name the file, line and key."""
    path = domain.root / "attributes.yaml"
    try:
        spec = AttributeSpec.model_validate(domain.attributes)
    except ValidationError as e:
        err = e.errors()[0]
        keys = [str(p) for p in err["loc"]]
        m = re.match(r"([\w -]+)(?:\.([^:]+))?: ", err["msg"].removeprefix("Value error, "))  # 'attribute.value: ...'
        if m:
            keys += [g for g in m.groups() if g]
        raise UserError(f"{path}{_line_of(path, *keys)}: {first_error(e)}; see the format in hybridtune/synth/sampling.py") from None
    for key in (spec.theme_attribute, spec.attitude_attribute):
        if key is not None and key not in spec.attributes:
            raise UserError(f"{path}{_line_of(path, key)}: '{key}' is named as theme/attitude attribute but is not "
                            f"under attributes (have: {', '.join(spec.attributes)})")
    return spec


def quota_counts(weights: dict[str, float], n: int) -> dict[str, int]:
    """Split n slots over keys in proportion to weights (largest remainder; sums to n)."""
    assert weights and n >= 0, "quota_counts needs weights and n >= 0"
    total = sum(weights.values())
    exact = {k: n * w / total for k, w in weights.items()}
    counts = {k: math.floor(x) for k, x in exact.items()}
    rest = n - sum(counts.values())
    for k in sorted(exact, key=lambda k: (counts[k] - exact[k], k))[:rest]:
        counts[k] += 1
    return counts


def quota_column(weights: dict[str, float], n: int, rng: random.Random) -> list[str]:
    """n values meeting the quotas, in random order."""
    col = [k for k, c in quota_counts(weights, n).items() for _ in range(c)]
    rng.shuffle(col)
    return col


def sample_attributes(spec: AttributeSpec, n: int, rng: random.Random) -> list[dict[str, str]]:
    """n attribute dicts; every attribute's values meet their quotas over the set. Columns are
    shuffled independently, so combinations vary while the marginals are exact."""
    cols = {name: quota_column(w, n, rng) for name, w in spec.attributes.items()}
    return [{name: cols[name][i] for name in spec.attributes} for i in range(n)]


def deal_terms(ids: list[str], sizes: list[int], rng: random.Random, weights: dict[str, float] | None = None) -> list[list[str]]:
    """Give item i `sizes[i]` distinct ids so that overall counts follow the quotas.

    Greedy: each item takes the ids with the most quota left (random tie-break), so counts
    stay within one of the quota (no id dominates; every id appears once slots allow)."""
    assert ids, "deal_terms needs at least one id"
    unknown = set(weights or {}) - set(ids)
    if unknown:
        raise UserError(f"synth.technique_weights: unknown ids {sorted(unknown)}; use ids from the domain's techniques.yaml")
    w = {i: float((weights or {}).get(i, 1.0)) for i in ids}
    left = Counter(quota_counts(w, sum(sizes)))
    out = []
    for size in sizes:
        size = min(size, len(ids))
        order = sorted(ids, key=lambda i: (-left[i], rng.random()))
        pick = order[:size]
        for i in pick:
            left[i] -= 1
        out.append(pick)
    return out


def entropy_ratio(values: list[str], n_categories: int) -> float:
    """Shannon entropy of the values over log(n_categories): 1 = perfectly even coverage."""
    if not values or n_categories < 2:
        return 0.0
    c = Counter(values)
    p = [x / len(values) for x in c.values()]
    return -sum(x * math.log(x) for x in p) / math.log(n_categories)
