"""LLM layer: backends (llamacpp, openai, fake), cache, limits, usage, its settings (PoolConfig), and the
`LLM` role client."""
from .base import BACKENDS, Backend, ChatRequest, Completion, NotSupported, TokenLogprobs, TransientError, register
from .cache import ResponseCache
from .client import LLM, LLMPool, Reply
from .config import PoolConfig
from .usage import Usage

__all__ = [
    "BACKENDS", "Backend", "ChatRequest", "Completion", "LLM", "LLMPool", "NotSupported", "PoolConfig", "Reply",
    "ResponseCache", "TokenLogprobs", "TransientError", "Usage", "register",
]
