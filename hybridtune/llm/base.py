"""The backend interface and registry: what every LLM backend implements.

A backend turns one `ChatRequest` into one `Completion`. Everything else (cache, retries,
rate limits, structured-output validation, usage and budget) lives in `client.LLM`, so a
new backend is one small class:

    @register("mybackend")
    class MyBackend(Backend):
        async def complete(self, req: ChatRequest) -> Completion: ...

registered when its module is imported: a module of this package goes in `BACKEND_MODULES`
below; another package declares an entry point in the group `hybridtune.backends`
(`mybackend = "mypkg.mod:MyBackend"`). A name already taken is refused.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from ..plugins import Registry

if TYPE_CHECKING:
    from .config import EndpointConfig


class ChatRequest(BaseModel):
    """Exactly what is sent; also the cache key (with the backend name and sample index)."""

    model_config = ConfigDict(extra="forbid")
    messages: list[dict[str, str]]
    model: str
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 384
    seed: int | None = None
    stop: list[str] | None = None
    json_schema: dict[str, Any] | None = None
    schema_name: str | None = None
    structured: str = "none"  # json_schema | json_object | none


@dataclass
class Completion:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    finish_reason: str | None = None
    evaluated_tokens: int | None = None  # prompt tokens the model actually read (None: backend cannot tell)
    distinct_tokens: int | None = None  # prompt tokens this model instance had never been sent before
    batch: bool = False  # answered through the provider's batch API (priced at llm.batch_discount)


@dataclass
class TokenLogprobs:
    """Log-probabilities of the tokens of a given text (for held-out likelihood)."""

    tokens: list[str] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)


class TransientError(Exception):
    """Worth retrying: 429, 5xx, timeouts, truncated bodies. `retry_after` in seconds if known."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class Unreachable(TransientError):
    """Cannot connect at all; retried like any transient error, then a user error naming the key."""


class NotSupported(Exception):
    """The backend cannot do this (e.g. hosted OpenAI models return no prompt logprobs)."""


class Backend(ABC):
    """One configured endpoint. Instances are created once per run by the LLM pool."""

    name: str = "?"

    def __init__(self, endpoint: EndpointConfig, endpoint_name: str = ""):
        self.endpoint = endpoint
        self.endpoint_name = endpoint_name
        self.calls = 0  # completed model calls (tests use it to prove cache replays make none)

    @abstractmethod
    async def complete(self, req: ChatRequest) -> Completion: ...

    async def stream(self, req: ChatRequest) -> AsyncIterator[str]:
        """Yield text pieces; backends that can stream override this."""
        yield (await self.complete(req)).text

    async def token_logprobs(self, messages: list[dict[str, str]], model: str) -> list[TokenLogprobs]:
        """Per-message logprobs of each assistant turn given its preceding dialogue."""
        raise NotSupported(f"backend '{self.name}' cannot return prompt log-probabilities")

    def check(self) -> None:
        """Cheap start-up check (files exist, key set); raise UserError naming the config key."""

    async def aclose(self) -> None:
        return None


# the package's own backends: imported on the first lookup, so each registers itself
BACKEND_MODULES = ("hybridtune.llm.fake", "hybridtune.llm.llamacpp", "hybridtune.llm.openai_backend")
BACKENDS: Registry[type[Backend]] = Registry("backend", BACKEND_MODULES, group="hybridtune.backends")


def register(name: str):
    """Class decorator: `@register("openai")` makes the backend selectable in configs."""

    def deco(cls):
        cls.name = name
        return BACKENDS.add(name, cls)

    return deco
