"""LLM layer: backends (llamacpp, openai, fake), cache, limits, usage, and the `LLM` role client."""
from .base import BACKENDS, Backend, ChatRequest, Completion, NotSupported, TokenLogprobs, TransientError, register
from .cache import ResponseCache
from .client import LLM, LLMPool, Reply
from .usage import Usage

__all__ = [
    "BACKENDS", "Backend", "ChatRequest", "Completion", "LLM", "LLMPool", "NotSupported", "Reply",
    "ResponseCache", "TokenLogprobs", "TransientError", "Usage", "register",
]
