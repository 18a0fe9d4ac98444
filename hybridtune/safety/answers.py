"""Reading a person's answer to a safety question: `affirmative(text, question)` (a yes to the safe
response's "Are you safe right now?" or to the check-in question) and `follow_up` (a short yes
carries the previous turn's crisis over). Used by the screen and by the policy, so it imports
neither.

    affirmative("yeah, I have", "check_in")          # True
    follow_up(previous_result, "yes", this_result)  # the previous crisis level, carried over
"""
from __future__ import annotations

import re

from .normalize import clean
from .rules import RISK_ORDER, RiskResult

_AFFIRM = re.compile(
    r"^\W*(?:yes|yeah|yep|yup|maybe|kind of|kinda|sort of|i think so|probably|i guess|sometimes|a little|a bit|"
    r"honestly,? yes)\b(?!,? (?:i'?m|i am) (?:safe|fine|ok|okay))|^\W*(?:i am|i do|i have|i was)\W*$|\bnot (?:feel(?:ing)? )?safe\b|"
    r"^\W*(?:no|not really),? i'?m not(?: safe)?\W*$", re.I)


# A yes to the check-in ("Are you having thoughts of ending your life?"); unlike an answer to "Are you
# safe?", "no, I'm not" denies. Strict on purpose: after the question, a turn is a yes only when it is the
# answer and nothing else (a bare "yes", "yeah I have", "I do, every night", "kind of") or an affirmative
# about the question itself ("yeah, I've been thinking about ending it"). "Yeah. I mean, alcohol is..." or
# "mm-hmm" is a turn about something else or a back-channel: not a yes (if the screen flags it, the policy's
# second-flag rule still gives the crisis reply).
_YES_WORD = r"(?:yes|yeah|yep|yup|ya|yea|yeh|honestly|to be honest|truthfully)"
_YES_PART = (r"(?:" + _YES_WORD + r"|maybe|kind of|kinda|sort of|i think so|i think|probably|i guess|i suppose|"
             r"sometimes|a little|a bit|a lot|i do|i am|i have|i have been|i've been|i was|i did|i had|lately|recently|"
             r"often|constantly|every day|every night|all the time|at times|now and then|on and off|more and more|"
             r"more than before|most days|most nights|again|too|(?:but )?not seriously|i would not|i wouldn'?t|"
             r"(?:do|act on) (?:it|them)|(?:about|of) it|them|those|that)")
_YES_SEP = r"(?:\W+|\W*\b(?:and|but|so|just)\b\W*)"
_YES_ONLY = re.compile(r"^" + _YES_PART + r"(?:" + _YES_SEP + _YES_PART + r")*$", re.I)
# about the question itself: thoughts of dying, ending it, suicide
_YES_TOPIC = re.compile(
    r"\b(?:(?:thinking|thought|think) (?:about|of) (?:it|that|this|dying|death|ending|killing|suicide|"
    r"not being here|taking my|ending it)|(?:those|these|the|such|suicidal) thoughts|"
    r"end(?:ing)? (?:it|it all|my life|things|everything)|kill(?:ing)? myself|suicid\w*|take my (?:own )?life|"
    r"want(?:ed)? to die|wish(?:ed)? i (?:was|were) dead|not (?:want|wanting) to (?:be here|live|wake up)|"
    r"don'?t want to (?:be here|live|wake up)|hurt(?:ing)? myself)\b", re.I)
_YES_START = re.compile(r"^(?:" + _YES_WORD + r"|i do|i have|i(?:'ve| have) been|i am|i'?m|i was|sometimes|"
                        r"lately|often|every day|kind of|sort of|a little|maybe|probably)\b"
                        r"(?!\W*(?:no|nope|not really)\b)", re.I)
_IDIOM = re.compile(r"\bnot (?:going to|gonna) lie\b|\bnot gonna lie\b", re.I)
_NOT = re.compile(r"\b(?:no|nope|not|never|don'?t|do not|didn'?t|haven'?t|wasn'?t|can'?t|cannot)\b", re.I)


def _yes_to_check_in(text: str) -> bool:
    t = re.sub(r"^\W+|\W+$", "", text.lower().replace("’", "'"))
    if _YES_ONLY.match(t):
        return not _NOT.search(t.replace("not seriously", "").replace("wouldn't", "").replace("would not", ""))
    # the topic named, and no negation outside it ("you don't really think about that" is no yes)
    named = bool(_YES_START.match(t) and _YES_TOPIC.search(t))
    return named and not _NOT.search(_YES_TOPIC.sub(" ", _IDIOM.sub(" ", t)))


def affirmative(text: str, question: str = "safe") -> bool:
    """A short answer that says yes to a safety question: to the safe response's "Are you safe right now?"
    (`safe`: "yes", "kind of", "I'm not safe") or to the check-in question (`check_in`: "yes", "sometimes")."""
    if len(text) > 200:
        return False
    text = clean(text).strip()
    return _yes_to_check_in(text) if question == "check_in" else bool(_AFFIRM.search(text))


def follow_up(prev: RiskResult | None, text: str, result: RiskResult) -> RiskResult:
    """Carry a crisis over to a short affirmative answer to the safety question.

    After the safe response asks "Are you safe right now?", "yes"/"kind of"/"I'm not safe"
    says nothing risky on its own; read in context it confirms the risk, so it keeps the
    previous turn's level (never lowers what this turn's screen found).
    """
    if prev is None or not prev.is_crisis or RISK_ORDER[result.risk] >= RISK_ORDER[prev.risk]:
        return result
    if not affirmative(text):
        return result
    return result.model_copy(update={
        "risk": prev.risk, "categories": list(prev.categories), "settled": True,
        "evidence": [*result.evidence, "answer to the safety question: " + text.strip()[:60]], "carried_over": True,
    })
