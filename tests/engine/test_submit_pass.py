"""Concurrent submit calls of one loop pass share one store accept; a caller that
gives up while its messages are being stored does not lose them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from engine.api import SubmitRequest

from ._kit import config, running, settle, simulator


def _req(i: int, **kw) -> SubmitRequest:
    return SubmitRequest(account="demo", to=f"070{i:08d}", text=f"message {i}", carrier="docomo", **kw)


@pytest.mark.looptime
async def test_one_store_accept_for_a_pass_of_submits(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=100) as sim:
        async with running(config(tmp_path, {"docomo": sim})) as (engine, log):
            calls: list[int] = []
            accept_then = engine.store.accept_then

            def counting(rows, callbacks, then):
                calls.append(len(rows))
                return accept_then(rows, callbacks, then)

            engine.store.accept_then = counting
            results = await settle(
                asyncio.gather(
                    *(engine.submit(_req(i)) for i in range(20)),
                    engine.submit_many([_req(100, client_ref="x"), _req(101, client_ref="x")]),
                )
            )
            assert calls == [22]
            singles, pair = results[:20], results[20]
            assert len({r.id for r in singles}) == 20 and all(r.status == "queued" for r in singles)
            assert pair[0].id == pair[1].id and pair[1].duplicate  # one client_ref, one message, in one insert
            await log.wait_finals([r.id for r in singles] + [pair[0].id], timeout=30)
            assert engine.counters["accepted"] == 21


@pytest.mark.looptime
async def test_a_caller_cancelled_while_storing_loses_nothing(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=100) as sim:
        async with running(config(tmp_path, {"docomo": sim})) as (engine, log):
            task = asyncio.get_running_loop().create_task(engine.submit_many([_req(i) for i in range(3)]))
            await asyncio.sleep(0)  # let it reach the store (one loop pass; not a wait for time)
            await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await settle(engine.store.flush())
            await log.wait(lambda: len(log.finals) == 3, timeout=30)  # stored, so queued and sent all the same
            assert sorted(e.to for e in log.finals.values()) == [f"+8170{i:08d}" for i in range(3)]


@pytest.mark.looptime
async def test_messages_accepted_while_a_spilled_lane_is_read_are_not_left_behind(tmp_path: Path) -> None:
    """The lane is spilled (more than the working set); while the engine reads the
    store for it, more messages are accepted for the same lane.  The read may not
    see them: the lane must stay spilled until a read does, or they are never sent."""
    async with simulator("docomo", dlr_delay_ms=50) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"working_set": 10})
        async with running(cfg) as (engine, log):
            reading = asyncio.Event()
            release = asyncio.Event()
            load_lane = engine.store.load_lane
            first = [True]

            async def slow_load_lane(*args, **kwargs):
                rows = await load_lane(*args, **kwargs)  # the snapshot is taken here...
                if first[0]:
                    first[0] = False
                    reading.set()
                    await release.wait()  # ... and the engine goes on while it is "being read"
                return rows

            engine.store.load_lane = slow_load_lane
            ids = [r.id for r in await settle(engine.submit_many([_req(i) for i in range(12)]))]  # 2 spill
            await reading.wait()
            ids += [r.id for r in await settle(engine.submit_many([_req(100 + i) for i in range(10)]))]
            release.set()
            await log.wait_finals(ids, timeout=60)
            assert all(log.finals[i].status == "delivered" for i in ids)
