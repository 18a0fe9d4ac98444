"""The rubric layer of the screen with the fake backend (learned layer off, to isolate it): the
model only sees what the rules cannot settle, confidence threshold, escalate-only merge, and
the degraded path when the model fails."""
from __future__ import annotations

import asyncio
import json
import logging

import pytest

from hybridtune.llm import LLMPool
from hybridtune.llm.fake import FakeBackend
from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.screen import BadText, screen, validate_text

RUBRIC = SafetyConfig(use_model=True, learned=False)


def rubric(**kw) -> SafetyConfig:
    return RUBRIC.model_copy(update=kw)


def _judge(make_cfg, *replies):
    cfg = make_cfg("llm.max_reasks=0")
    pool = LLMPool(cfg.pool_config())
    fake = FakeBackend.with_replies(list(replies))
    pool.install("local", fake)
    return pool.role("judge"), fake


def verdict(risk, conf=0.9, cats=("suicide",), evidence="", **items):
    return json.dumps({"risk": risk, "confidence": conf, "categories": list(cats), "evidence": evidence, **items})


def test_settled_text_never_calls_the_model(make_cfg):
    llm, fake = _judge(make_cfg)
    for text in ("I want to kill myself", "My week was fine, a bit busy."):
        r = asyncio.run(screen(text, llm=llm, cfg=RUBRIC))
        assert r.source == "rules"
    assert fake.calls == 0


def test_model_settles_what_rules_cannot(make_cfg):
    text = "I gave my cat to my sister. I won't need anything after I die."
    llm, fake = _judge(make_cfg, verdict("high", evidence="won't need anything after I die"))
    r = asyncio.run(screen(text, llm=llm, cfg=RUBRIC))
    assert fake.calls == 1 and r.source == "model" and r.risk == "high" and r.categories == ["suicide"]
    assert "won't need anything after I die" in r.evidence
    assert text in fake.requests[0].messages[-1]["content"]  # the rubric prompt carries the text


def test_model_on_all_screens_cue_free_indirect_turns(make_cfg):
    text = "I gave my cat to my sister. I won't be needing anything after Friday."
    llm, fake = _judge(make_cfg, verdict("high"))
    assert asyncio.run(screen(text, llm=llm, cfg=RUBRIC)).risk == "none" and fake.calls == 0  # no cue: rules settle it
    r = asyncio.run(screen(text, llm=llm, cfg=rubric(model_on="all")))
    assert fake.calls == 1 and r.risk == "high" and r.source == "model"


def test_cssrs_items_raise_the_model_level(make_cfg):
    llm, _ = _judge(make_cfg, verdict("low", active_ideation=True, plan_or_intent=True))
    r = asyncio.run(screen("I'm hopeless and I know how I'd do it", llm=llm, cfg=RUBRIC))
    assert r.risk == "imminent"


def test_low_confidence_model_verdict_is_ignored(make_cfg):
    llm, _ = _judge(make_cfg, verdict("imminent", conf=0.2))
    r = asyncio.run(screen("I'm not suicidal", llm=llm, cfg=rubric(model_min_confidence=0.6)))
    assert r.risk == "none" and r.source == "rules" and r.model_extra["model_risk"] == "imminent"


def test_model_cannot_lower_the_rules_unless_configured(make_cfg):
    llm, _ = _judge(make_cfg, verdict("none", cats=()), verdict("none", cats=()))
    text = "Sometimes I wish I could fall asleep and not wake up"
    assert asyncio.run(screen(text, llm=llm, cfg=RUBRIC)).risk == "low"
    assert asyncio.run(screen(text, llm=llm, cfg=rubric(model_can_lower=True))).risk == "none"


def test_hallucinated_evidence_is_dropped(make_cfg):
    llm, _ = _judge(make_cfg, verdict("high", evidence="I bought a gun"))
    r = asyncio.run(screen("I feel hopeless", llm=llm, cfg=RUBRIC))
    assert r.risk == "high" and "I bought a gun" not in r.evidence


@pytest.mark.parametrize("failure", [RuntimeError("endpoint down"), "this is not json at all"])
def test_model_failure_degrades_to_rules_never_silently_none(make_cfg, caplog, failure):
    llm, fake = _judge(make_cfg, failure)
    with caplog.at_level(logging.WARNING, logger="hybridtune.safety"):
        r = asyncio.run(screen("I'm not suicidal, I just feel hopeless", llm=llm, cfg=RUBRIC))
    assert fake.requests and r.source == "degraded" and r.risk == "low" and not r.settled
    assert "error" in r.model_extra and "degraded" in caplog.text
    # a rules-level crisis stays a crisis when the model fails
    llm2, _ = _judge(make_cfg, RuntimeError("down"))
    r2 = asyncio.run(screen("I've been looking up painless ways to die, I'm not okay", llm=llm2, cfg=RUBRIC))
    assert r2.risk in ("high", "imminent")


def test_use_model_false_or_no_llm_is_rules_only(make_cfg):
    llm, fake = _judge(make_cfg)
    r = asyncio.run(screen("I'm not suicidal", llm=llm, cfg=SafetyConfig(use_model=False, learned=False)))
    assert r.source == "rules" and fake.calls == 0 and r.layers == ["rules"]
    r = asyncio.run(screen("I'm not suicidal", llm=llm))  # the default: rubric off (the embedded model is noise)
    assert fake.calls == 0 and "model" not in r.layers


@pytest.mark.parametrize("bad,msg", [("", "empty"), ("   \n", "empty"), ("x" * 5000, "max_chars"),
                                     (b"bytes", "string"), (None, "string"), ("a\x00b", "binary")])
def test_bad_text_is_rejected_with_a_clear_message(bad, msg):
    with pytest.raises(BadText, match=msg):
        validate_text(bad, 4000)


@pytest.mark.parametrize("answer,risk", [("yes", "high"), ("Yeah.", "high"), ("kind of", "high"),
                                         ("I do not feel safe", "high"), ("I am safe", "none"),
                                         ("no, I'm safe", "none"), ("yes, I'm safe now", "none"), ("no", "none")])
def test_follow_up_reads_answers_to_the_safety_question(answer, risk):
    from hybridtune.safety.rules import rule_screen
    from hybridtune.safety.screen import follow_up

    prev = rule_screen("I want to kill myself")
    assert follow_up(prev, answer, rule_screen(answer)).risk == risk
    assert follow_up(rule_screen("I slept badly"), answer, rule_screen(answer)).risk == "none"
