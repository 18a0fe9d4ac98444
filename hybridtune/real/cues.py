"""Caption cues: WebVTT / SRT text -> timed cues -> (start, text, line) pieces, duplicates rolled up.

The parsing layer under captions.py (turns and roles) and speakers.py (units for the learned
speaker head); it imports neither, so they can both use it.

    pieces = caption_pieces(parse_cues(vtt_text))
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .raw import BadInput

TIME_RE = re.compile(r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{3})\s*-->\s*(?:\d+:)?\d{1,2}:\d{2}[.,]\d{3}")
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
        elif len(block) > 1 and block[0][1].strip().isdigit():  # a numbered cue whose timing line is broken
            raise BadInput(f"caption timing line is malformed: {block[1][1].strip()[:40]!r}; "
                           "expected HH:MM:SS,mmm --> HH:MM:SS,mmm", block[1][0])
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
