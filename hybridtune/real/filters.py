"""Quality filters on cleaned sessions: each returns a reason string when the session is dropped.

Input: `Message`s of one session and `real.filters`. Output: None (keep) or a short reason
like "too_few_turns: 3 < 4". The stage counts reasons and quarantines the dropped sessions.

    reason = first_failure(messages, cfg.real.filters)
"""
from __future__ import annotations

import re
from collections.abc import Callable

from ..records import Message
from .config import FilterConfig

_TEXTY = re.compile(r"[\w\s.,;:!?'\"()\-…’“”]")


def too_few_turns(msgs: list[Message], cfg: FilterConfig) -> str | None:
    n = len(msgs)
    return f"too_few_turns: {n} < {cfg.min_turns}" if n < cfg.min_turns else None


def one_sided(msgs: list[Message], cfg: FilterConfig) -> str | None:
    for role, who in (("assistant", "counselor"), ("user", "client")):
        turns = [m.content for m in msgs if m.role == role]
        if len(turns) < cfg.min_turns_per_role:
            return f"one_sided: {len(turns)} {who} turns < {cfg.min_turns_per_role}"
    words = {r: sum(len(m.content.split()) for m in msgs if m.role == r) for r in ("assistant", "user")}
    total = max(sum(words.values()), 1)
    low = min(words, key=words.get)
    if words[low] / total < cfg.min_side_share:
        return f"one_sided: {'counselor' if low == 'assistant' else 'client'} has {words[low] / total:.0%} of the words"
    return None


def garbage(msgs: list[Message], cfg: FilterConfig) -> str | None:
    text = "".join(m.content for m in msgs)
    if not text:
        return "garbage: no text"
    ratio = 1 - len(_TEXTY.findall(text)) / len(text)
    return f"garbage: {ratio:.0%} non-text characters" if ratio > cfg.max_garbage_ratio else None


def language(msgs: list[Message], cfg: FilterConfig) -> str | None:
    if not cfg.languages:
        return None
    from langdetect import DetectorFactory, LangDetectException, detect

    DetectorFactory.seed = 0  # langdetect is random without a seed
    sample = " ".join(m.content for m in msgs)[:3000]
    try:
        lang = detect(sample)
    except LangDetectException:
        return "non_english: language not detectable"
    return f"non_english: detected '{lang}'" if lang not in cfg.languages else None


def short_counselor_turns(msgs: list[Message], cfg: FilterConfig) -> str | None:
    turns = [len(m.content.split()) for m in msgs if m.role == "assistant"]
    if not turns:
        return None
    mean = sum(turns) / len(turns)
    return f"short_counselor_turns: {mean:.1f} words on average < {cfg.min_counselor_words}" if mean < cfg.min_counselor_words else None


FILTERS: list[Callable[[list[Message], FilterConfig], str | None]] = [
    too_few_turns, one_sided, garbage, language, short_counselor_turns,
]


def first_failure(msgs: list[Message], cfg: FilterConfig) -> str | None:
    """The reason of the first filter that drops the session (cheap filters run first)."""
    for f in FILTERS:
        reason = f(msgs, cfg)
        if reason:
            return reason
    return None
