"""The layered crisis screen every part of hybridtune uses (chat, serve, safety check, ingest, curation).

Input: one user text (or a `Session`). Output: `RiskResult` (see rules.py) with `layers` (which
layers ran) and `scores` (each layer's score).

    from hybridtune.safety.screen import build_screener, screen, screen_session
    screener = build_screener(cfg, pool)            # layers from the experiment config, built once
    r = await screener.screen("I've been giving my things away")
    r.risk, r.categories, r.source, r.layers       # source: rules | learned | moderation | guard | model | degraded
    await screener.screen_session(session)          # a person's risk: the maximum over their user turns
    screen_session(session)                         # the CPU layers only (rules + learned), synchronous

Every layer reads the text after `normalize.clean` (NFKC, zero-width and bidi characters,
look-alike letters). Layers, cheapest first; each can only raise the level (a layer that misses a crisis must not
erase what another saw):
1. `rule_screen` phrase patterns with negation, idiom, history and third-party handling.
2. the learned layer (learned.py): sentence embedder + linear head on every turn, CPU,
   thresholds chosen on a validation split (data/crisis_head.json); on unless `safety.learned: false`.
3. provider layers (providers.py), when configured: OpenAI moderation, a vLLM guard model.
4. the LLM rubric (`safety.model_role`, prompts/safety_screen.yaml, structured JSON) for what
   rules and learned layer cannot settle (`model_on: all`: every turn); off unless
   `safety.use_model` (the embedded 135M model's verdicts are noise). A verdict counts at or
   above `safety.model_min_confidence`; `model_can_lower` lets it lower the level.
Then the imminence check (imminence.py): `imminent` stands only with evidence of a plan, means,
a time, an act in progress or a farewell in the text (a rules `imminent` carries its own), and
`high` with such evidence becomes `imminent`.
Any layer that fails makes the result `source="degraded"` (logged, `degraded` lists the
layers, `error` says why) and an otherwise "none" result "low": a failure is never "no risk".
"""
from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, field_validator

from ..domain import load_domain
from ..errors import UserError
from ..records import Session
from .config import SafetyConfig
from .answers import affirmative, follow_up  # noqa: F401  (part of this module's interface)
from .imminence import settle
from .normalize import clean
from .rules import CATEGORIES, RISK_ORDER, RiskResult, rule_screen

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..domain import Domain
    from ..llm import LLM, LLMPool

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


def _raise(r: RiskResult, layer: str, risk: str, cats: list[str], score: float | None = None) -> RiskResult:
    """`r` with one more layer's verdict merged in: the level only goes up; the scores and layers are kept."""
    upd: dict = {"layers": [*r.layers, layer]}
    if score is not None:
        upd["scores"] = {**r.scores, layer: score}
    if RISK_ORDER[risk] > RISK_ORDER[r.risk]:
        upd.update(risk=risk, source=layer, categories=r.categories + [c for c in cats if c not in r.categories])
    return r.model_copy(update=upd)


def _degrade(r: RiskResult, layer: str, err: Exception | str) -> RiskResult:
    """A layer failed: say so, and never leave the result at "no risk"."""
    msg = err if isinstance(err, str) else f"{type(err).__name__}: {str(err)[:200]}"
    log.warning("safety screen: %s layer failed, result marked degraded: %s", layer, msg)
    extra = r.model_extra or {}
    return r.model_copy(update={
        "risk": r.risk if r.risk != "none" else "low", "source": "degraded", "settled": False,
        "degraded": [*extra.get("degraded", []), layer],
        "error": "; ".join(x for x in (extra.get("error"), f"{layer}: {msg}") if x)})


