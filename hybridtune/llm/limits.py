"""Per-endpoint concurrency, rate limits and retries.

- `max_in_flight` concurrent requests (semaphore);
- requests- and tokens-per-minute as token buckets (refilled continuously);
- retries of `TransientError` with exponential backoff and full jitter, honouring
  `Retry-After` when the server sends one.
"""
from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from .base import TransientError

T = TypeVar("T")


class LoopLocal:
    """One asyncio primitive per running event loop. Each stage runs its own `asyncio.run`, and
    a Semaphore/Lock that once waited in an earlier loop raises 'bound to a different event
    loop' in the next; the pool (and its limiters) outlives the loops, so recreate per loop."""

    def __init__(self, factory: Callable[[], T]):
        self.factory = factory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._obj: T | None = None

    def get(self) -> T:
        loop = asyncio.get_running_loop()
        if self._obj is None or self._loop is not loop:
            self._loop, self._obj = loop, self.factory()
        return self._obj


class Bucket:
    """Token bucket holding up to `per_minute` tokens, refilled at per_minute/60 per second."""

    def __init__(self, per_minute: int):
        self.capacity = float(per_minute)
        self.level = float(per_minute)
        self.rate = per_minute / 60.0
        self.stamp = time.monotonic()
        self._lock = LoopLocal(asyncio.Lock)

    async def take(self, n: float) -> None:
        n = min(n, self.capacity)  # a request larger than the bucket waits for a full bucket
        async with self._lock.get():
            while True:
                now = time.monotonic()
                self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
                self.stamp = now
                if self.level >= n:
                    self.level -= n
                    return
                await asyncio.sleep((n - self.level) / self.rate)


class Limiter:
    def __init__(self, max_in_flight: int, rpm: int | None = None, tpm: int | None = None):
        self._sem = LoopLocal(lambda: asyncio.Semaphore(max_in_flight))
        self.rpm = Bucket(rpm) if rpm else None
        self.tpm = Bucket(tpm) if tpm else None

    @property
    def sem(self) -> asyncio.Semaphore:
        """The in-flight semaphore of the running event loop."""
        return self._sem.get()

    async def acquire(self, est_tokens: int) -> None:
        if self.rpm:
            await self.rpm.take(1)
        if self.tpm:
            await self.tpm.take(est_tokens)


class RetryStats:
    def __init__(self) -> None:
        self.retries = 0
        self.gave_up = 0


async def with_retries(
    fn: Callable[[], Awaitable[T]], *, max_retries: int, base_s: float, stats: RetryStats | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    attempt = 0
    while True:
        try:
            return await fn()
        except TransientError as e:
            if attempt >= max_retries:
                if stats:
                    stats.gave_up += 1
                raise
            delay = e.retry_after if e.retry_after is not None else random.uniform(0, base_s * 2**attempt)
            attempt += 1
            if stats:
                stats.retries += 1
            await sleep(min(delay, 60.0))
