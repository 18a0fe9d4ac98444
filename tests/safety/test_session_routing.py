"""A recorded session (ingest, curation) is routed by the safety policy's action, on the real screen
(rules + learned layer): only crisis-reply evidence (a rule match, imminence) makes it a crisis session
for review; a turn only the learned layer flags is a check-in, recorded but not flagged."""
from __future__ import annotations

import asyncio

from hybridtune.curate.config import CurateConfig
from hybridtune.curate.judge import crisis_screen
from hybridtune.curate.select import review_reasons
from hybridtune.records import Message, Session
from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.screen import Screener, screen_session

# only the learned layer flags it (no phrase rule, no plan, means or time): the policy's check-in
AMBIGUOUS = "Nobody is going to miss me when I'm gone, and I'm going soon."
RULE = "Sometimes I think I want to kill myself."


def session(*client: str) -> Session:
    msgs = []
    for t in client:
        msgs += [Message(role="assistant", content="How have things been this week?"), Message(role="user", content=t)]
    return Session(id="s", source="real", messages=msgs)


def scored(s: Session) -> Session:
    risk = asyncio.run(crisis_screen(Screener(SafetyConfig()), s))
    return s.model_copy(update={"scores": {"risk": risk}})


def test_a_learned_only_flag_is_a_check_in_and_not_sent_to_review():
    s = scored(session("Work has been busy.", AMBIGUOUS))
    assert s.scores["risk"]["risk"] == "high" and s.scores["risk"]["action"] == "check_in"
    assert review_reasons(s, CurateConfig(), failed=False) == []
    r = screen_session(session("Work has been busy.", AMBIGUOUS))
    assert r.model_extra["action"] == "check_in" and r.model_extra["action_turns"] == {3: "check_in"}


def test_a_rule_match_is_a_crisis_session_sent_to_review():
    s = scored(session(AMBIGUOUS, RULE))
    assert s.scores["risk"]["action"] == "crisis_reply"
    assert review_reasons(s, CurateConfig(), failed=False) == [f"crisis_screen:{s.scores['risk']['risk']}"]


def test_scores_without_an_action_keep_the_level_rule():
    s = session("x").model_copy(update={"scores": {"risk": {"risk": "high"}}})  # written before actions existed
    assert review_reasons(s, CurateConfig(), failed=False) == ["crisis_screen:high"]
