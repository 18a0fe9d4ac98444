"""What a conversation log reads of a chat: the `ChatTranscript` protocol (engine.ChatEngine is one).

The log (conversations.py) is written by the engine (engine.py); typing its `save` against this
protocol instead of the engine class keeps the import graph one-way: engine -> conversations.

    def save(self, chat: ChatTranscript, surface: str) -> Session | None: ...
"""
from __future__ import annotations

from typing import Protocol

from ..records import Message


class ChatTranscript(Protocol):
    """A conversation in progress: its id, the counselor variant, when it started, its messages,
    the safety verdict of each user turn, and from which message on it may be kept."""

    variant: str
    messages: list[Message]
    turn_risks: list[dict]
    started: float
    kept_from: int

    @property
    def session_id(self) -> str: ...
