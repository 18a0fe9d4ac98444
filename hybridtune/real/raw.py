"""Shared types of the real-data readers: raw turns and sessions, the bad-input error, speaker labels.

Readers (hybridtune/real/formats.py, captions.py) yield `RawSession`s; the stage cleans,
attributes and converts them to `Session` records.

    raw = RawSession(key="0", file="x.txt", format="text", turns=[RawTurn("Therapist", "Hi", label_role("Therapist"))])
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

COUNSELOR_LABELS = {"therapist", "t", "counselor", "counsellor", "th", "doctor", "dr", "clinician", "interviewer",
                    "coach", "helper", "supporter", "psychologist", "psychiatrist", "assistant", "sys", "system_counselor",
                    "practitioner", "provider", "mi practitioner", "nurse", "co", "psychotherapist"}
CLIENT_LABELS = {"client", "patient", "p", "pt", "user", "usr", "seeker", "member", "caller",
                 "participant", "pa", "interviewee", "customer"}
# 'CL' (client or clinician?) is in neither set on purpose: never guessed from the label,
# such turns are attributed from what they say (real/captions.py, the annotator role)


class BadInput(Exception):
    """A file that cannot be used: `line` (1-based, or None) and a reason that says what to do."""

    def __init__(self, reason: str, line: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line


@dataclass
class RawTurn:
    speaker: str              # label as written ('' when unknown)
    text: str
    role: str | None = None   # 'assistant' (counselor) | 'user' (client) | None (to attribute)
    line: int | None = None
    start_s: float | None = None
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class RawSession:
    key: str                  # id within the file (transcript id, index...)
    file: str
    format: str
    turns: list[RawTurn]
    meta: dict[str, Any] = field(default_factory=dict)
    line: int | None = None


def label_role(label: str) -> str | None:
    """'Therapist', 'T', 'Dr. Smith', 'Patient'... -> assistant / user / None."""
    s = re.sub(r"[^a-z ]", "", label.lower().replace(".", " ")).strip()
    s = re.sub(r"\s+\d*$", "", s)
    if not s:
        return None
    if s in COUNSELOR_LABELS or s.split()[0] in {"dr", "doctor", "therapist", "counselor", "counsellor"}:
        return "assistant"
    if s in CLIENT_LABELS or s.split()[0] in {"client", "patient"}:
        return "user"
    return None


def decode(path: Path) -> str:
    """File text as UTF-8; empty, binary and wrongly encoded files raise BadInput with the line."""
    data = path.read_bytes()
    if not data.strip():
        raise BadInput("empty file; remove it or add a transcript")
    if b"\x00" in data[:8192]:
        raise BadInput("binary file (NUL bytes), not a transcript; remove it from the inputs")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise BadInput(f"not valid UTF-8 (byte 0x{data[e.start]:02x}); re-save the file as UTF-8", line) from None
