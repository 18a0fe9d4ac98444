"""Why the real stage drops a session (`Drop`, typed by `DropKind`) and the quality filters.

Each filter takes the `Message`s of one session and `real.filters` and returns None (keep) or
a short reason like "too_few_turns: 3 < 4". `first_failure` runs them cheap ones first and
returns the first `Drop`; the stage counts drops by kind and quarantines the dropped sessions.

    drop = first_failure(messages, cfg.real.filters)
    if drop is not None: stats.filters[drop.kind] += 1
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from ..records import Message
from .config import FilterConfig



class DropKind(StrEnum):
    """Why a session was dropped; the value is its key in the summary's `filters` counts."""
    EMPTY = "empty"                              # no text after cleaning
    TURN_TOO_LONG = "turn_too_long"              # over real.filters.max_turn_chars (checked before spaCy)
    ATTRIBUTION_UNSURE = "attribution_unsure"    # caption roles guessed from words, below min_confidence
    TOO_FEW_TURNS = "too_few_turns"
    ONE_SIDED = "one_sided"
    GARBAGE = "garbage"
    NON_ENGLISH = "non_english"
    SHORT_COUNSELOR_TURNS = "short_counselor_turns"
    DUPLICATE = "duplicate"                      # reported in the duplicate clusters, not quarantined
    FAILED = "failed"                            # a library broke on it


# bad input rather than a filter decision: counted in the summary's records_quarantined
BAD_RECORD = frozenset({DropKind.TURN_TOO_LONG, DropKind.FAILED})


@dataclass(frozen=True)
class Drop:
    """A dropped session: its kind and the one-line reason quarantined with it."""
    kind: DropKind
    reason: str

    @property
    def bad_record(self) -> bool:
        return self.kind in BAD_RECORD


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


FILTERS: list[tuple[DropKind, Callable[[list[Message], FilterConfig], str | None]]] = [
    (DropKind.TOO_FEW_TURNS, too_few_turns), (DropKind.ONE_SIDED, one_sided), (DropKind.GARBAGE, garbage),
    (DropKind.NON_ENGLISH, language), (DropKind.SHORT_COUNSELOR_TURNS, short_counselor_turns),
]


def first_failure(msgs: list[Message], cfg: FilterConfig) -> Drop | None:
    """The drop of the first filter that fails the session (cheap filters run first)."""
    for kind, f in FILTERS:
        reason = f(msgs, cfg)
        if reason:
            return Drop(kind, reason)
    return None
