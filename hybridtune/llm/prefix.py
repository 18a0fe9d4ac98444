"""Prompt-state reuse for the embedded llama.cpp backend: read each distinct prompt token once.

On its own llama.cpp keeps one sequence's KV cache, so it reuses only the prompt it saw last:
alternating roles (patient/counselor), interleaved conversations and judge rubrics throw each
other's prefix away. `ReusingLlama` (a `llama_cpp.Llama`) keeps a byte-limited LRU store of
saved KV states keyed by their tokens and, before a prompt is evaluated, continues from the
live state or restores the stored one with the longest usable common prefix. Fixed prefixes
(system prompts, rubrics, exemplars) are shared the same way: any stored state that starts
with them serves every later prompt that does.

Outputs are identical with reuse on and off. On llama.cpp's CPU kernels a token's numbers do
not depend on where a prompt is cut into batches, except that one-token batches (how generated
tokens are computed) give other bits at long contexts (measured; docs/benchmarks_notes.md).
So only tokens read as part of a prompt are ever reused (`canon`), never generated ones, and
no prompt batch is smaller than `min_batch` tokens, with reuse or without: a restored prefix
then holds exactly the bits a from-scratch evaluation computes. `tests/test_prefix_reuse.py`
checks it end to end.

    llm = ReusingLlama(model_path=path, reuse=True, state_bytes=128 << 20, min_batch=8, n_ctx=4096)
    out = llm.create_chat_completion(messages=[...])
    llm.last                                # PromptStats: sent, evaluated, distinct, restored

Threads (`threads=None`): whether all cores beat one depends on who else holds them. On an
idle machine more threads read prompts and generate faster; beside another busy process they
can be several times slower, each waiting for the other at every step. `ThreadChoice` times every
prompt batch and generated token and uses, for each kind of work, whichever count has been
faster per token lately, trying the other now and then. llama.cpp's results do not depend on
the thread count (checked bit for bit, `tests/test_prefix_reuse.py`), so neither do outputs.
"""
from __future__ import annotations

import ctypes
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

import llama_cpp
import numpy as np
from llama_cpp import Llama

_MOD = (1 << 61) - 1  # Mersenne prime for the rolling prefix hash


@dataclass
class PromptStats:
    """One prompt: tokens sent, evaluated by the model, and new to this model instance."""

    sent: int = 0
    evaluated: int = 0
    distinct: int = 0
    restored: int = 0  # tokens taken from the state store (not the live context)


class PrefixSet:
    """Every prompt prefix this instance has seen (hashes): a prompt's `distinct` tokens are
    those a perfect, unbounded prefix cache would still have had to evaluate."""

    LIMIT = 500_000  # hashes kept (~40 MB); past it the set starts afresh and the counts run high

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def add(self, tokens) -> int:
        if len(self._seen) > self.LIMIT:
            self._seen.clear()
        h, new = 0, 0
        for t in tokens:
            h = (h * 1_000_003 + int(t) + 1) % _MOD
            if h not in self._seen:
                self._seen.add(h)
                new += 1
        return new


@dataclass
class _State:
    tokens: np.ndarray  # the prompt tokens this KV state holds
    blob: bytes  # llama_state_seq_get_data of sequence 0, trimmed to len(tokens)


class ThreadChoice:
    """The thread count that has done a kind of work (generating, reading prompts) fastest lately:
    seconds per token over recent measurements, each older one weighing DECAY times less."""

    DECAY = 0.95  # about the last 20-40 measurements count
    EXPLORE = 24  # every EXPLORE-th pick is the other count, to notice a change of load

    def __init__(self, options: list[int]):
        self.options = sorted(set(options))
        self._secs: dict[int, float] = {}
        self._tokens: dict[int, float] = {}
        self.calls = 0

    def per_token(self, n: int) -> float:
        return self._secs[n] / self._tokens[n]

    def pick(self) -> int:
        self.calls += 1
        untried = [n for n in self.options if n not in self._tokens]
        if untried:
            return untried[0]
        ranked = sorted(self.options, key=self.per_token)
        return ranked[1] if self.calls % self.EXPLORE == 0 and len(ranked) > 1 else ranked[0]

    def add(self, n: int, seconds: float, tokens: int = 1) -> None:
        self._secs[n] = self._secs.get(n, 0.0) * self.DECAY + seconds
        self._tokens[n] = self._tokens.get(n, 0.0) * self.DECAY + tokens


