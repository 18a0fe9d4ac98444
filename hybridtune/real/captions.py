"""WebVTT / SRT captions -> speaker turns with attributed roles and a per-session confidence.

Input: caption text as a video platform produces it (timestamps, rolling duplicate lines,
`[Music]`, `>>` speaker-change marks, inline `<00:00:01.000><c>` tags, usually no names).
Output: one `RawSession` whose turns carry `role` and `meta['attribution']`.

With voice tags (`<v Name>`) the names split and label the turns. Otherwise roles come from
the words alone (speakers.py): caption lines are split into units at `>>` marks and sentence
ends, a learned head scores each unit counselor-or-client, and a two-state HMM decodes the
sequence, with marks, line starts and pauses as evidence for a speaker change when present.
Consecutive units of one role become one turn. The confidence (mean posterior of the chosen
roles) sends doubtful sessions to quarantine; the stage may ask the `annotator` about
sessions below `attribution.llm_below` when a strong model is configured
(annotate.attribute_with_llm).
"""
from __future__ import annotations

import math
import re

from .config import AttributionConfig
from .cues import caption_pieces, parse_cues
from .raw import BadInput, RawSession, RawTurn, label_role
from .speakers import Unit, attribute_units, default_head, split_units

CHANGE_RE = re.compile(r"(>>|^- |<<[^>]+>>)")


def rebuild_turns(pieces: list[tuple[float, str, int]], pause_s: float) -> tuple[list[RawTurn], str]:
    """Group caption pieces into turns; returns (turns, how) where how says which cue split them."""
    marks = sum(1 for _, t, _ in pieces if CHANGE_RE.search(t))
    how = "voice" if any("<<" in t for _, t, _ in pieces) else "marks" if marks else "pauses"
    turns: list[RawTurn] = []
    last_t = -1e9
    for start, text, line in pieces:
        parts = re.split(r"(>>|<<[^>]+>>)", text) if how != "pauses" else [text]
        if how == "marks" and text.startswith("- "):
            parts = [">>", text[2:]]
        pending_new = how == "pauses" and start - last_t >= pause_s
        for part in parts:
            if part == ">>" or part.startswith("<<"):
                name = part[2:-2].strip() if part.startswith("<<") else ""
                turns.append(RawTurn(speaker=name, role=label_role(name) if name else None, text="", line=line, start_s=start))
                continue
            part = part.strip()
            if not part:
                continue
            if not turns or pending_new:
                turns.append(RawTurn(speaker="", text="", line=line, start_s=start))
                pending_new = False
            turns[-1].text = (turns[-1].text + " " + part).strip()
        last_t = start
    return [t for t in turns if t.text], how


# cue words: counselors ask, reflect and summarise; clients narrate in the first person
COUNSELOR_CUES = re.compile(
    r"\b(how do you|what do you|how are you|tell me|it sounds like|sounds like|you feel|you're feeling|you said|"
    r"what brings you|can you|could you|would you|do you|are you|what would|how would|let's|we could|"
    r"on a scale|what I'm hearing|so you|you mentioned|you've|your|you)\b", re.I)
CLIENT_CUES = re.compile(r"\b(I|I'm|I've|I'd|my|me|myself|mine)\b")


def counselor_score(text: str) -> float:
    """Positive when the turn sounds like the counselor, negative like the client (per-word rate)."""
    words = max(len(text.split()), 1)
    c = len(COUNSELOR_CUES.findall(text)) + 1.5 * text.count("?")
    p = len(CLIENT_CUES.findall(text))
    return (c - p) / math.sqrt(words)


def attribute_named(turns: list[RawTurn]) -> float:
    """Voice-tagged turns: a name with a known role keeps it; the others are decoded from their words."""
    named = {t.speaker: t.role for t in turns if t.speaker and t.role}
    for t in turns:
        if t.role is None and t.speaker in named:
            t.role = named[t.speaker]
    unknown = [t for t in turns if t.role is None]
    if not unknown:
        return 1.0
    units = [Unit(text=t.text, line=t.line, start_s=t.start_s or 0.0, mark=True) for t in unknown]
    conf = attribute_units(units)
    for t, u in zip(unknown, units, strict=True):
        t.role = u.role
    return conf


def units_to_turns(units: list[Unit]) -> list[RawTurn]:
    """Consecutive units of one role -> one turn."""
    turns: list[RawTurn] = []
    for u in units:
        if turns and turns[-1].role == u.role:
            turns[-1].text = f"{turns[-1].text} {u.text}"
        else:
            turns.append(RawTurn(speaker="", role=u.role, text=u.text, line=u.line, start_s=u.start_s))
    return turns


def _read(text: str, file: str, fmt: str, cfg: AttributionConfig) -> RawSession:
    pieces = caption_pieces(parse_cues(text))
    # SRT dialogue dashes ("- Hello") mark a speaker change like ">>"
    pieces = [(s, f">> {t[2:]}" if t.startswith("- ") else t, ln) for s, t, ln in pieces]
    if any("<<" in t for _, t, _ in pieces):
        turns, how = rebuild_turns(pieces, cfg.pause_s)
        conf = attribute_named(turns)
    else:
        units = split_units(pieces)
        conf = attribute_units(units, cfg.pause_s)
        turns, how = units_to_turns(units), "marks+words" if any(u.mark for u in units) else "words"
    if not turns:
        raise BadInput("captions contain no speech text after removing timestamps and tags", 1)
    return RawSession(key="0", file=file, format=fmt, turns=turns, line=1,
                      meta={"attribution": {"method": "words", "turns_from": how, "confidence": conf,
                                            "head": default_head().meta.get("trained", "")}})


def read_vtt(text: str, file: str, cfg: AttributionConfig) -> RawSession:
    return _read(text, file, "vtt", cfg)


def read_srt(text: str, file: str, cfg: AttributionConfig) -> RawSession:
    return _read(text, file, "srt", cfg)
