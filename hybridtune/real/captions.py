"""WebVTT / SRT captions -> speaker turns with attributed roles and a per-session confidence.

Input: caption text as a video platform produces it (timestamps, rolling duplicate lines,
`[Music]`, `>>` speaker-change marks, inline `<00:00:01.000><c>` tags, usually no names).
Output: one `RawSession` whose turns carry `role` and `meta['attribution']`.

Turns are rebuilt from `>>` marks (or `<v Name>` voice tags, or `- ` dialogue dashes in SRT);
without any marks, a pause of `attribution.pause_s` starts a new turn. Roles then come from
cue words (questions, reflections, "you" vs "I"), assigned so that speakers alternate; the
confidence is how clearly the cues prefer that assignment. The stage may ask the `annotator`
LLM about sessions below `attribution.llm_below` (see annotate.attribute_with_llm).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .config import AttributionConfig
from .formats import BadInput, RawSession, RawTurn, label_role

TIME_RE = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})\s*-->\s*")
INLINE_TAG_RE = re.compile(r"<\d\d:\d\d[:.\d]*>|</?c(?:\.[\w.]+)?>|</?[biu]>|</?font[^>]*>|\{\\an\d\}")
VOICE_RE = re.compile(r"<v(?:\.[\w.]+)?\s+([^>]+)>")


@dataclass
class Cue:
    start_s: float
    lines: list[str]
    line: int


def _seconds(m: re.Match) -> float:
    h, mi, s, ms = m.groups()
    return int(h or 0) * 3600 + int(mi) * 60 + int(s) + int(ms) / 1000


def parse_cues(text: str) -> list[Cue]:
    """Cue blocks of a VTT or SRT file (headers, NOTE/STYLE blocks and cue numbers dropped)."""
    cues: list[Cue] = []
    block: list[tuple[int, str]] = []
    for n, line in enumerate([*text.splitlines(), ""], 1):
        if line.strip():
            block.append((n, line.rstrip()))
            continue
        if not block:
            continue
        tline = next(((i, ln) for i, (_, ln) in enumerate(block) if "-->" in ln), None)
        if tline is not None:
            i, ln = tline
            m = TIME_RE.search(ln)
            if not m:
                raise BadInput(f"caption timing line is malformed: {ln.strip()[:40]!r}; expected HH:MM:SS.mmm --> ...", block[i][0])
            cues.append(Cue(_seconds(m), [x for _, x in block[i + 1:]], block[i][0]))
        block = []
    if not cues:
        raise BadInput("no caption cues found (no 'HH:MM:SS.mmm --> HH:MM:SS.mmm' lines); is this really VTT/SRT?", 1)
    return cues


def caption_pieces(cues: list[Cue]) -> list[tuple[float, str, int]]:
    """(start, text, line) pieces with rolling duplicates removed (YouTube repeats the previous line)."""
    out: list[tuple[float, str, int]] = []
    recent: list[str] = []
    for c in cues:
        for raw in c.lines:
            voice = VOICE_RE.search(raw)
            t = INLINE_TAG_RE.sub("", VOICE_RE.sub("", raw)).replace("</v>", "").strip()
            if voice:
                t = f"<<{voice.group(1).strip()}>> {t}"
            if not t or t in recent:
                continue
            # a rolling cue may repeat the end of the last line as its start
            if recent and t.startswith(recent[-1]) and len(t) > len(recent[-1]):
                t = t[len(recent[-1]):].strip()
            recent = (recent + [t])[-3:]
            out.append((c.start_s, t, c.line))
    return out


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


def attribute(turns: list[RawTurn]) -> float:
    """Assign roles to unlabelled turns; return the session confidence in [0.5, 1].

    Named turns keep their role. Unnamed ones alternate; the parity (who speaks first) is the
    one the cue scores favour. Confidence = logistic of the summed margin, so a session where
    every turn agrees is near 1 and a coin flip is 0.5.
    """
    unknown = [i for i, t in enumerate(turns) if t.role is None]
    if not unknown:
        return 1.0
    named = {t.speaker: t.role for t in turns if t.speaker and t.role}
    for t in turns:  # voice names seen once with a known role
        if t.role is None and t.speaker in named:
            t.role = named[t.speaker]
    unknown = [i for i, t in enumerate(turns) if t.role is None]
    if not unknown:
        return 1.0
    margin = sum(counselor_score(turns[i].text) * (1 if k % 2 == 0 else -1) for k, i in enumerate(unknown))
    first, second = ("assistant", "user") if margin >= 0 else ("user", "assistant")
    for k, i in enumerate(unknown):
        turns[i].role = first if k % 2 == 0 else second
    return round(1 / (1 + math.exp(-abs(margin) / 2)), 3)


def _read(text: str, file: str, fmt: str, cfg: AttributionConfig) -> RawSession:
    pieces = caption_pieces(parse_cues(text))
    turns, how = rebuild_turns(pieces, cfg.pause_s)
    if not turns:
        raise BadInput("captions contain no speech text after removing timestamps and tags", 1)
    conf = attribute(turns)
    return RawSession(key="0", file=file, format=fmt, turns=turns, line=1,
                      meta={"attribution": {"method": "cues", "turns_from": how, "confidence": conf}})


def read_vtt(text: str, file: str, cfg: AttributionConfig) -> RawSession:
    return _read(text, file, "vtt", cfg)


def read_srt(text: str, file: str, cfg: AttributionConfig) -> RawSession:
    return _read(text, file, "srt", cfg)