def batches(start: int, end: int, size: int, least: int) -> list[tuple[int, int]]:
    """Cut [start, end) into batches of at most `size`, none shorter than `least` unless the
    whole span is: a short tail borrows tokens from the batch before it."""
    cuts = list(range(start, end, size)) + [end]
    if len(cuts) > 2 and cuts[-1] - cuts[-2] < least:
        cuts[-2] = cuts[-1] - least
    return list(zip(cuts, cuts[1:], strict=False))


def common_prefix(a: np.ndarray, b: np.ndarray) -> int:
    n = min(len(a), len(b))
    diff = np.flatnonzero(a[:n] != b[:n])
    return int(diff[0]) if diff.size else n


class StateStore:
    """Saved KV states, least recently used first out once their bytes pass `limit`."""

    def __init__(self, limit: int):
        self.limit = limit
        self.items: OrderedDict[int, _State] = OrderedDict()
        self.bytes = 0
        self.peak_bytes = 0
        self._next = 0

    def best(self, prompt: np.ndarray) -> tuple[int | None, int]:
        """(key, common prefix length) of the stored state sharing the longest prefix with prompt."""
        key, best = None, 0
        for k, s in self.items.items():
            n = common_prefix(s.tokens, prompt)
            if n > best:
                key, best = k, n
        return key, best

    def get(self, key: int) -> _State:
        self.items.move_to_end(key)
        return self.items[key]

    def covers(self, tokens: np.ndarray) -> bool:
        return any(len(s.tokens) >= len(tokens) and common_prefix(s.tokens, tokens) == len(tokens)
                   for s in self.items.values())

    def put(self, tokens: np.ndarray, blob: bytes) -> None:
        if len(blob) > self.limit:
            return
        for k in [k for k, s in self.items.items() if common_prefix(s.tokens, tokens) == len(s.tokens)]:
            self._drop(k)  # a prefix of the new state: everything it could serve, the new one serves
        while self.items and self.bytes + len(blob) > self.limit:
            self._drop(next(iter(self.items)))
        self.items[self._next] = _State(tokens, blob)
        self._next += 1
        self.bytes += len(blob)
        self.peak_bytes = max(self.peak_bytes, self.bytes)

    def _drop(self, key: int) -> None:
        self.bytes -= len(self.items.pop(key).blob)


