"""Provider batch APIs (`llm.batch: true`): OpenAI-style `/v1/files` + `/v1/batches`, at batch price.

The stages do not change: `LLM.chat` asks the pool's `Batcher` instead of the backend when the
endpoint can batch and the pool's `batching` is on. The caller decides that (the stage context, from
the stage's declaration): calls independent of each other's replies within a round, such as
generation, annotation and judging, may wait; turn-by-turn conversations, which wait on each reply,
may not.

- Requests arriving together (a stage's `map_items` lets every item in at once in batch mode)
  are collected for `WINDOW_S` of quiet, written as one JSONL file (`custom_id` = the response
  cache key), uploaded, and submitted as one batch.
- The batch id and its cache keys are stored in the run's cache database *before* waiting, so
  a killed run that asks for the same requests again follows the same batch instead of paying
  for another.
- When the batch ends, every finished line goes into the response cache (the same cache a
  synchronous call fills); lines that failed (or a batch that failed or expired) raise
  TransientError for their requests only, so the client's retries send them again in a new batch.

    hybridtune run configs/openai.yaml --set llm.batch=true
"""
from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from ..errors import UserError
from .base import Completion, TransientError
from .limits import LoopLocal

if TYPE_CHECKING:
    from .cache import ResponseCache
    from .openai_backend import OpenAIBackend

WINDOW_S = 0.5  # quiet time that closes a batch: every item of a map_items round has asked by then
DONE = ("completed", "failed", "expired", "cancelled")
# batch `errors` codes worth a resubmission (capacity, not the request)
TRANSIENT_CODES = ("rate_limit_exceeded", "token_limit_exceeded", "server_error", "internal_error")


def validation_error(batch_id: str, info: dict) -> Exception | None:
    """The reason a batch failed as a whole (its `errors` list), as a UserError unless every code is
    transient; None when it did not fail that way."""
    errs = (info.get("errors") or {}).get("data") or []
    if info.get("status") != "failed" or not errs:
        return None
    why = "; ".join(f"line {e.get('line')}: {e.get('code')}: {e.get('message')}" for e in errs[:3])
    more = f" (and {len(errs) - 3} more)" if len(errs) > 3 else ""
    if all(e.get("code") in TRANSIENT_CODES for e in errs):
        return TransientError(f"batch {batch_id} failed: {why}{more}")
    return UserError(f"batch {batch_id} was refused by the provider: {why}{more}; fix the request (model name, "
                     "parameters) and rerun")


class _LoopState:
    """Futures and tasks of one event loop (each stage runs its own `asyncio.run`)."""

    def __init__(self):
        self.queue: dict[str, dict] = {}  # cache key -> request body, not yet submitted
        self.waiters: dict[str, list[asyncio.Future]] = {}
        self.followers: dict[str, asyncio.Task] = {}
        self.members: dict[str, set[str]] = {}  # batch id -> cache keys in it
        self.flusher: asyncio.Task | None = None
        self.last = 0.0


class Batcher:
    """One endpoint's batch queue; `complete(key, body)` resolves when the batch holding it ends."""

    def __init__(self, backend: OpenAIBackend, cache: ResponseCache | None, poll_s: float, timeout_h: float):
        self.backend = backend
        self.cache = cache
        self.poll_s = poll_s
        self.timeout_s = timeout_h * 3600
        self._state = LoopLocal(_LoopState)
        self.submitted = 0  # batches this process submitted (tests and the run summary)

    async def complete(self, key: str, body: dict) -> Completion:
        st = self._state.get()
        fut = asyncio.get_running_loop().create_future()
        st.waiters.setdefault(key, []).append(fut)
        open_ = self.cache.open_batches(self.backend.endpoint_name) if self.cache is not None else {}
        if key in open_:  # submitted by an earlier (killed) run: follow that batch, never pay twice
            self._follow(st, open_[key], {k for k, b in open_.items() if b == open_[key]})
        else:
            st.queue[key] = body
            st.last = time.monotonic()
            if st.flusher is None or st.flusher.done():
                st.flusher = asyncio.create_task(self._flush(st))
        return await fut

    def _follow(self, st: _LoopState, batch_id: str, keys: set[str]) -> None:
        st.members.setdefault(batch_id, set()).update(keys)
        if batch_id not in st.followers or st.followers[batch_id].done():
            st.followers[batch_id] = asyncio.create_task(self._wait(st, batch_id))

    def _fail(self, st: _LoopState, keys, err: Exception) -> None:
        if not isinstance(err, TransientError | UserError):  # e.g. a malformed reply: worth a retry
            err = TransientError(f"batch: {type(err).__name__}: {str(err)[:300]}")
        for k in keys:
            for f in st.waiters.pop(k, []):
                if not f.done():
                    f.set_exception(err)

    async def _flush(self, st: _LoopState) -> None:
        while time.monotonic() - st.last < WINDOW_S:
            await asyncio.sleep(WINDOW_S / 5)
        batch, st.queue = st.queue, {}
        try:
            batch_id = await self.backend.submit_batch(batch)
        except Exception as e:  # noqa: BLE001 -- every waiter gets the error; retries resubmit
            self._fail(st, list(batch), e)
            return
        self.submitted += 1
        if self.cache is not None:  # stored before waiting: a killed run follows this batch
            self.cache.add_batch(batch_id, self.backend.endpoint_name, list(batch))
        self._follow(st, batch_id, set(batch))
        if st.queue:  # requests that came in while submitting
            st.flusher = asyncio.create_task(self._flush(st))

    async def _wait(self, st: _LoopState, batch_id: str) -> None:
        t0 = time.monotonic()
        try:
            while True:
                info = await self.backend.batch_status(batch_id)
                if info["status"] in DONE:
                    break
                if time.monotonic() - t0 > self.timeout_s:
                    raise TransientError(f"batch {batch_id}: still {info['status']} after llm.batch_timeout_h; "
                                         "rerun to keep following it")
                await asyncio.sleep(self.poll_s)
            refused = validation_error(batch_id, info)
            if refused is not None:  # the whole batch was refused: its reason, not "no result" x resubmissions
                if self.cache is not None:
                    self.cache.close_batch(batch_id)
                self._fail(st, st.members.pop(batch_id, set()), refused)
                return
            done, failed = await self.backend.batch_results(info)
        except Exception as e:  # noqa: BLE001 -- the batch stays stored: a rerun follows it again
            self._fail(st, st.members.pop(batch_id, set()), e)
            return
        members = st.members.pop(batch_id, set())
        for key, comp in done.items():  # finished lines are kept even when others failed
            if self.cache is not None:
                self.cache.put(key, comp.__dict__)
            for f in st.waiters.pop(key, []):
                if not f.done():
                    f.set_result(comp)
        if self.cache is not None:
            self.cache.close_batch(batch_id)
        for key in members - set(done):
            why = failed.get(key) or "no result for this request"
            self._fail(st, [key], TransientError(f"batch {batch_id} {info['status']}: {why}"))
