"""Does aiolimiter fit the pool's rate limiting?  What it costs per message, next to ours.

    denpo bench limiter [--count 200000]

The pool asks, once per loop pass, "how many tokens now?" and takes them all
(``TokenBucket.take_up_to``), and its throttle feedback changes the rate at
run time.  aiolimiter 1.3's interface is an awaitable ``acquire`` per
acquisition (a coroutine each, a Future per waiter) plus ``has_capacity``;
its rate is fixed at construction (``_rate_per_sec`` is private).  Measured:
per-message ``await limiter.acquire()`` with capacity free, the batched
``has_capacity(n)`` + ``acquire(n)`` the pool would need, and our bucket.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from engine.flow.bucket import TokenBucket

__all__ = ["run"]


async def _aiolimiter_per_message(count: int) -> float:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(count * 10, 1.0)  # never the limiting factor
    start = time.perf_counter()
    for _ in range(count):
        await limiter.acquire()
    return time.perf_counter() - start


async def _aiolimiter_batched(count: int, batch: int) -> float:
    from aiolimiter import AsyncLimiter

    limiter = AsyncLimiter(count * 10, 1.0)
    start = time.perf_counter()
    for _ in range(count // batch):
        if limiter.has_capacity(batch):
            await limiter.acquire(batch)
    return time.perf_counter() - start


def _bucket(count: int, batch: int) -> float:
    bucket = TokenBucket(count * 10.0, burst=batch)
    now = 0.0
    start = time.perf_counter()
    for _ in range(count // batch):
        now += batch / (count * 10.0)
        bucket.take_up_to(now, batch)
    return time.perf_counter() - start


def _bucket_per_message(count: int) -> float:
    bucket = TokenBucket(count * 10.0, burst=10)
    now = 0.0
    step = 1 / (count * 10.0)
    start = time.perf_counter()
    for _ in range(count):
        now += step
        bucket.take(now)
    return time.perf_counter() - start


async def run(*, count: int = 200_000, batch: int = 100) -> dict[str, Any]:
    a1 = await _aiolimiter_per_message(count)
    a2 = await _aiolimiter_batched(count, batch)
    b1 = _bucket_per_message(count)
    b2 = _bucket(count, batch)
    return {
        "count": count,
        "batch": batch,
        "aiolimiter_acquire_per_message_ns": round(a1 / count * 1e9),
        "aiolimiter_batched_per_message_ns": round(a2 / count * 1e9),
        "token_bucket_take_per_message_ns": round(b1 / count * 1e9),
        "token_bucket_batched_per_message_ns": round(b2 / count * 1e9),
        "aiolimiter_runtime_rate_change": False,
    }


if __name__ == "__main__":  # pragma: no cover
    import json

    print(json.dumps(asyncio.run(run())))
