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

from ..errors import UserError, server_message
from .limits import LoopLocal
from .base import Backend, ChatRequest, Completion, NotSupported, TokenLogprobs, TransientError, Unreachable, register


def _retry_after(headers) -> float | None:
    try:
        v = headers.get("retry-after") if headers else None
        return float(v) if v is not None else None
    except (TypeError, ValueError):
        return None


class _FormatRejected(Exception):
    """The endpoint does not understand this `response_format`."""


def _response_format(mode: str, req: ChatRequest) -> dict:
    if mode == "json_schema":
        return {"type": "json_schema",
                "json_schema": {"name": req.schema_name or "reply", "schema": req.json_schema, "strict": False}}
    if mode == "json_object_schema":
        return {"type": "json_object", "schema": req.json_schema}
    return {"type": "json_object"}


@register("openai")
class OpenAIBackend(Backend):
    def __init__(self, endpoint, endpoint_name: str = ""):
        super().__init__(endpoint, endpoint_name)
        urls = endpoint.base_url or "https://api.openai.com/v1"
        self.urls = [urls] if isinstance(urls, str) else list(urls)
        self._clients = None
        self._in_flight = [0] * len(self.urls)
        # JSON modes to try, best first; an endpoint that rejects one is asked in the next
        # (llama-cpp-python's server takes a schema inside json_object; plain JSON mode is last).
        self._modes = ["json_schema", "json_object_schema", "json_object"]

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
        """One client per replica, per event loop: httpx pools cannot outlive the loop that
        made them, and every stage runs its own `asyncio.run`."""
        if self._clients is None:
            self._clients = LoopLocal(self._make_clients)
        return self._clients.get()

    def _make_clients(self):
        from openai import AsyncOpenAI

        key = self._key()
        return [AsyncOpenAI(base_url=u, api_key=key, timeout=self.endpoint.timeout_s, max_retries=0) for u in self.urls]

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
            mode = self._modes[0] if req.structured == "json_schema" else "json_object"
            kw["response_format"] = _response_format(mode, req)
        return kw

    async def _call(self, fn, first: bool = False):
        import openai

        i = 0 if first else self._pick()  # files and batches live on one server: the first replica
        self._in_flight[i] += 1
        try:
            return await fn(self.clients[i])
        except openai.RateLimitError as e:
            raise TransientError(f"{self.urls[i]}: 429 rate limited", _retry_after(e.response.headers)) from None
        except (openai.BadRequestError, openai.UnprocessableEntityError, openai.InternalServerError) as e:
            if "response_format" in str(e):
                raise _FormatRejected(str(e)) from None
            if not isinstance(e, openai.InternalServerError):
                raise
            raise TransientError(f"{self.urls[i]}: {e.status_code} server error", _retry_after(e.response.headers)) from None
        except openai.APITimeoutError:
            raise TransientError(f"{self.urls[i]}: timed out after {self.endpoint.timeout_s}s") from None
        except openai.APIConnectionError:
            raise Unreachable(
                f"endpoints.{self.endpoint_name}.base_url: cannot connect to {self.urls[i]}; "
                "start the server or fix the URL, then rerun to resume"
            ) from None
        except openai.AuthenticationError:
            raise UserError(
                f"endpoints.{self.endpoint_name}.api_key_env: the endpoint rejected the key in "
                f"{self.endpoint.api_key_env}; check it"
            ) from None
        except openai.NotFoundError as e:
            raise UserError(
                f"endpoints.{self.endpoint_name}: model or path not found at {self.urls[i]} "
                f"({server_message(e.body, e.message, 200)}); check model and base_url"
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
        while True:
            kw = self._kwargs(req)
            try:
                resp = await self._call(lambda c: c.chat.completions.create(**kw))
                break
            except _FormatRejected:
                if "response_format" not in kw or len(self._modes) == 1:
                    raise TransientError(f"endpoints.{self.endpoint_name}: rejects every JSON response_format") from None
                self._modes.pop(0)  # remembered for this endpoint
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

    # -- batch API (llm/batch.py): /v1/files + /v1/batches on the first replica -----------------
    def batch_body(self, req: ChatRequest) -> dict:
        """The request as a batch line's body (the same JSON a synchronous call sends)."""
        return self._kwargs(req)

    async def submit_batch(self, bodies: dict[str, dict]) -> str:
        """Upload one JSONL line per request (custom_id = cache key) and create the batch; its id."""
        import json

        lines = "".join(json.dumps({"custom_id": k, "method": "POST", "url": "/v1/chat/completions", "body": b}) + "\n"
                        for k, b in bodies.items())
        f = await self._call(lambda c: c.files.create(file=("batch.jsonl", lines.encode()), purpose="batch"), first=True)
        b = await self._call(lambda c: c.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions",
                                                        completion_window="24h"), first=True)
        return b.id

    async def batch_status(self, batch_id: str) -> dict:
        b = await self._call(lambda c: c.batches.retrieve(batch_id), first=True)
        return b.model_dump()

    async def batch_results(self, info: dict) -> tuple[dict[str, Completion], dict[str, str]]:
        """({cache key: Completion} of finished lines, {cache key: error} of failed ones)."""
        import json

        done: dict[str, Completion] = {}
        failed: dict[str, str] = {}
        for fid in (info.get("output_file_id"), info.get("error_file_id")):
            if not fid:
                continue
            content = await self._call(lambda c, fid=fid: c.files.content(fid), first=True)
            for line in content.text.splitlines():
                if not line.strip():
                    continue
                row = json.loads(line)
                resp, key = row.get("response") or {}, row.get("custom_id", "")
                body = resp.get("body") or {}
                if resp.get("status_code") == 200 and body.get("choices"):
                    usage = body.get("usage") or {}
                    choice = body["choices"][0]
                    done[key] = Completion(
                        text=(choice.get("message") or {}).get("content") or "",
                        prompt_tokens=usage.get("prompt_tokens", 0) or 0,
                        completion_tokens=usage.get("completion_tokens", 0) or 0,
                        model=body.get("model") or "", finish_reason=choice.get("finish_reason"), batch=True)
                    self.calls += 1
                else:
                    err = row.get("error") or body.get("error") or {}
                    failed[key] = str(err.get("message") if isinstance(err, dict) else err)[:300] or "failed"
        return done, failed

    async def stream(self, req: ChatRequest) -> AsyncIterator[str]:
        kw = self._kwargs(req)
        stream = await self._call(lambda c: c.chat.completions.create(stream=True, **kw))
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                yield chunk.choices[0].delta.content
        self.calls += 1

    async def token_logprobs(self, messages: list[dict[str, str]], model: str) -> list[TokenLogprobs]:
        """Per assistant turn, the log-probabilities of its tokens, from vLLM's `prompt_logprobs`.

        Two chat calls per assistant turn (max_tokens=1): the dialogue before the turn with the
        generation prompt gives the number of context tokens (usage.prompt_tokens); the
        dialogue including the turn, with `prompt_logprobs: 0`, gives each prompt token's
        log-probability; the turn's tokens are those after the context (trailing
        whitespace-only template tokens dropped, as in the llamacpp backend). The server
        applies the model's own chat template, so spans match what it was trained on.
        Hosted OpenAI models and servers that ignore `prompt_logprobs` (llama-cpp-python's
        server) raise NotSupported: the likelihood stage skips such a variant, never guesses.
        """
        import openai

        if not self.endpoint.logprobs:
            raise NotSupported(
                f"endpoints.{self.endpoint_name}.logprobs is false: this endpoint returns no prompt log-probabilities"
            )
        if any("api.openai.com" in u for u in self.urls):
            raise NotSupported(f"endpoints.{self.endpoint_name}: hosted OpenAI models return no prompt "
                               "log-probabilities (set logprobs: false for this endpoint)")

        async def call(msgs: list[dict[str, str]], final: bool):
            body = {"add_generation_prompt": not final, "continue_final_message": False}
            if final:
                body["prompt_logprobs"] = 0
            try:
                return await self._call(lambda c: c.chat.completions.create(
                    model=model, messages=msgs, max_tokens=1, temperature=0.0, extra_body=body))
            except (openai.BadRequestError, openai.UnprocessableEntityError) as e:
                raise NotSupported(f"endpoints.{self.endpoint_name}: the server refused a prompt_logprobs "
                                   f"request ({str(e)[:200]})") from None

        out: list[TokenLogprobs] = []
        for i, m in enumerate(messages):
            if m["role"] != "assistant":
                continue
            head = await call(messages[:i], final=False)
            full = await call(messages[: i + 1], final=True)
            n_ctx = getattr(getattr(head, "usage", None), "prompt_tokens", None)
            plp = getattr(full, "prompt_logprobs", None)
            if plp is None:
                plp = (getattr(full, "model_extra", None) or {}).get("prompt_logprobs")
            if not plp or not n_ctx:
                raise NotSupported(f"endpoints.{self.endpoint_name}: the server returned no prompt_logprobs "
                                   "(vLLM returns them; set logprobs: false for other servers)")
            toks, lps = [], []
            for entry in plp[n_ctx:]:
                if not entry or len(entry) != 1:
                    raise NotSupported(
                        f"endpoints.{self.endpoint_name}: unexpected prompt_logprobs entry {entry!r:.120}")
                (info,) = entry.values()
                toks.append(str(info.get("decoded_token", "")))
                lps.append(float(info["logprob"]))
            while toks and not toks[-1].strip():
                toks.pop()
                lps.pop()
            out.append(TokenLogprobs(tokens=toks, logprobs=lps))
            self.calls += 2
        return out

    async def aclose(self) -> None:
        if self._clients is not None and self._clients._obj is not None:
            for c in self._clients._obj:
                await c.close()
            self._clients = None
