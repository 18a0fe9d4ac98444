"""Segmentation of sessions into training samples in the `messages` format (counselor = assistant).

Input: a cleaned, scrubbed `Session`. Output: `Sample` records of two kinds:
- `session`: the whole conversation, split into chunks under `segment.max_tokens` with
  `overlap_turns` turns repeated at each chunk start; every chunk ends on a counselor turn;
- `qa`: each counselor turn with the `qa_context_turns` turns before it (ending on the client).

    for sample in segment(session, cfg.real.segment, system_prompt): ...
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from ..records import Message, Record, Session, stable_id
from .config import SegmentConfig


class Sample(Record):
    """One training example cut from a session."""

    session_id: str
    kind: Literal["session", "qa"]
    messages: list[Message]
    turns: tuple[int, int]  # [start, end) indices into the session's messages
    meta: dict = {}


def est_tokens(text: str) -> int:
    """~4 characters per token: a tokenizer-free estimate, good enough for a budget."""
    return len(text) // 4 + 4


def chunks(msgs: list[Message], max_tokens: int, overlap: int) -> Iterator[tuple[int, int]]:
    """[start, end) windows under the budget, each ending on an assistant turn when possible."""
    start, n = 0, len(msgs)
    while start < n:
        end, used = start, 0
        while end < n and (used + est_tokens(msgs[end].content) <= max_tokens or end == start):
            used += est_tokens(msgs[end].content)
            end += 1
        cut = end
        while cut > start + 1 and msgs[cut - 1].role != "assistant":
            cut -= 1
        if msgs[cut - 1].role != "assistant":
            cut = end  # no counselor turn fits: keep the window as is (dropped below)
        if any(m.role == "assistant" for m in msgs[start:cut]):
            yield start, cut
        if cut >= n:
            break
        start = max(cut - overlap, start + 1)


def segment(session: Session, cfg: SegmentConfig, system_prompt: str = "") -> Iterator[Sample]:
    msgs = [m for m in session.messages if m.role != "system"]
    sys = [Message(role="system", content=system_prompt)] if cfg.system_prompt and system_prompt else []
    budget = max(cfg.max_tokens - est_tokens(system_prompt), 64)
    if cfg.sessions:
        for a, b in chunks(msgs, budget, cfg.overlap_turns):
            yield Sample(id=stable_id("sample", session.id, "session", a, b), session_id=session.id, kind="session",
                         messages=sys + msgs[a:b], turns=(a, b))
    if cfg.qa:
        for i, m in enumerate(msgs):
            if m.role != "assistant" or i == 0 or msgs[i - 1].role != "user":
                continue
            a = max(0, i - cfg.qa_context_turns)
            yield Sample(id=stable_id("sample", session.id, "qa", a, i + 1), session_id=session.id, kind="qa",
                         messages=sys + msgs[a:i + 1], turns=(a, i + 1))
