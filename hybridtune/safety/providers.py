"""Optional provider safety layers of the crisis screen: OpenAI moderation and a guard model.

Input: one text. Output: `ProviderVerdict` (layer name, risk none|high|imminent, the score the
threshold was applied to, categories). A failing call raises; `screen.Screener` turns that
into `source="degraded"`, never into "no risk".

- `ModerationLayer`: OpenAI's `/v1/moderations` (model `safety.moderation_model`), self-harm
  categories only: high when max(self-harm, self-harm/intent) >= `safety.moderation_high`,
  imminent when self-harm/intent >= `safety.moderation_imminent`. On when an OpenAI key is
  configured (`safety.moderation: auto`, see `provider_layers`), or forced with `on`.
- `GuardLayer`: a Llama Guard style model served by vLLM at `safety.guard_endpoint` (an
  OpenAI-compatible chat endpoint; its chat template builds the guard prompt). The reply is
  "safe" or "unsafe" plus category codes; self-harm is S11 (Llama Guard 3/4 taxonomy). The
  score is P(first token is not "safe") from the returned logprobs, or 0/1 without them;
  high when the score >= `safety.guard_high` and S11 is named.

    layers = provider_layers(cfg)                 # from the experiment config (endpoints + safety)
    verdict = await layers[0].check("I want to end it all")
"""
from __future__ import annotations

import asyncio
import math
import os
import re
from typing import TYPE_CHECKING

from pydantic import BaseModel

from ..errors import UserError
from ..llm.base import TransientError

if TYPE_CHECKING:
    from ..config import ExperimentConfig
    from ..llm.config import EndpointConfig
    from .config import SafetyConfig

OPENAI_HOST = "api.openai.com"
SELF_HARM_CODES = ("S11",)  # Llama Guard 3 and 4: S11 Self-Harm


class ProviderVerdict(BaseModel):
    layer: str
    risk: str  # none | high | imminent
    score: float
    categories: list[str] = []


def _backend(ep: EndpointConfig, name: str):
    from ..llm.openai_backend import OpenAIBackend

    return OpenAIBackend(ep, name)


async def _call_once_more(backend, fn):
    """One call, retried once after a transient failure (429/5xx/timeout); other errors raise."""
    try:
        return await backend._call(fn)
    except TransientError as e:
        await asyncio.sleep(min(e.retry_after or 0.5, 2.0))
        return await backend._call(fn)


class ModerationLayer:
    name = "moderation"

    def __init__(self, ep: EndpointConfig, endpoint_name: str, cfg: SafetyConfig):
        self.backend, self.cfg = _backend(ep, endpoint_name), cfg

    async def check(self, text: str) -> ProviderVerdict:
        resp = await _call_once_more(self.backend, lambda c: c.moderations.create(
            model=self.cfg.moderation_model, input=text))
        scores = resp.results[0].category_scores.model_dump(by_alias=True)
        s_any = max(float(scores.get("self-harm") or 0), float(scores.get("self-harm/intent") or 0))
        s_intent = float(scores.get("self-harm/intent") or 0)
        risk = "none"
        if s_any >= self.cfg.moderation_high:
            risk = "imminent" if s_intent >= self.cfg.moderation_imminent else "high"
        return ProviderVerdict(layer=self.name, risk=risk, score=round(s_any, 4),
                               categories=["suicide"] if risk != "none" else [])


_CODES = re.compile(r"\bS\d{1,2}\b")


class GuardLayer:
    name = "guard"

    def __init__(self, ep: EndpointConfig, endpoint_name: str, cfg: SafetyConfig):
        self.backend, self.cfg = _backend(ep, endpoint_name), cfg
        self.model = cfg.guard_model or ep.model

    async def check(self, text: str) -> ProviderVerdict:
        resp = await _call_once_more(self.backend, lambda c: c.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": text}], temperature=0.0, max_tokens=12,
            logprobs=True, top_logprobs=5))
        choice = resp.choices[0]
        reply = (choice.message.content or "").strip()
        if not reply or not reply.lower().startswith(("safe", "unsafe")):
            raise ValueError(f"guard model answered {reply[:40]!r}, not 'safe'/'unsafe'; is {self.model} a guard model?")
        unsafe = reply.lower().startswith("unsafe")
        score = 1.0 if unsafe else 0.0
        content = (choice.logprobs.content or []) if choice.logprobs else []
        if content and content[0].top_logprobs:  # P(not "safe") on the first token: a threshold can be set on it
            p_safe = sum(math.exp(t.logprob) for t in content[0].top_logprobs if t.token.strip().lower() == "safe")
            score = max(0.0, min(1.0, 1.0 - p_safe))
        codes = _CODES.findall(reply)
        self_harm = any(c in SELF_HARM_CODES for c in codes)
        risk = "high" if score >= self.cfg.guard_high and (self_harm or (unsafe and not codes)) else "none"
        return ProviderVerdict(layer=self.name, risk=risk, score=round(score, 4), categories=["suicide"] if risk != "none" else [])


def moderation_endpoint(cfg: ExperimentConfig) -> str | None:
    """The endpoint the moderation layer uses: `safety.moderation_endpoint`, or with `auto` the first
    endpoint at api.openai.com whose key is set in the environment."""
    s = cfg.safety
    if s.moderation == "off":
        return None
    if s.moderation_endpoint:
        if s.moderation_endpoint not in cfg.endpoints:
            raise UserError(f"safety.moderation_endpoint: '{s.moderation_endpoint}' is not an endpoint; "
                            f"use one of {', '.join(cfg.endpoints)}")
        return s.moderation_endpoint
    for name, ep in cfg.endpoints.items():
        urls = [ep.base_url] if isinstance(ep.base_url, str) else list(ep.base_url or [])
        if ep.backend == "openai" and any(OPENAI_HOST in u for u in urls) and ep.api_key_env and os.environ.get(ep.api_key_env):
            return name
    if s.moderation == "on":
        raise UserError("safety.moderation: on, but no endpoint at api.openai.com has its key set; "
                        "set safety.moderation_endpoint or export the key, or use moderation: auto")
    return None


def provider_layers(cfg: ExperimentConfig) -> list:
    """The provider layers this experiment config turns on (possibly none)."""
    out: list = []
    name = moderation_endpoint(cfg)
    if name:
        out.append(ModerationLayer(cfg.endpoints[name], name, cfg.safety))
    g = cfg.safety.guard_endpoint
    if g:
        if g not in cfg.endpoints:
            raise UserError(f"safety.guard_endpoint: '{g}' is not an endpoint; use one of {', '.join(cfg.endpoints)}")
        out.append(GuardLayer(cfg.endpoints[g], g, cfg.safety))
    return out
