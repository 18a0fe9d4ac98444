"""Judge metrics: what the `judge` role rates, on which scale, under which label.

A metric is one registered `Metric` plus its rubric prompt (`eval_judge_<name>.yaml` unless it
names another) in the domain pack. Naming it in `evaluate.metrics` makes the score stage rate
it, calibration validate it, and the report's headline table, statistics and figures show it
(the axes follow its scale); no other edit. The shared metrics (empathy, relevance) are
registered here; a domain pack declares its own in `domain.yaml` `metrics:` (domains/cbt has one),
registered when the pack loads (`declare_pack_metrics`).

    METRICS.add("warmth", Metric("warmth", "Warmth"))                       # 1-10, one score
    METRICS.add("mi", Metric("mi", "MITI total", low=1, high=5, items=("partnership", "empathy")))
    m = metric("empathy"); m.schema(); m.value(reply.parsed)              # -> (score, items)

A metric with `items` is rated item by item (each low..high) and scored as their sum.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from ..errors import UserError
from ..plugins import Registry

# Rationale first (the judge reasons, then scores). Its maxLength is a schema hint, not a
# validation: grammar-constrained backends (llama.cpp, vLLM) must close the string in time,
# so a rambling model still yields valid JSON within max_tokens instead of a cut-off reply.
RATIONALE = Field(description="two sentences citing the transcript", json_schema_extra={"maxLength": 400})


@dataclass(frozen=True)
class Metric:
    name: str
    label: str           # shown in tables and on figure axes
    low: int = 1         # scale of one rating (of each item, when there are items)
    high: int = 10
    items: tuple[str, ...] = ()  # rated separately and summed (each low..high)
    prompt: str = ""     # its rubric in the pack's prompts/ (default eval_judge_<name>)

    @property
    def rubric(self) -> str:
        """The prompt template the judge rates this metric with."""
        return self.prompt or f"eval_judge_{self.name}"

    @property
    def floor(self) -> float:
        """The lowest score (what `evaluate.failed_as_min` counts a failed judgement as)."""
        return float(self.scale[0])

    @property
    def scale(self) -> tuple[int, int]:
        """The range of the score (the sum of the items when there are items)."""
        n = len(self.items) or 1
        return self.low * n, self.high * n

    def schema(self) -> type[BaseModel]:
        """The structured reply asked of the judge: a rationale, then the score(s)."""
        return _schema(self)

    def value(self, parsed: Any) -> tuple[float, dict[str, int]]:
        """(score, item scores) of a parsed reply."""
        if self.items:
            items = {i: int(getattr(parsed, i)) for i in self.items}
            return float(sum(items.values())), items
        return float(parsed.score), {}


@functools.lru_cache(maxsize=None)
def _schema(m: Metric) -> type[BaseModel]:
    # "Rating" / "<NAME>Rating": the schema name is part of the request (and its cache key)
    if m.items:
        fields: dict[str, Any] = {i: (int, Field(ge=m.low, le=m.high)) for i in m.items}
        return create_model(f"{m.name.upper()}Rating", rationale=(str, RATIONALE), **fields)
    return create_model("Rating", rationale=(str, RATIONALE), score=(int, Field(ge=m.low, le=m.high)))


METRICS: Registry[Metric] = Registry("judge metric", group="hybridtune.metrics")
METRICS.add("empathy", Metric("empathy", "Empathy"))
METRICS.add("relevance", Metric("relevance", "Relevance"))


def metric(name: str) -> Metric:
    return METRICS.get(name, key="evaluate.metrics")


def rubric(name: str) -> str:
    """A metric's rubric prompt name; by convention for a name not (yet) registered."""
    return metric(name).rubric if name in METRICS else f"eval_judge_{name}"


class MetricSpec(BaseModel):
    """One entry of a domain pack's `metrics:` (domain.yaml)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z0-9_]+$")
    label: str
    low: int = 1
    high: int = 10
    items: list[str] = Field(default_factory=list)
    prompt: str = ""

    @model_validator(mode="after")
    def _scale(self) -> MetricSpec:
        if self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be above low ({self.low})")
        return self

    def metric(self) -> Metric:
        return Metric(self.name, self.label, self.low, self.high, tuple(self.items), self.prompt)


def declare_pack_metrics(path: Path, specs: list[MetricSpec]) -> list[Metric]:
    """Register a pack's metrics (loading the same pack again is fine; a clash is named in `path`)."""
    out = []
    for spec in specs:
        try:
            out.append(METRICS.add(spec.name, spec.metric()))
        except ValueError as e:
            raise UserError(f"{path}: metrics: {e}; rename the pack's metric") from None
    return out
