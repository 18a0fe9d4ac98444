"""The one LLM interface every stage uses: `await llm.chat(messages, schema=Model | None)`.

An `LLM` is a role (generator, patient, counselor, judge, annotator) bound to a backend.
Around the backend call it adds, in order: response cache -> budget check -> rate limits ->
retries -> structured-output validation with bounded re-asks -> usage accounting.

    pool = LLMPool(cfg.pool_config(), cache=ResponseCache(path), usage=Usage(...))
    reply = await pool.role("judge").chat(msgs, schema=Scores)
    reply.parsed  # a validated Scores instance; failures raise StructuredOutputError
"""
from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ValidationError

from ..errors import StructuredOutputError, UserError
from .base import BACKENDS, Backend, ChatRequest, Completion, TokenLogprobs, Unreachable
from .batch import Batcher
from .cache import ResponseCache, cache_key
from .limits import Limiter, RetryStats, with_retries
from .usage import Usage

if TYPE_CHECKING:
    from .config import EndpointConfig, PoolConfig, RoleConfig


class Reply(BaseModel):
    text: str
    parsed: Any = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""
    cached: bool = False
    attempts: int = 1


def extract_json(text: str) -> str:
    """The JSON object inside a reply (tolerates code fences and chatter around it)."""
    t = text.strip()
    fence = re.search(r"```(?:json)?\s*(.*?)```", t, re.S)
    if fence:
        t = fence.group(1).strip()
    start, end = t.find("{"), t.rfind("}")
    return t[start : end + 1] if start != -1 and end > start else t


def sample_seed(base: int | None, sample: int) -> int | None:
    return None if base is None else (base * 1_000_003 + sample) % (2**31 - 1)


class LLM:
    """A role bound to an endpoint. Create through `LLMPool.role()`."""

    def __init__(self, role: str, role_cfg: RoleConfig, backend: Backend, limiter: Limiter, pool: LLMPool):
        self.role = role
        self.cfg = role_cfg
        self.backend = backend
        self.limiter = limiter
        self.pool = pool
        self.model = role_cfg.model or backend.endpoint.model

    def request(self, messages: list[dict[str, str]], schema: type[BaseModel] | None, sample: int, **params) -> ChatRequest:
        p = {
            "temperature": self.cfg.temperature,
            "top_p": self.cfg.top_p,
            "max_tokens": self.cfg.max_tokens,
            "seed": sample_seed(self.cfg.seed if self.cfg.seed is not None else self.pool.seed, sample),
        }
        p.update({k: v for k, v in params.items() if v is not None})
        return ChatRequest(
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            model=self.model,
            json_schema=schema.model_json_schema() if schema else None,
            schema_name=schema.__name__ if schema else None,
            structured=self.backend.endpoint.structured if schema else "none",
            **p,
        )

    async def _complete(self, req: ChatRequest, sample: int) -> tuple[Completion, bool]:
        """A cached reply, the reply of the same request already in flight, or a model call.

        Waiting for an identical request in flight (the simulated client's opening is asked by
        every variant at once) makes the model calls one per distinct request, however the
        tasks interleave; before, each racing copy missed the cache and was computed again."""
        cache = self.pool.cache
        key = cache_key(self.backend.name, req.model_dump(), sample)
        if cache is None:
            return await self._call(req, key), False
        loop = asyncio.get_running_loop()
        while True:
            if (hit := cache.get(key)) is not None:
                return Completion(**hit), True
            fut = self.pool.inflight.get(key)
            if fut is None or fut.get_loop() is not loop:
                break
            await asyncio.wait([fut])  # then the cache has it, or (the call failed) this one tries
        fut = self.pool.inflight[key] = loop.create_future()
        try:
            return await self._call(req, key), False
        finally:
            del self.pool.inflight[key]
            fut.set_result(None)

    async def _call(self, req: ChatRequest, key: str) -> Completion:
        cache = self.pool.cache
        self.pool.usage.check_budget()
        batcher = self.pool.batcher(self.backend)
        if batcher is not None:  # the provider's batch API: no rate limits, half price, results cached
            body = self.backend.batch_body(req)

            async def call() -> Completion:
                return await batcher.complete(key, body)
        else:
            est = sum(len(m["content"]) for m in req.messages) // 4 + req.max_tokens
            await self.limiter.acquire(est)

            async def call() -> Completion:
                async with self.limiter.sem:
                    return await self.backend.complete(req)

        try:
            comp = await with_retries(
                call, max_retries=self.pool.cfg.llm.max_retries, base_s=self.pool.cfg.llm.backoff_s,
                stats=self.pool.retry_stats,
            )
        except Unreachable as e:  # nothing will work until the user acts: stop the run cleanly
            raise UserError(str(e)) from None
        if cache is not None:
            cache.put(key, comp.__dict__)
        return comp

    async def chat(
        self, messages: list[dict[str, str]], schema: type[BaseModel] | None = None, *, sample: int = 0, **params
    ) -> Reply:
        """One chat completion; with `schema`, a validated instance in `Reply.parsed`.

        An invalid structured reply is re-asked with the validation error (up to
        `llm.max_reasks` times); then StructuredOutputError carries the raw text.
        """
        msgs = list(messages)
        attempts = 0
        totals = [0, 0]
        while True:
            attempts += 1
            req = self.request(msgs, schema, sample, **params)
            comp, cached = await self._complete(req, sample)
            totals[0] += comp.prompt_tokens
            totals[1] += comp.completion_tokens
            self.pool.usage.add(self.role, req.model, comp.prompt_tokens, comp.completion_tokens, cached,
                                evaluated=comp.evaluated_tokens, distinct=comp.distinct_tokens,
                                factor=self.pool.cfg.llm.batch_discount if comp.batch else 1.0)
            reply = Reply(
                text=comp.text, prompt_tokens=totals[0], completion_tokens=totals[1],
                model=comp.model or req.model, cached=cached, attempts=attempts,
            )
            if schema is None:
                return reply
            try:
                # strict=False: llama.cpp's JSON grammar lets raw newlines into strings, which
                # strict JSON rejects; the content is fine, so accept it rather than re-ask
                reply.parsed = schema.model_validate(json.loads(extract_json(comp.text), strict=False))
                return reply
            except (ValidationError, ValueError) as e:
                err = _short_error(e)
                if attempts > self.pool.cfg.llm.max_reasks:
                    self.pool.usage.fail(self.role)
                    raise StructuredOutputError(
                        f"{self.role}: reply failed {schema.__name__} validation after {attempts} attempts: {err}",
                        raw=comp.text, attempts=attempts,
                    ) from None
                msgs = [
                    *messages,
                    {"role": "assistant", "content": comp.text[:2000]},
                    {"role": "user", "content": (
                        f"That reply is not valid: {err}. Answer again with only a JSON object that "
                        f"matches this schema: {json.dumps(schema.model_json_schema())}"
                    )},
                ]

    async def stream(self, messages: list[dict[str, str]], **params) -> AsyncIterator[str]:
        """Stream text pieces (no cache: interactive chat)."""
        req = self.request(messages, None, 0, **params)
        self.pool.usage.check_budget()
        async with self.limiter.sem:
            async for piece in self.backend.stream(req):
                yield piece

    async def token_logprobs(self, messages: list[dict[str, str]]) -> list[TokenLogprobs]:
        return await self.backend.token_logprobs(messages, self.model)