class ReusingLlama(Llama):
    """`llama_cpp.Llama` that reuses saved prompt states and never reads a prompt in tiny batches."""

    def __init__(self, *args, reuse: bool = True, state_bytes: int = 128 << 20, min_batch: int = 8,
                 threads: int | None = None, **kw):
        """`threads`: CPU threads for prompts and generation; None: for each, 1 or all cores,
        whichever has been faster lately (`ThreadChoice`)."""
        cores = os.cpu_count() or 1
        super().__init__(*args, **{**kw, "n_threads": threads or 1, "n_threads_batch": threads or 1})
        fixed = threads is not None or cores == 1
        self.gen_threads = None if fixed else ThreadChoice([1, cores])
        self.batch_threads = None if fixed else ThreadChoice([1, cores])
        self.reuse = reuse
        self.min_batch = max(2, min(min_batch, self.n_batch // 2))
        self.store = StateStore(state_bytes)
        self.seen = PrefixSet()
        self.canon = 0  # leading live positions read as part of a prompt (not generated)
        self.last = PromptStats()
        self.state_seconds = 0.0  # time spent saving and restoring states
        self._pending = False

    def generate(self, tokens, *args, **kwargs):
        """Choose the starting point (and save/restore states) before llama-cpp-python's own
        prefix check runs, which would otherwise trim the live context to the last prompt."""
        prompt = np.asarray(tokens, dtype=np.intc)
        self.last = PromptStats(sent=len(prompt), distinct=self.seen.add(prompt))
        start = self._reuse(prompt) if self.reuse else 0
        self.n_tokens = start
        self._ctx.kv_cache_seq_rm(-1, start, -1)
        self._pending = True  # the next eval() is this prompt's remainder
        if self.gen_threads is not None:
            self._set_threads(self.gen_threads.pick(), self.n_threads_batch)
        return super().generate(tokens, *args, **kwargs)

    def _set_threads(self, gen: int, batch: int) -> None:
        if (gen, batch) != (self.n_threads, self.n_threads_batch):
            self.n_threads = self.context_params.n_threads = gen
            self.n_threads_batch = self.context_params.n_threads_batch = batch
            llama_cpp.llama_set_n_threads(self._ctx.ctx, gen, batch)

    def reset(self) -> None:
        super().reset()
        self.canon = 0

    def eval(self, tokens) -> None:
        if not self._pending:  # a generated token: llama-cpp-python's own path, never reused
            self.canon = min(self.canon, self.n_tokens)
            t = time.perf_counter()
            super().eval(tokens)
            if self.gen_threads is not None and len(tokens) == 1:
                self.gen_threads.add(self.n_threads, time.perf_counter() - t)
            return None
        self._pending = False
        prompt = np.concatenate([self.input_ids[: self.n_tokens], np.asarray(tokens, dtype=np.intc)])
        self.eval_prompt(prompt, self.n_tokens)

    def eval_prompt(self, prompt: np.ndarray, start: int) -> None:
        """Evaluate prompt[start:] in batches of at most n_batch and at least min_batch tokens."""
        start = min(start, self.n_tokens, self.canon)
        self.n_tokens = start
        self._ctx.kv_cache_seq_rm(-1, start, -1)
        if self.batch_threads is not None and start < len(prompt):
            self._set_threads(self.n_threads, self.batch_threads.pick())
        for a, b in batches(start, len(prompt), self.n_batch, self.min_batch):
            t = time.perf_counter()
            super().eval(prompt[a:b].tolist())
            if self.batch_threads is not None:
                self.batch_threads.add(self.n_threads_batch, time.perf_counter() - t, b - a)
        self.canon = len(prompt)
        self.last.evaluated += len(prompt) - start

    def _usable(self, n: int, prompt_len: int) -> int:
        """A common prefix of n tokens, shortened so that at least min_batch tokens (or the whole
        prompt) are read: the last token's logits must come from a prompt-sized batch."""
        return max(0, min(n, prompt_len - self.min_batch))

    def _reuse(self, prompt: np.ndarray) -> int:
        """Pick where evaluation starts: the live context or a restored state, whichever shares more."""
        live_n = common_prefix(self.input_ids[: self.canon], prompt)
        live = self._usable(live_n, len(prompt))
        key, stored_n = self.store.best(prompt)
        stored = self._usable(stored_n, len(prompt))
        if stored > live:
            st = self.store.get(key)  # before saving the live context: that may evict this very state
            self._save_live()
            self._restore(st)
            self.last.restored = stored
            return stored
        if live < self.canon:
            self._save_live()  # part of the live prefix is about to be overwritten: keep it
        return live

    def _restore(self, st: _State) -> None:
        """Make a stored state the live context (sequence 0)."""
        t = time.perf_counter()
        mem = llama_cpp.llama_get_memory(self._ctx.ctx)
        llama_cpp.llama_memory_seq_rm(mem, 0, -1, -1)
        buf = (ctypes.c_uint8 * len(st.blob)).from_buffer_copy(st.blob)
        if llama_cpp.llama_state_seq_set_data(self._ctx.ctx, buf, len(st.blob), 0) == 0:
            raise RuntimeError("llama.cpp refused a saved state; cannot restore the prompt prefix")
        self.input_ids[: len(st.tokens)] = st.tokens
        self.n_tokens = self.canon = len(st.tokens)
        self.state_seconds += time.perf_counter() - t

    def _save_live(self) -> None:
        """Store the live context's canonical prefix (trimmed to it) unless a stored state covers it."""
        if self.canon == 0:
            return
        tokens = self.input_ids[: self.canon].copy()
        if self.store.covers(tokens):
            return
        t = time.perf_counter()
        self._ctx.kv_cache_seq_rm(-1, self.canon, -1)
        self.n_tokens = self.canon
        size = llama_cpp.llama_state_seq_get_size(self._ctx.ctx, 0)
        buf = (ctypes.c_uint8 * size)()
        n = llama_cpp.llama_state_seq_get_data(self._ctx.ctx, buf, size, 0)
        self.store.put(tokens, bytes(buf[:n]) if n != size else bytes(buf))
        self.state_seconds += time.perf_counter() - t
