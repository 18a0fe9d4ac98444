"""The layered crisis screen every part of hybridtune uses: rules first, a model for the rest.

Input: one user text (or a `Session`). Output: `RiskResult` (see rules.py).

    from hybridtune.safety.screen import screen, screen_session
    r = await screen("I don't see the point anymore", llm=ctx.llm("judge"), cfg=ctx.cfg.safety)
    r.risk, r.categories, r.evidence, r.source    # source: rules | model | degraded
    screen_session(session)                       # rules only, over the user turns (pipeline hook)

Layers: (1) `rule_screen` phrase patterns with negation handling decide alone when they are
confident (`settled`); (2) otherwise the `safety.model_role` model answers the C-SSRS-style
rubric of prompts/safety_screen.yaml as structured JSON. A model verdict counts at or above
`safety.model_min_confidence`, and by default can only raise the rules' level (a model that
misses a crisis must not erase what the rules saw). If the model call fails the rules decide,
the result says `source="degraded"` and is logged; an unsettled "none" becomes "low" then, so
a failure is never silently "no risk".
"""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator

from ..domain import load_domain
from ..records import Session
from .config import SafetyConfig
from .rules import CATEGORIES, RISK_ORDER, RiskResult, rule_screen

if TYPE_CHECKING:
    from ..domain import Domain
    from ..llm import LLM

log = logging.getLogger("hybridtune.safety")


class BadText(ValueError):
    """Input the screen refuses (empty, too long, not text); the message says what to fix."""


class SafetyJudgement(BaseModel):
    """The model's structured answer to the C-SSRS-style rubric."""

    wish_to_be_dead: bool = False
    active_ideation: bool = False
    plan_or_intent: bool = False
    recent_behavior: bool = False
    categories: list[str] = Field(default_factory=list)
    risk: Literal["none", "low", "high", "imminent"]
    confidence: float = Field(ge=0, le=1)
    evidence: str = Field("", max_length=300)  # bounded so a looping small model cannot run out of tokens mid-string

    @field_validator("categories", mode="before")
    @classmethod
    def _known(cls, v):  # a small model invents categories; keep only the known ones
        return [c for c in (v or []) if isinstance(c, str) and c in CATEGORIES]


def validate_text(text: object, max_chars: int) -> str:
    """The text if the screen accepts it; else BadText naming the problem and the fix."""
    if not isinstance(text, str):
        raise BadText(f"text must be a string, got {type(text).__name__}; send plain text")
    if not text.strip():
        raise BadText("text is empty; send a non-empty message")
    if len(text) > max_chars:
        raise BadText(f"text has {len(text)} characters, over safety.max_chars={max_chars}; shorten it or raise the limit")
    bad = sum(1 for ch in text if ord(ch) < 32 and ch not in "\n\r\t")
    if "\x00" in text or bad > max(3, len(text) // 20):
        raise BadText("text contains binary/control characters; send plain UTF-8 text")
    return text


def _max(a: str, b: str) -> str:
    return a if RISK_ORDER[a] >= RISK_ORDER[b] else b


def _model_level(j: SafetyJudgement) -> str:
    """The rubric's level, raised by its own C-SSRS items (a plan with ideation is imminent)."""
    items = "none"
    if j.wish_to_be_dead:
        items = "low"
    if j.active_ideation:
        items = "high"
    if j.active_ideation and (j.plan_or_intent or j.recent_behavior):
        items = "imminent"
    return _max(j.risk, items)


async def ask_model(text: str, llm: LLM, domain: Domain | None = None) -> SafetyJudgement:
    """One structured rubric call (raises on failure; `screen` handles that)."""
    tpl = (domain or load_domain("cbt")).prompt("safety_screen")
    reply = await llm.chat(tpl.render(text=text), schema=SafetyJudgement, temperature=0.0)
    return reply.parsed


async def screen(
    text: str, llm: LLM | None = None, cfg: SafetyConfig | None = None, domain: Domain | None = None
) -> RiskResult:
    """Layered screen of one text. Never raises on str input (model failures -> degraded)."""
    cfg = cfg or SafetyConfig()
    rules = rule_screen(text)
    if (rules.settled and cfg.model_on == "unsettled") or not cfg.use_model or llm is None:
        return rules
    try:
        j = await ask_model(text[: cfg.max_chars], llm, domain)
    except Exception as e:  # any model failure (even budget/endpoint errors) must not break the chat
        log.warning("safety screen degraded to rules: %s: %s", type(e).__name__, str(e)[:200])
        risk = rules.risk if rules.risk != "none" else "low"  # unsure and blind: never silently 'none'
        return rules.model_copy(update={"risk": risk, "source": "degraded", "settled": False,
                                        "error": f"{type(e).__name__}: {str(e)[:200]}"})
    level = _model_level(j)
    if j.confidence < cfg.model_min_confidence:
        return rules.model_copy(update={"model_risk": level, "model_confidence": j.confidence})
    risk = level if cfg.model_can_lower else _max(rules.risk, level)
    cats = list(rules.categories) + [c for c in j.categories if c not in rules.categories]
    if RISK_ORDER[risk] > 0 and not cats:
        cats = ["suicide"] if (j.wish_to_be_dead or j.active_ideation) else []
    ev = list(rules.evidence)
    if j.evidence.strip() and j.evidence.strip().lower() in text.lower():  # only spans really in the text
        ev.append(j.evidence.strip())
    return RiskResult(risk=risk, categories=cats if RISK_ORDER[risk] else [], evidence=ev, source="model",
                      settled=True, model_risk=level, model_confidence=j.confidence)


_AFFIRM = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|maybe|kind of|kinda|sort of|i think so|probably|i guess|sometimes|a little|a bit|"
    r"honestly,? yes)\b(?!,? (?:i'?m|i am) (?:safe|fine|ok|okay))|^\W*(?:i am|i do|i have|i was)\W*$|\bnot (?:feel(?:ing)? )?safe\b|"
    r"^\W*(?:no|not really),? i'?m not(?: safe)?\W*$", re.I)


def follow_up(prev: RiskResult | None, text: str, result: RiskResult) -> RiskResult:
    """Carry a crisis over to a short affirmative answer to the safety question.

    After the safe response asks "Are you safe right now?", "yes"/"kind of"/"I'm not safe"
    says nothing risky on its own; read in context it confirms the risk, so it keeps the
    previous turn's level (never lowers what this turn's screen found).
    """
    if prev is None or not prev.is_crisis or RISK_ORDER[result.risk] >= RISK_ORDER[prev.risk]:
        return result
    if len(text) > 200 or not _AFFIRM.search(text.strip()):
        return result
    return result.model_copy(update={
        "risk": prev.risk, "categories": list(prev.categories), "settled": True,
        "evidence": [*result.evidence, "answer to the safety question: " + text.strip()[:60]], "carried_over": True,
    })


def screen_session(session: Session) -> RiskResult:
    """Rules-only screen of a session's user turns (for the real-data and curation stages).

    Returns the highest risk over the turns, with all categories and evidence, plus
    `turns`: the message indexes that were flagged (risk above none).
    """
    risk, cats, ev, turns, settled = "none", [], [], [], True
    for i, m in enumerate(session.messages):
        if m.role != "user":
            continue
        r = rule_screen(m.content)
        settled = settled and r.settled
        if r.risk != "none":
            turns.append(i)
            risk = _max(risk, r.risk)
            cats += [c for c in r.categories if c not in cats]
            ev += [e for e in r.evidence if e not in ev]
    return RiskResult(risk=risk, categories=cats, evidence=ev[:10], source="rules", settled=settled, turns=turns)
