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
from dataclasses import dataclass

from .config import AttributionConfig
from .raw import BadInput, RawSession, RawTurn, label_role
from .speakers import Unit, attribute_units, default_head, split_units

TIME_RE = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})\s*-->\s*")
INLINE_TAG_RE = re.compile(r"<\d\d:\d\d[:.\d]*>|</?c(?:\.[\w.]+)?>|</?[biu]>|</?font[^>]*>|\{\\an\d\}")
SOUND_RE = re.compile(r"(?:\s*(?:\[[^\]]{1,40}\]|\([^)]{1,30}\)|♪+)\s*)+")
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
    """(start, text, line) pieces with rolling duplicates removed.

    Rolling captions repeat the previous cue's last line(s) at the top of the next cue: only
    that overlap is dropped. Dropping any line seen recently would also drop the other
    speaker's genuine ">> Okay." after an ">> Okay." and shift every later turn.
    """
    out: list[tuple[float, str, int]] = []
    prev: list[str] = []
    for c in cues:
        lines = []
        for raw in c.lines:
            voice = VOICE_RE.search(raw)
            t = INLINE_TAG_RE.sub("", VOICE_RE.sub("", raw)).replace("</v>", "").strip()
            if SOUND_RE.fullmatch(t):
                continue  # "[Music]" alone is no one's turn
            if voice:
                t = f"<<{voice.group(1).strip()}>> {t}"
            if t:
                lines.append(t)
        # the repeated lines are a prefix of this cue equal to a suffix of the previous one
        skip = next((k for k in range(min(len(lines), len(prev)), 0, -1) if lines[:k] == prev[-k:]), 0)
        for t in lines[skip:]:
            # a rolling cue may repeat the end of the last line as its start
            if prev and t.startswith(prev[-1]) and len(t) > len(prev[-1]):
                t = t[len(prev[-1]):].strip()
            out.append((c.start_s, t, c.line))
        prev = lines or prev
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