class Screener:
    """The layered screen with its layers built once (see the module docstring)."""

    def __init__(self, cfg: SafetyConfig | None = None, llm: LLM | None = None, domain: Domain | None = None,
                 providers: list | tuple = ()):
        self.cfg = cfg or SafetyConfig()
        self.llm = llm if self.cfg.use_model else None
        self.domain = domain
        self.providers = list(providers)

    @property
    def layer_names(self) -> list[str]:
        return ["rules", *(["learned"] if self.cfg.learned else []), *(p.name for p in self.providers),
                *(["model"] if self.llm is not None else [])]

    def cpu(self, texts: list[str]) -> list[RiskResult]:
        """Rules and learned layer for many texts (the learned layer embeds them in one batch)."""
        texts = [clean(t) for t in texts]
        out = [r.model_copy(update={"layers": ["rules"], "rules_risk": r.risk}) for r in map(rule_screen, texts)]
        if not self.cfg.learned or not texts:
            return out
        try:
            from .learned import load_learned

            scores = load_learned(self.cfg.learned_head).score(texts)
        except Exception as e:  # a missing package or a broken head file must not pass as "no risk"
            return [_degrade(r, "learned", e) for r in out]
        res = []
        for t, r, s in zip(texts, out, scores, strict=True):
            r = _raise(r, "learned", s.risk, ["suicide"], s.p_risk)
            r = r.model_copy(update={"settled": False, "unsure": True}) if s.unsure else r
            res.append(settle(t, r))
        return res

    async def screen(self, text: str) -> RiskResult:
        """Screen one text through every configured layer. Never raises on str input."""
        return (await self.screen_many([text]))[0]

    async def screen_many(self, texts: list[str]) -> list[RiskResult]:
        texts = [clean(t) for t in texts]  # every layer, the remote ones too, reads the normalised text
        results = self.cpu(texts)
        remote = await asyncio.gather(*(self._remote(t, r) for t, r in zip(texts, results, strict=True)))
        return [settle(t, r) for t, r in zip(texts, remote, strict=True)]

    async def _remote(self, text: str, r: RiskResult) -> RiskResult:
        for p in self.providers:
            try:
                v = await p.check(text[: self.cfg.max_chars])
            except Exception as e:  # endpoint down, key rejected, garbled reply: visible, never "no risk"
                r = _degrade(r, p.name, e)
                continue
            r = _raise(r, p.name, v.risk, v.categories, v.score)
        if self.llm is None or (r.settled and self.cfg.model_on == "unsettled"):
            return r
        return await self._rubric(text, r)

    async def _rubric(self, text: str, r: RiskResult) -> RiskResult:
        cfg = self.cfg
        try:
            j = await ask_model(text[: cfg.max_chars], self.llm, self.domain)
        except Exception as e:  # any model failure (even budget/endpoint errors) must not break the chat
            return _degrade(r, "model", e)
        level = _model_level(j)
        r = r.model_copy(update={"layers": [*r.layers, "model"], "model_risk": level, "model_confidence": j.confidence})
        if j.confidence < cfg.model_min_confidence:
            return r
        risk = level if cfg.model_can_lower else _max(r.risk, level)
        cats = list(r.categories) + [c for c in j.categories if c not in r.categories]
        if RISK_ORDER[risk] > 0 and not cats:
            cats = ["suicide"] if (j.wish_to_be_dead or j.active_ideation) else []
        ev = list(r.evidence)
        if j.evidence.strip() and j.evidence.strip().lower() in text.lower():  # only spans really in the text
            ev.append(j.evidence.strip())
        source = r.source if r.source == "degraded" else "model"
        if source == "degraded" and risk == "none":
            risk = "low"  # another layer failed: even a confident "none" cannot clear the turn
        return r.model_copy(update={"risk": risk, "categories": cats if RISK_ORDER[risk] else [], "evidence": ev,
                                    "source": source, "settled": True})

    async def screen_session(self, session: Session) -> RiskResult:
        """A person's risk: every user turn through every layer, the maximum over them, with the policy's action."""
        idx = [i for i, m in enumerate(session.messages) if m.role == "user"]
        texts = [session.messages[i].content for i in idx]
        return merge_turns(idx, await self.screen_many(texts), self.cfg, [clean(t) for t in texts])


def merge_turns(idx: list[int], results: list[RiskResult], cfg: SafetyConfig | None = None,
                texts: list[str] | None = None) -> RiskResult:
    """The highest risk over turns, with all categories, evidence, layers, `turns` (the flagged indexes),
    and the policy's verdict on the session (policy.session_action): `action` (none, check_in or
    crisis_reply) and `action_turns` (index -> action, for the turns with one)."""
    from .policy import ACTION_ORDER, transcript_actions

    acts = transcript_actions(texts or [""] * len(results), results, cfg or SafetyConfig())
    risk, cats, ev, turns, settled, layers, scores, degraded = "none", [], [], [], True, [], {}, []
    for i, r in zip(idx, results, strict=True):
        settled = settled and r.settled
        layers += [x for x in r.layers if x not in layers]
        for k, v in r.scores.items():
            scores[k] = max(scores.get(k, v), v)
        if r.source == "degraded":
            degraded.append(i)
        if r.risk != "none":
            turns.append(i)
            risk = _max(risk, r.risk)
            cats += [c for c in r.categories if c not in cats]
            ev += [e for e in r.evidence if e not in ev]
    top = max(results, key=lambda r: RISK_ORDER[r.risk], default=None)
    source = "degraded" if degraded else (top.source if top is not None and risk != "none" else "rules")
    action_turns = {i: a for i, a in zip(idx, acts, strict=True) if a != "none"}
    action = max(acts, key=ACTION_ORDER.__getitem__, default="none")
    return RiskResult(risk=risk, categories=cats, evidence=ev[:10], source=source, settled=settled, turns=turns,
                      layers=layers, scores=scores, action=action, action_turns=action_turns,
                      **({"degraded_turns": degraded} if degraded else {}))


def build_screener(cfg: ExperimentConfig, pool: LLMPool | None = None, domain: Domain | None = None) -> Screener:
    """The layered screen an experiment config asks for: rubric from `pool` when `safety.use_model`."""
    from .providers import provider_layers

    s = cfg.safety
    llm = None
    if s.use_model:
        if s.model_role not in cfg.roles:
            raise UserError(f"safety.model_role: '{s.model_role}' is not a role; use one of {', '.join(cfg.roles)}")
        llm = pool.role(s.model_role) if pool is not None else None
    return Screener(s, llm, domain, provider_layers(cfg))


async def screen(
    text: str, llm: LLM | None = None, cfg: SafetyConfig | None = None, domain: Domain | None = None,
    providers: list | tuple = (),
) -> RiskResult:
    """Layered screen of one text (a one-off `Screener`). Never raises on str input."""
    return await Screener(cfg, llm, domain, providers).screen(text)


def screen_session(session: Session, cfg: SafetyConfig | None = None) -> RiskResult:
    """The CPU layers (rules + learned) over a session's user turns, synchronously; the maximum over them.

    Returns the highest risk over the turns, with all categories and evidence, plus
    `turns`: the message indexes that were flagged (risk above none).
    """
    idx = [i for i, m in enumerate(session.messages) if m.role == "user"]
    texts = [clean(session.messages[i].content) for i in idx]
    return merge_turns(idx, Screener(cfg).cpu(texts), cfg, texts)
