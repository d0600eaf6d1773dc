"""The pool's own bookkeeping stays bounded however long it runs (found by ``denpo bench soak``:
the marks behind ``achieved_rate`` were pruned only when something read the rate — throttle
feedback, stats or /metrics — so a pool that was never throttled nor scraped kept one per send)."""

from __future__ import annotations

import asyncio

import pytest

from carriers.smsc import SmscSimulator
from engine.ops.config import simulator_settings
from engine.pool import CarrierPool
from tests.pool.test_pool import Sink, settings, submission, wait_until


@pytest.mark.looptime
async def test_the_sent_marks_cover_the_last_second_only() -> None:
    rate, n = 200.0, 2000  # ten seconds of sending, nobody reading the rate
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, dlr_delay_ms=10)) as sim:
        sink = Sink(total=n)
        pool = CarrierPool("docomo", settings(sim.port, rate=rate, burst=1), sink)
        async with pool:
            await wait_until(lambda: pool.binds_up == 4)
            pool.source.put_many(submission(i) for i in range(n))
            await asyncio.wait_for(sink.done.wait(), 60)
            marks = len(pool._sent_marks)
    assert len(sink.acked) == n
    assert marks <= rate + 1, f"{marks} marks kept for {n} submits"
