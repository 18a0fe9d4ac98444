"""Provider layers against the project's mock OpenAI/vLLM server (hybridtune.devtools.mock_openai):
OpenAI moderation (self-harm scores, thresholds, auto-on with a key, errors -> degraded) and a
Llama Guard style model (reply + first-token logprobs)."""
from __future__ import annotations

import asyncio

import httpx
import pytest

from hybridtune.devtools.mock_openai import MockConfig, MockServer
from hybridtune.errors import UserError
from hybridtune.safety.providers import moderation_endpoint, provider_layers
from hybridtune.safety.screen import build_screener

# the rules read this as a negated cue ("none"); the mock's word list scores "suicid" 0.88 self-harm
TEXT = "I'm not suicidal, I just can't keep going like this"


@pytest.fixture(scope="module")
def mock():
    with MockServer() as url:
        yield url


def _cfg(make_cfg, url, *sets):
    return make_cfg("endpoints.mod.backend=openai", f"endpoints.mod.base_url={url}", "endpoints.mod.model=mock",
                    "safety.learned=false", *sets)


def test_mock_moderations_answers_like_openai(mock):
    r = httpx.post(f"{mock}/moderations", json={"model": "omni-moderation-latest", "input": ["I want to kill myself", "hi"]})
    assert r.status_code == 200
    res = r.json()["results"]
    assert len(res) == 2 and res[0]["flagged"] and res[0]["categories"]["self-harm/intent"]
    assert set(res[1]["category_scores"]) >= {"self-harm", "self-harm/intent", "self-harm/instructions", "violence"}
    assert not res[1]["flagged"]
    bad = httpx.post(f"{mock}/moderations", json={"model": "omni-moderation-latest"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"


def test_moderation_layer_raises_what_the_rules_let_pass(make_cfg, mock):
    cfg = _cfg(make_cfg, mock, "safety.moderation_endpoint=mod")
    r = asyncio.run(build_screener(cfg).screen(TEXT))
    assert r.layers == ["rules", "moderation"] and r.scores["moderation"] == pytest.approx(0.88)
    assert r.risk == "high" and r.source == "moderation" and r.categories == ["suicide"]
    strict = _cfg(make_cfg, mock, "safety.moderation_endpoint=mod", "safety.moderation_high=0.95")
    assert asyncio.run(build_screener(strict).screen(TEXT)).risk == "none"
    calm = asyncio.run(build_screener(cfg).screen("We talked about my sleep schedule."))
    assert calm.risk == "none" and calm.source == "rules" and "moderation" in calm.layers


def test_moderation_is_auto_on_only_with_an_openai_key(make_cfg, monkeypatch):
    sets = ["endpoints.oa.backend=openai", "endpoints.oa.base_url=https://api.openai.com/v1",
            "endpoints.oa.api_key_env=HT_TEST_OPENAI_KEY"]
    monkeypatch.delenv("HT_TEST_OPENAI_KEY", raising=False)
    assert moderation_endpoint(make_cfg(*sets)) is None
    with pytest.raises(UserError, match="moderation: on"):
        moderation_endpoint(make_cfg(*sets, "safety.moderation=on"))
    monkeypatch.setenv("HT_TEST_OPENAI_KEY", "sk-test-not-a-real-key")
    assert moderation_endpoint(make_cfg(*sets)) == "oa"
    assert moderation_endpoint(make_cfg(*sets, "safety.moderation=off")) is None
    with pytest.raises(UserError, match="not an endpoint"):
        provider_layers(make_cfg("safety.moderation_endpoint=nope"))


def test_failing_moderation_is_degraded_never_none(make_cfg):
    with MockServer(MockConfig(fault_rate=1.0, faults=("500",))) as url:
        cfg = _cfg(make_cfg, url, "safety.moderation_endpoint=mod", "endpoints.mod.timeout_s=5")
        r = asyncio.run(build_screener(cfg).screen("We talked about my sleep schedule."))
    assert r.source == "degraded" and r.risk == "low" and r.model_extra["degraded"] == ["moderation"]
    assert "moderation" in r.model_extra["error"]


def test_guard_layer_reads_llama_guard_replies(make_cfg, mock):
    cfg = _cfg(make_cfg, mock, "safety.moderation=off", "safety.guard_endpoint=mod",
               "safety.guard_model=llama-guard-3-8b")
    s = build_screener(cfg)
    r = asyncio.run(s.screen(TEXT))
    assert r.layers == ["rules", "guard"] and r.risk == "high" and r.source == "guard"
    assert r.scores["guard"] == pytest.approx(0.88, abs=1e-3)  # 1 - P("safe") from the first token's logprobs
    assert asyncio.run(s.screen("My sister visited on Sunday.")).risk == "none"
    not_guard = _cfg(make_cfg, mock, "safety.moderation=off", "safety.guard_endpoint=mod")  # a chat model, not a guard
    r = asyncio.run(build_screener(not_guard).screen(TEXT))
    assert r.source == "degraded" and "not 'safe'/'unsafe'" in r.model_extra["error"]
