"""`openai` backend: any OpenAI-compatible endpoint (OpenAI, vLLM, llama.cpp server, Ollama).

- The API key is read from the env var named by `api_key_env`; it is never logged or stored.
- Several `base_url`s (vLLM replicas) are load-balanced: each request goes to the replica
  with the fewest requests in flight.
- Structured output: `response_format` JSON schema; an endpoint that rejects it is asked
  again in JSON mode (remembered per endpoint), validation happens in the client.
- 429/5xx/timeouts/garbled bodies become `TransientError` (with `Retry-After`) for retrying.
"""
from __future__ import annotations

import os
from collections.abc import AsyncIterator

import httpx

from ..errors import UserError
from .base import Backend, ChatRequest, Completion, NotSupported, TokenLogprobs, TransientError, register


def _retry_after(headers) -> float | None:
    try:
        v = headers.get("retry-after") if headers else None
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


@register("openai")
class OpenAIBackend(Backend):
    def __init__(self, endpoint, endpoint_name: str = ""):
        super().__init__(endpoint, endpoint_name)
        urls = endpoint.base_url or "https://api.openai.com/v1"
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self._clients = None
        self._in_flight = [0] * len(self.urls)
        self._json_mode_only = False

    def _key(self) -> str:
        env = self.endpoint.api_key_env
        if not env:
            return "not-needed"  # local servers (vLLM, llama.cpp, Ollama) accept any key
        key = os.environ.get(env)
        if not key:
            raise UserError(
                f"endpoints.{self.endpoint_name}.api_key_env: environment variable {env} is not set; "
                f"export {env}=... (the key is never written to the run directory)"
            )
        return key

    def check(self) -> None:
        self._key()

    @property
    def clients(self):
        if self._clients is None:
            from openai import AsyncOpenAI

            key = self._key()
            self._clients = [
                AsyncOpenAI(base_url=u, api_key=key, timeout=self.endpoint.timeout_s, max_retries=0) for u in self.urls
            ]
        return self._clients

    def _pick(self) -> int:
        return min(range(len(self.urls)), key=lambda i: self._in_flight[i])

    def _kwargs(self, req: ChatRequest) -> dict:
        kw = dict(
            model=req.model,
            messages=req.messages,
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
        )
        if req.seed is not None:
            kw["seed"] = req.seed
        if req.stop:
            kw["stop"] = req.stop
        if req.json_schema is not None and req.structured != "none":
            if req.structured == "json_schema" and not self._json_mode_only:
                kw["response_format"] = {
                    "type": "json_schema",
                    "json_schema": {"name": req.schema_name or "reply", "schema": req.json_schema, "strict": False},
                }
            else:
                kw["response_format"] = {"type": "json_object"}
        return kw

    async def _call(self, fn):
        import openai

        i = self._pick()
        self._in_flight[i] += 1
        try:
            return await fn(self.clients[i])
        except openai.RateLimitError as e:
            raise TransientError(f"{self.urls[i]}: 429 rate limited", _retry_after(e.response.headers)) from None
        except openai.InternalServerError as e:
            raise TransientError(f"{self.urls[i]}: {e.status_code} server error", _retry_after(e.response.headers)) from None
        except (openai.APITimeoutError, openai.APIConnectionError) as e:
            if isinstance(e.__cause__, httpx.ConnectError) and len(self.urls) == 1:
                # keep retrying; the final message names the config key
                raise TransientError(
                    f"endpoints.{self.endpoint_name}.base_url: cannot connect to {self.urls[i]}; is the server running?"
                ) from None
            raise TransientError(f"{self.urls[i]}: {type(e).__name__}") from None
        except openai.AuthenticationError:
            raise UserError(
                f"endpoints.{self.endpoint_name}.api_key_env: the endpoint rejected the key in "
                f"{self.endpoint.api_key_env}; check it"
            ) from None
        except openai.NotFoundError:
            raise UserError(
                f"endpoints.{self.endpoint_name}: model or path not found at {self.urls[i]}; check model and base_url"
            ) from None
        except openai.APIStatusError as e:
            if e.status_code == 408 or e.status_code >= 500:
                raise TransientError(f"{self.urls[i]}: HTTP {e.status_code}") from None
            raise
        except (ValueError, KeyError, TypeError) as e:  # garbled / truncated body
            raise TransientError(f"{self.urls[i]}: malformed response ({type(e).__name__})") from None
        finally:
            self._in_flight[i] -= 1

    async def complete(self, req: ChatRequest) -> Completion:
        import openai

        kw = self._kwargs(req)
        try:
            resp = await self._call(lambda c: c.chat.completions.create(**kw))
        except openai.BadRequestError:
            if "response_format" not in kw or kw["response_format"]["type"] != "json_schema":
                raise
            self._json_mode_only = True  # endpoint has no JSON-schema support: fall back to JSON mode
            kw["response_format"] = {"type": "json_object"}
            resp = await self._call(lambda c: c.chat.completions.create(**kw))
        try:
            choice = resp.choices[0]
            text = choice.message.content or ""
        except (AttributeError, IndexError, TypeError):
            raise TransientError("malformed response: no choices") from None
        self.calls += 1
        usage = getattr(resp, "usage", None)
        return Completion(
            text=text,
            prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
            completion_tokens=getattr(usage, "completion_tokens", 0) or 0,
            model=getattr(resp, "model", None) or req.model,
            finish_reason=getattr(choice, "finish_reason", None),
        )

    async def stream(self, req: ChatRequest) -> AsyncIterator[str]:
        kw = self._kwargs(req)
        stream = await self._call(lambda c: c.chat.completions.create(stream=True, **kw))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
        self.calls += 1

    async def token_logprobs(self, messages: list[dict[str, str]], model: str) -> list[TokenLogprobs]:
        if not self.endpoint.logprobs:
            raise NotSupported(
                f"endpoints.{self.endpoint_name}.logprobs is false: this endpoint returns no prompt log-probabilities"
            )
        raise NotSupported("prompt log-probabilities over the openai backend are not implemented yet")

    async def aclose(self) -> None:
        for c in self._clients or []:
            await c.close()
