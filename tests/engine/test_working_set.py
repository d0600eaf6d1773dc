"""Issue acceptance 5: a small working set with a larger backlog — messages wait in the
store, memory stays bounded, nothing is lost, per-account order holds."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from engine.api import SubmitRequest
from tests.vtime import elapse

from ._kit import SENDERS, WALL0, config, running, settle, simulator


def _req(account: str, i: int, carrier: str = "docomo", **kw: Any) -> SubmitRequest:
    prefix = "090" if carrier == "au" else "070"
    return SubmitRequest(account=account, to=f"{prefix}{i:08d}", text=f"{account} {i}", carrier=carrier, **kw)


def _peaks(engine: Any, carrier: str) -> list[int]:
    """The most queued messages the carrier held in memory (in its lanes or parked at
    the pacing gate: ``in_ram``), and separately the most admitted but unsent (its front
    queue: on their way, like the in-flight window, and bounded by it): the carrier's
    high-water marks (read, not wrapped: the native build's classes take no patches)."""
    c = engine.carriers[carrier]
    return [c.in_ram_peak, c.front_peak]


async def _sample(engine: Any, carrier: str, into: list[int]) -> None:
    while True:
        into.append(engine.stats()["carriers"][carrier]["in_memory"])
        await elapse(0.05)


@pytest.mark.looptime(noop_cycles=5)
async def test_small_working_set_spills_and_delivers_everything_in_order(tmp_path: Path) -> None:
    working_set = 100
    rate = 1000.0
    async with simulator("docomo", dlr_delay_ms=200, partial_failure_rate=0.0) as sim:
        accounts = {"A": {"senders": SENDERS}, "B": {"senders": SENDERS}}
        cfg = config(tmp_path, {"docomo": sim}, accounts=accounts, engine={"working_set": working_set}, carriers={"docomo": {"rate": rate}})
        async with running(cfg) as (engine, log):
            samples: list[int] = []
            sampler = asyncio.get_running_loop().create_task(_sample(engine, "docomo", samples))
            requests: dict[str, list[SubmitRequest]] = {"A": [], "B": []}
            ids = []
            for k in range(4):  # several accepts, the lanes spilled from the first
                batch = [_req("A", 1000 * k + i) for i in range(500)] + [_req("B", 100_000 + 1000 * k + i) for i in range(250)]
                results = await settle(engine.submit_many(batch))
                for req, res in zip(batch, results):
                    assert not isinstance(res, Exception), res
                    requests[req.account].append(req)
                    ids.append(res.id)
            await log.wait_finals(ids, timeout=120)
            sampler.cancel()
            stats = engine.stats()
            peaks = _peaks(engine, "docomo")
    assert len(ids) == 3000
    assert {log.finals[i].status for i in ids} == {"delivered"}
    assert max(samples) <= working_set
    assert peaks[0] <= working_set, peaks
    assert stats["carriers"]["docomo"]["in_memory"] == 0 and stats["backlog"] == 0 and stats["live"] == 0
    assert sim.stats()["accepted"] == 3000
    for account, reqs in requests.items():
        arrivals = [sim.submit_times("81" + r.to[1:]) for r in reqs]
        assert all(len(a) == 1 for a in arrivals), account
        first = [a[0] for a in arrivals]
        assert first == sorted(first), f"account {account}: sent out of order"


@pytest.mark.looptime
async def test_a_scheduled_message_is_not_lost_when_its_lane_has_spilled(tmp_path: Path) -> None:
    """send_at falls due while the account's lane waits in the store: the message must still go."""
    async with simulator("docomo", dlr_delay_ms=200, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"working_set": 10}, carriers={"docomo": {"rate": 20.0}})
        async with running(cfg) as (engine, log):
            (scheduled,) = [r.id for r in await settle(engine.submit_many([_req("demo", 1, send_at=WALL0 + 3.0)]))]  # type: ignore[union-attr]
            bulk = [r.id for r in await settle(engine.submit_many([_req("demo", 100 + i) for i in range(200)]))]  # type: ignore[union-attr]
            await log.wait_finals(bulk, timeout=60)
            await log.wait_finals([scheduled], timeout=30)
    assert log.finals[scheduled].status == "delivered"
    assert 3.0 <= sim.submit_times("817000000001")[0]


@pytest.mark.looptime
async def test_au_pacing_gate_does_not_hold_more_than_the_working_set(tmp_path: Path) -> None:
    """Messages waiting at the au pacing gate are queued messages in memory too: with 10 numbers
    × 30 messages and a working set of 20, memory must not fill with the whole backlog."""
    working_set = 20
    async with simulator("au", dlr_delay_ms=100) as sim:
        cfg = config(tmp_path, {"au": sim}, engine={"working_set": working_set})
        async with running(cfg) as (engine, log):
            requests = [_req("demo", n, "au") for _round in range(30) for n in range(10)]
            ids = [r.id for r in await settle(engine.submit_many(requests))]  # type: ignore[union-attr]
            await elapse(30)
            parked = engine.stats()["carriers"]["au"]["pacing"]["parked"]
            in_memory = engine.stats()["carriers"]["au"]["in_memory"]
            await log.wait_finals(ids, timeout=30 * 13 + 60)
            peaks = _peaks(engine, "au")
    assert in_memory <= working_set, f"after 30 s: {in_memory} in memory, {parked} of them parked at the pacing gate"
    assert peaks[0] <= working_set, f"peak {peaks[0]} held in memory"
    assert peaks[1] <= 100, f"peak {peaks[1]} admitted at once (window 100)"
    assert len(sim.submit_times("819000000000")) == 30  # all sent in the end (statuses: see test_pacing_scale)


@pytest.mark.looptime
async def test_backlog_survives_a_restart(tmp_path: Path) -> None:
    """Accepted while the carrier is unreachable; the engine stops; the next start sends them all, in order."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    cfg = config(tmp_path, {"docomo": dead}, engine={"working_set": 20})
    async with running(cfg) as (engine, _log):
        requests = [_req("demo", i) for i in range(100)]
        ids = [r.id for r in await settle(engine.submit_many(requests))]  # type: ignore[union-attr]
        await elapse(2)
    await elapse(1)
    async with simulator("docomo", dlr_delay_ms=200, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"working_set": 20}, carriers={"docomo": {"rate": 50.0}})
        async with running(cfg) as (engine, log):
            await log.wait_finals(ids, timeout=60)
            stats = engine.stats()
    assert {log.finals[i].status for i in ids} == {"delivered"}
    assert stats["backlog"] == 0
    first = [sim.submit_times("81" + r.to[1:])[0] for r in requests]
    assert first == sorted(first)
