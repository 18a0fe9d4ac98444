"""Cleaning of raw turns: encoding damage (ftfy), caption artifacts, timestamps, fillers,
stutters, whitespace; then merging of consecutive same-speaker turns.

Input: a `RawSession` with roles assigned. Output: a list of `Message` (role, content),
empty turns dropped. Pure functions; the patterns come from `real.clean` in the config.

    msgs = clean_turns(raw.turns, cfg.real.clean)
"""
from __future__ import annotations

import re
from functools import lru_cache

import ftfy

from ..records import Message
from .config import CleanConfig
from .raw import RawTurn

TIMESTAMP_RE = re.compile(r"[\[(]?\b\d{1,2}:\d{2}(?::\d{2})?(?:[.,]\d{1,3})?\b[\])]?(?=\s|$)")
MARK_RE = re.compile(r">>|<<[^>]*>>|</?[a-z][^>]{0,30}>")
REPEAT_RE = re.compile(r"\b(\w+)(?:[\s,]+\1\b)+", re.I)
# bidi embeddings/overrides/isolates and marks, zero-width spaces/joiners, word joiner, BOM: invisible
# characters that can make text read differently from what it is ("\u202etnemtaert pots" shows as
# "stop treatment"); nothing in a transcript needs them
INVISIBLE_RE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")


def strip_invisible(text: str) -> str:
    return INVISIBLE_RE.sub("", text)


@lru_cache(maxsize=16)
def _compiled(artifacts: tuple[str, ...], fillers: tuple[str, ...]) -> tuple[re.Pattern, re.Pattern | None]:
    art = re.compile("|".join(f"(?:{a})" for a in artifacts), re.I) if artifacts else re.compile(r"(?!x)x")
    fill = None
    if fillers:
        words = "|".join(re.escape(f) for f in sorted(fillers, key=len, reverse=True))
        # a filler with the comma/ellipsis that usually follows it: "um, I think" -> "I think"
        fill = re.compile(rf"(?:,\s*)?(?<![\w'-])(?:{words})(?![\w'-])[,.…]*\s*", re.I)
    return art, fill


def clean_text(text: str, cfg: CleanConfig) -> str:
    text = strip_invisible(text)
    if cfg.fix_encoding:
        text = ftfy.fix_text(text)
    art, fill = _compiled(tuple(cfg.artifacts), tuple(cfg.fillers) if cfg.remove_fillers else ())
    text = MARK_RE.sub(" ", art.sub(" ", text))
    text = TIMESTAMP_RE.sub(" ", text)
    if fill is not None:
        text = fill.sub(" ", text)
        text = re.sub(r"([.!?]\s+)([a-z])", lambda m: m.group(1) + m.group(2).upper(), text)
    if cfg.remove_repeats:
        # only short function-word stutters; "very very" or "no no" can carry meaning but rarely matter for training
        text = REPEAT_RE.sub(lambda m: m.group(1), text)
    text = re.sub(r"\s+([,.?!;:])", r"\1", text)
    text = re.sub(r"([,;:])(?:\s*[,;:])+", r"\1", text)
    text = re.sub(r"\s+", " ", text).strip(" ,;")
    if text and text[0].islower() and cfg.remove_fillers:
        text = text[0].upper() + text[1:]  # after dropping a leading filler
    return text


def clean_turns(turns: list[RawTurn], cfg: CleanConfig) -> list[RawTurn]:
    """The turns with cleaned text; turns left empty are dropped."""
    out = []
    for t in turns:
        text = clean_text(t.text, cfg)
        if text and re.search(r"\w", text):
            t.text = text
            out.append(t)
    return out


def merge_turns(turns: list[RawTurn]) -> list[Message]:
    """Messages with consecutive same-speaker turns merged; a turn without a role continues the previous one."""
    out: list[Message] = []
    for t in turns:
        role = t.role or (out[-1].role if out else "user")
        if out and out[-1].role == role:
            out[-1] = Message(role=role, content=f"{out[-1].content} {t.text}")
        else:
            out.append(Message(role=role, content=t.text))
    return out
