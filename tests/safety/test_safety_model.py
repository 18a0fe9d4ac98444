"""The screen's model step and a chat turn on the real embedded model (SmolLM2-135M in
llama.cpp). A 135M model's verdicts are noise, so these check the real path (rubric prompt,
schema-constrained JSON, merge rules, streaming), not its judgement."""
from __future__ import annotations

import asyncio
import time

import pytest

from hybridtune.app.engine import open_engine
from hybridtune.llm import LLMPool
from hybridtune.safety.rules import RISK_ORDER
from hybridtune.safety.screen import screen

pytestmark = pytest.mark.model


def test_screen_with_embedded_model(make_cfg):
    cfg = make_cfg("roles.judge.max_tokens=120", "endpoints.local.n_ctx=1024", "llm.max_reasks=0", backend="llamacpp")
    pool = LLMPool(cfg)
    judge = pool.role("judge")
    text = "Sometimes I wish I could fall asleep and not wake up."  # rules: low, unsettled -> the model is asked
    t0 = time.perf_counter()
    r = asyncio.run(screen(text, llm=judge, cfg=cfg.safety))
    took = time.perf_counter() - t0
    assert judge.backend.calls == 1 or r.source == "degraded"
    assert r.source in ("model", "rules", "degraded") and took < 120
    assert RISK_ORDER[r.risk] >= RISK_ORDER["low"]  # the model may raise the rules' level, never lower it
    if r.source == "model":
        assert r.model_extra["model_confidence"] >= cfg.safety.model_min_confidence
    else:
        assert "model_risk" in r.model_extra or "error" in r.model_extra
    asyncio.run(pool.aclose())


def test_chat_turn_streams_from_embedded_model(make_cfg):
    cfg = make_cfg("roles.counselor.max_tokens=16", "endpoints.local.n_ctx=1024", "safety.use_model=false",
                   backend="llamacpp")
    eng = open_engine(cfg)
    evs = asyncio.run(_collect(eng, "I have trouble sleeping before exams."))
    tokens = [e.text for e in evs if e.type == "token"]
    assert len(tokens) >= 2 and "".join(tokens).strip() and evs[-1].type == "done"
    assert eng.messages[-1].role == "assistant" and eng.messages[-1].content == "".join(tokens).strip()
    asyncio.run(eng.counselor.pool.aclose())


async def _collect(eng, text):
    return [e async for e in eng.turn(text)]
