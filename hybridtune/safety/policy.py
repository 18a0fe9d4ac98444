"""Safe response policy: what the counselor says when a user turn is a crisis, and the event log.

Input: a `RiskResult` for the user's turn and the `safety` config. Output: the safe response
text (fixed, reviewed wording from prompts/safety_response.yaml with the locale's crisis
resources from resources.yaml) and `SafetyEvent` records appended to a JSONL log.

    if is_crisis(result, cfg.safety):
        text = safe_response(result, cfg.safety, domain)     # replaces or prefixes the reply
        log_event(path, SafetyEvent.of(result, kind="crisis", where="chat"))

The response is deliberately not model-generated: a fine-tuned 135M model (or any model)
must not be what stands between a person in crisis and a helpline number.
"""
from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..domain import Domain, load_domain, read_yaml
from ..errors import UserError, first_error
from ..records import Record, stable_id
from ..store import dump_json, open_append
from .config import SafetyConfig
from .rules import RISK_ORDER, RiskResult

RESOURCES_FILE = Path(__file__).parent / "resources.yaml"


class Resource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    contact: str
    url: str | None = None
    categories: list[str] = Field(default_factory=list)  # empty = for every crisis


class Locale(BaseModel):
    model_config = ConfigDict(extra="forbid")
    emergency: str
    resources: list[Resource]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid")
    version: int | str = 1
    emergency_note: str
    locales: dict[str, Locale]


@lru_cache(maxsize=8)
def _load(path: str) -> Resources:
    data = read_yaml(Path(path))
    try:
        res = Resources.model_validate(data)
    except ValidationError as e:
        raise UserError(f"{path}: {first_error(e)}; see hybridtune/safety/resources.yaml") from None
    if "INTL" not in res.locales:
        raise UserError(f"{path}: locales.INTL missing; add an international fallback entry")
    return res


def load_resources(cfg: SafetyConfig) -> Resources:
    return _load(str(Path(cfg.resources_file).expanduser() if cfg.resources_file else RESOURCES_FILE))


def resources_for(cfg: SafetyConfig, categories: list[str]) -> tuple[Locale, list[Resource]]:
    """The locale's entry (INTL when unknown) and the resources fitting these categories."""
    res = load_resources(cfg)
    loc = res.locales.get(cfg.locale.upper()) or res.locales["INTL"]
    chosen = [r for r in loc.resources if not r.categories or set(r.categories) & set(categories)]
    return loc, chosen or loc.resources


def is_crisis(result: RiskResult, cfg: SafetyConfig) -> bool:
    return RISK_ORDER[result.risk] >= RISK_ORDER[cfg.crisis_level]


def safe_response(result: RiskResult, cfg: SafetyConfig, domain: Domain | None = None) -> str:
    """The caring, resource-giving reply for a crisis turn (deterministic)."""
    loc, chosen = resources_for(cfg, result.categories)
    tpl = (domain or load_domain("cbt")).prompt("safety_response")
    msgs = tpl.render(
        risk=result.risk, categories=result.categories, resources=[r.model_dump() for r in chosen],
        emergency=loc.emergency, emergency_note=load_resources(cfg).emergency_note,
    )
    return msgs[-1]["content"]


def fixed_texts(cfg: SafetyConfig, domain: Domain | None = None) -> list[str]:
    """Every line of fixed safety wording this domain can show, in every locale and for every risk
    level and category: what the PII scrubber must never rewrite (a kept conversation or an
    ingested transcript that carries a crisis reply must keep the real helpline numbers)."""
    from .rules import CATEGORIES

    lines: set[str] = set()
    for locale in load_resources(cfg).locales:
        loc_cfg = cfg.model_copy(update={"locale": locale})
        for risk in RISK_ORDER:
            for cats in ([], *([c] for c in CATEGORIES)):
                text = safe_response(RiskResult(risk=risk, categories=cats), loc_cfg, domain)
                lines.update(x.strip() for x in text.splitlines())
    return sorted((x for x in lines if len(x) >= 4), key=len, reverse=True)


def apply_policy(reply: str, result: RiskResult, cfg: SafetyConfig, domain: Domain | None = None) -> str:
    """The reply to show: unchanged, replaced, or prefixed (config `safety.response_mode`)."""
    if not is_crisis(result, cfg):
        return reply
    safe = safe_response(result, cfg, domain)
    return safe if cfg.response_mode == "replace" or not reply.strip() else f"{safe}\n\n{reply}"


_CONTACT = re.compile(r"\S+@\S+|https?://\S+|\+?\d[\d\s().-]{5,}\d")


def scrub_span(span: str) -> str:
    """Evidence spans are short risk phrases; still mask anything that looks like contact data."""
    return _CONTACT.sub("[contact]", span)[:120]


class SafetyEvent(Record):
    """One logged safety event. Holds the matched evidence spans, never the whole message."""

    time: float
    kind: Literal["crisis", "degraded", "flag"]
    where: str  # chat | serve | check | <stage>
    risk: str
    categories: list[str] = Field(default_factory=list)
    evidence: list[str] = Field(default_factory=list)
    source: str = "rules"
    ref: str = ""  # session id / input id
    detail: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def of(cls, result: RiskResult, kind: str, where: str, ref: str = "", **detail: Any) -> SafetyEvent:
        t = time.time()
        extra = {k: v for k, v in (result.model_extra or {}).items()
                 if k in ("error", "degraded", "model_risk", "model_confidence")}
        extra.update(layers=result.layers, scores=result.scores)
        return cls(id=stable_id("safety", where, ref, t), time=t, kind=kind, where=where, risk=result.risk,
                   categories=result.categories, evidence=[scrub_span(e) for e in result.evidence], source=result.source,
                   ref=ref, detail={**extra, **detail})


def events_for(result: RiskResult, cfg: SafetyConfig, where: str, ref: str = "") -> list[SafetyEvent]:
    """The events one screened turn produces (crisis and/or degraded)."""
    out = []
    if is_crisis(result, cfg):
        out.append(SafetyEvent.of(result, "crisis", where, ref, response_mode=cfg.response_mode, locale=cfg.locale))
    if result.source == "degraded":
        out.append(SafetyEvent.of(result, "degraded", where, ref))
    return out


def log_event(path: Path, event: SafetyEvent) -> None:
    """Append one event to a JSONL log (created with its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_append(path) as f:  # owner-only: it says who was at risk when
        f.write(dump_json(event) + "\n")
