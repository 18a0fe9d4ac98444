"""The screen's model step and a chat turn on the real embedded model (SmolLM2-135M in
llama.cpp), sharing one loaded model. A 135M model's verdicts are noise, so these check the
real path (rubric prompt, schema-constrained JSON, merge rules, streaming), not its judgement."""
from __future__ import annotations

import asyncio
import time

import pytest

from hybridtune.app.engine import open_engine
from hybridtune.config import load_config
from hybridtune.llm import LLMPool
from hybridtune.safety.rules import RISK_ORDER
from hybridtune.safety.screen import screen

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    return load_config(None, [f"runs_dir={tmp_path_factory.mktemp('runs')}", "quiet=true", "endpoints.local.n_ctx=1024",
                              "roles.judge.max_tokens=100", "roles.counselor.max_tokens=16", "llm.max_reasks=0",
                              "llm.cache=false"])


@pytest.fixture(scope="module")
def pool(cfg):
    p = LLMPool(cfg.pool_config())
    yield p
    asyncio.run(p.aclose())


def test_screen_with_embedded_model(pool, cfg):
    judge = pool.role("judge")
    text = "Sometimes I wish I could fall asleep and not wake up."  # rules: low, unsettled -> the model is asked
    t0 = time.perf_counter()
    r = asyncio.run(screen(text, llm=judge, cfg=cfg.safety.model_copy(update={"use_model": True, "learned": False})))
    assert time.perf_counter() - t0 < 120
    assert judge.backend.calls == 1 or r.source == "degraded"
    assert RISK_ORDER[r.risk] >= RISK_ORDER["low"]  # the model may raise the rules' level, never lower it
    if r.source == "model":
        assert r.model_extra["model_confidence"] >= cfg.safety.model_min_confidence
    elif r.source == "rules":  # a verdict below the confidence threshold is kept for the record, not used
        assert r.model_extra["model_confidence"] < cfg.safety.model_min_confidence
    else:
        assert r.source == "degraded" and "error" in r.model_extra


def test_chat_turn_streams_from_embedded_model(pool, cfg):
    cfg = cfg.model_copy(update={"safety": cfg.safety.model_copy(update={"use_model": False, "learned": False})})
    eng = open_engine(cfg, pool=pool)
    evs = asyncio.run(_collect(eng, "I have trouble sleeping before exams."))
    tokens = [e.text for e in evs if e.type == "token"]
    assert len(tokens) >= 2 and "".join(tokens).strip() and evs[-1].type == "done"
    assert eng.messages[-1].role == "assistant" and eng.messages[-1].content == "".join(tokens).strip()


async def _collect(eng, text):
    return [e async for e in eng.turn(text)]