def _short_error(e: Exception) -> str:
    if isinstance(e, ValidationError):
        parts = [f"{'.'.join(str(p) for p in x['loc']) or 'value'}: {x['msg']}" for x in e.errors()[:5]]
        return "; ".join(parts)
    return str(e).splitlines()[0][:300]


class LLMPool:
    """Backends per endpoint (created once, shared by the roles bound to it) and roles."""

    # May the current calls wait for a provider batch? Set by the stage context from the running
    # stage's declaration; this layer never decides by stage.
    batching: bool = False

    def __init__(self, cfg: PoolConfig, cache: ResponseCache | None = None, usage: Usage | None = None):
        self.cfg = cfg
        self.seed = cfg.seed
        self.cache = cache
        self.usage = usage or Usage()
        self.retry_stats = RetryStats()
        self.backends: dict[str, Backend] = {}
        self.limiters: dict[str, Limiter] = {}
        self.batchers: dict[str, Batcher] = {}
        self.inflight: dict[str, asyncio.Future] = {}  # cache key -> done when that call ends (LLM._complete)

    def install(self, endpoint_name: str, backend: Backend) -> None:
        """Use a ready backend (tests: a FakeBackend) for an endpoint; it takes that endpoint's settings."""
        if endpoint_name in self.cfg.endpoints:
            backend.endpoint = self.cfg.endpoints[endpoint_name]
            backend.endpoint_name = endpoint_name
        self.backends[endpoint_name] = backend

    def backend(self, endpoint_name: str, endpoint: EndpointConfig | None = None) -> Backend:
        if endpoint_name not in self.backends:
            ep = endpoint or self.cfg.endpoints.get(endpoint_name)
            if ep is None:
                raise UserError(f"endpoints.{endpoint_name}: not defined in the config")
            factory = BACKENDS.get(ep.backend, key=f"endpoints.{endpoint_name}.backend")
            self.backends[endpoint_name] = factory(ep, endpoint_name)
        return self.backends[endpoint_name]

    def _limiter(self, endpoint_name: str, ep: EndpointConfig) -> Limiter:
        if endpoint_name not in self.limiters:
            self.limiters[endpoint_name] = Limiter(ep.max_in_flight, ep.rpm, ep.tpm)
        return self.limiters[endpoint_name]

    def batcher(self, backend: Backend) -> Batcher | None:
        """The endpoint's batch queue when `llm.batch` is on, the backend has a batch API and the
        current calls can wait for a batch (`batching`); else None."""
        if not (self.cfg.llm.batch and hasattr(backend, "submit_batch") and self.batching):
            return None
        name = backend.endpoint_name
        if name not in self.batchers:
            self.batchers[name] = Batcher(backend, self.cache, self.cfg.llm.batch_poll_s, self.cfg.llm.batch_timeout_h)
        return self.batchers[name]

    def role(self, role: str) -> LLM:
        rc = self.cfg.roles.get(role)
        assert rc is not None, f"unknown role {role!r}; roles are {sorted(self.cfg.roles)}"
        return self.bind(role, rc, rc.endpoint)

    def bind(self, role: str, rc: RoleConfig, endpoint_name: str, endpoint: EndpointConfig | None = None) -> LLM:
        """A role on any endpoint (e.g. the counselor role on a fine-tuned variant's endpoint)."""
        be = self.backend(endpoint_name, endpoint)
        return LLM(role, rc, be, self._limiter(endpoint_name, be.endpoint), self)

    def check(self, roles: list[str] | None = None) -> None:
        """Fail fast, before spending anything, on missing GGUFs, keys or unknown backends."""
        for role in roles or list(self.cfg.roles):
            self.backend(self.cfg.roles[role].endpoint).check()

    @property
    def model_calls(self) -> int:
        return sum(b.calls for b in self.backends.values())

    async def aclose(self) -> None:
        for b in self.backends.values():
            await b.aclose()
