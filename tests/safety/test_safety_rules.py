"""Rule screen: direct, indirect, negated and idiomatic statements per category, and the
labelled set as a regression floor (the full numbers are in bench/safety_screen.py)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from hybridtune.records import Session
from hybridtune.safety.config import SafetyConfig
from hybridtune.safety.rules import RISK_ORDER, rule_screen
from hybridtune.safety.screen import screen_session

DATA = Path(__file__).parent / "data" / "labelled.jsonl"

CASES = [
    # (text, risk, category or None)
    ("I'm going to kill myself tonight.", "imminent", "suicide"),
    ("I have pills saved up and I'm going to take them all tonight", "imminent", "suicide"),
    ("I want to die", "high", "suicide"),
    ("My family would be better off without me.", "high", "suicide"),
    ("I wish I could fall asleep and not wake up", "low", "suicide"),
    ("I'm not suicidal, just exhausted", "none", None),
    ("I would never kill myself, my kids need me", "none", None),
    ("I've been cutting myself to cope", "high", "self_harm"),
    ("I used to cut myself in high school but I stopped", "low", "self_harm"),
    ("I haven't hurt myself in years", "none", None),
    ("I want to kill my ex-husband", "high", "harm_to_others"),
    ("I'm going to kill him tonight when he gets home", "imminent", "harm_to_others"),
    ("I would never hurt my kids", "none", None),
    ("My husband hits me when he drinks", "high", "abuse"),
    ("My husband has never hit me", "none", None),
    ("I have crushing pain in my chest and can't breathe", "imminent", "medical_emergency"),
    ("This commute is killing me", "none", None),
    ("My mom will kill me if I fail", "none", None),
    ("I fell and hurt myself skiing", "none", None),
    ("My friend said she wants to kill herself", "low", "suicide"),
]


@pytest.mark.parametrize("text,risk,cat", CASES)
def test_rule_cases(text, risk, cat):
    r = rule_screen(text)
    assert r.risk == risk, (text, r)
    if cat:
        assert cat in r.categories and r.evidence and all(e in text.lower() for e in r.evidence)
    else:
        assert r.categories == [] or r.risk == "none"


def test_negation_and_cues_leave_it_unsettled_for_the_model():
    assert rule_screen("I'm not suicidal").settled is False
    assert rule_screen("I feel hopeless and I don't know why I bother").settled is False
    assert rule_screen("Work is stressful but manageable").settled is True
    assert rule_screen("I want to kill myself").settled is True


def test_curly_quotes_and_case_are_normalised():
    assert rule_screen("I DON\u2019T WANT TO LIVE ANYMORE").risk == "high"


def test_labelled_set_floor():
    """Recall of high/imminent and false positives on ordinary turns stay at the measured level."""
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    assert len(rows) >= 150
    rows = [r for r in rows if r["split"] != "fresh2"]  # fresh2: never tuned on, measured by bench/safety_screen.py
    pos = [r for r in rows if RISK_ORDER[r["risk"]] >= 2]
    neg = [r for r in rows if r["kind"] in ("ordinary", "idiom", "negated")]
    recall = sum(rule_screen(r["text"]).is_crisis for r in pos) / len(pos)
    fpr = sum(rule_screen(r["text"]).is_crisis for r in neg) / len(neg)
    assert recall >= 0.95 and fpr <= 0.03, (recall, fpr)


def test_screen_session_flags_user_turns_only():
    s = Session(id="s", source="real", messages=[
        {"role": "assistant", "content": "Do you ever think about killing yourself?"},
        {"role": "user", "content": "Sometimes I want to kill myself."},
        {"role": "user", "content": "Work is fine."},
    ])
    r = screen_session(s, SafetyConfig(learned=False))
    assert r.risk == "high" and r.categories == ["suicide"] and r.model_extra["turns"] == [1]
    calm = Session(id="c", source="real", messages=[{"role": "user", "content": "I slept badly."}])
    assert screen_session(calm, SafetyConfig(learned=False)).risk == "none"


def test_rejects_non_str():
    with pytest.raises(AssertionError):
        rule_screen(None)  # type: ignore[arg-type]
