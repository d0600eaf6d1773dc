"""Issue acceptance 2: fairness between accounts on one carrier, time driven by the configured rate.

Scale: the issue's 100,000 queued bulk messages, as asked (no scale-down).
"""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path

import pytest

from engine.api import SubmitRequest
from tests.vtime import elapse

from ._kit import SENDERS, WALL0, config, running, settle, simulator

RATE = 100.0
DLR_S = 0.5


def _req(account: str, i: int, **kw: object) -> SubmitRequest:
    return SubmitRequest(account=account, to=f"070{i:08d}", text=f"{account} {i}", carrier="docomo", **kw)  # type: ignore[arg-type]


def _accounts(**weights: int) -> dict[str, dict[str, object]]:
    return {name: {"senders": SENDERS, "weight": w} for name, w in weights.items()}


@pytest.mark.looptime(noop_cycles=5)
async def test_high_priority_overtakes_a_bulk_backlog(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    bulk = 100_000
    async with simulator("docomo", dlr_delay_ms=DLR_S * 1000, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, accounts=_accounts(A=1, B=1), carriers={"docomo": {"rate": RATE}})
        async with running(cfg) as (engine, log):
            for k in range(0, bulk, 5_000):
                results = await settle(engine.submit_many([_req("A", i, priority="bulk") for i in range(k, k + 5_000)]))
                assert all(not isinstance(r, Exception) for r in results)
            await elapse(2.0)  # A's backlog is being worked on
            t0 = loop.time()
            b = await settle(engine.submit_many([_req("B", bulk + i, priority="high") for i in range(100)]))
            b_ids = [r.id for r in b]  # type: ignore[union-attr]
            await log.wait_finals(b_ids, timeout=bulk / RATE)
            done = max(log.finals[i].done_at for i in b_ids) - WALL0 - t0  # type: ignore[operator]
            a_final = sum(1 for e in log.finals.values() if e.account == "A")
            backlog = engine.stats()["backlog"]
    assert {log.finals[i].status for i in b_ids} == {"delivered"}
    # 100 messages at the configured rate, plus their receipt delay, plus a second
    assert done <= 100 / RATE + DLR_S + 1.0, done
    assert backlog > bulk - 600, backlog  # A's backlog is still there: B did not wait for it
    assert a_final < 600, a_final


@pytest.mark.looptime(noop_cycles=5)
async def test_weighted_accounts_share_the_rate_by_weight(tmp_path: Path) -> None:
    """Equal priority, weights 3:1, both backlogged: submits go 3:1 (deficit round robin)."""
    async with simulator("docomo", dlr_delay_ms=DLR_S * 1000, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, accounts=_accounts(A=3, B=1), carriers={"docomo": {"rate": RATE}})
        async with running(cfg) as (engine, log):
            # one call: both lanes are queued before the first submit
            requests = [_req("A", i) for i in range(900)] + [_req("B", 1000 + i) for i in range(900)]
            results = await settle(engine.submit_many(requests))
            account = {r.id: req.account for r, req in zip(results, requests)}  # type: ignore[union-attr]
            await log.wait(lambda: len(log.submitted) >= 800, timeout=60)
            order = sorted(log.submitted.values(), key=lambda e: (e.submitted_at, e.id))
    first = collections.Counter(account[e.id] for e in order[:800])
    assert first["A"] == pytest.approx(600, abs=30), first
    assert first["B"] == pytest.approx(200, abs=30), first
    # within every 40 consecutive submits (one DRR round is 30 A + 10 B) both accounts appear
    for k in range(0, 800, 40):
        window = collections.Counter(account[e.id] for e in order[k : k + 40])
        assert window["A"] >= 20 and window["B"] >= 5, (k, window)


@pytest.mark.looptime(noop_cycles=5)
async def test_equal_accounts_do_not_wait_behind_each_others_backlog(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with simulator("docomo", dlr_delay_ms=DLR_S * 1000, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, accounts=_accounts(A=1, B=1), carriers={"docomo": {"rate": RATE}})
        async with running(cfg) as (engine, log):
            await settle(engine.submit_many([_req("A", i) for i in range(3_000)]))
            await elapse(1.0)
            t0 = loop.time()
            b = await settle(engine.submit_many([_req("B", 5_000 + i) for i in range(100)]))
            b_ids = [r.id for r in b]  # type: ignore[union-attr]
            await log.wait_finals(b_ids, timeout=60)
            done = max(log.finals[i].done_at for i in b_ids) - WALL0 - t0  # type: ignore[operator]
    # equal shares: B's 100 interleave with 100 of A's, so 200 submits at the rate
    assert done <= 200 / RATE + DLR_S + 1.0, done


@pytest.mark.looptime(noop_cycles=5)
async def test_high_priority_overtakes_a_bulk_backlog_on_au(tmp_path: Path) -> None:
    """The same on au, whose messages pass the per-number pacing gate: A's bulk backlog to
    2,000 distinct numbers (none of them waits for pacing) must not be let through the
    gate ahead of B's high-priority messages."""
    loop = asyncio.get_running_loop()
    bulk = 2_000
    async with simulator("au", dlr_delay_ms=DLR_S * 1000) as sim:
        cfg = config(tmp_path, {"au": sim}, accounts=_accounts(A=1, B=1), carriers={"au": {"rate": RATE}})
        async with running(cfg) as (engine, log):
            a = [SubmitRequest(account="A", to=f"090{i:08d}", text=f"A {i}", carrier="au", priority="bulk") for i in range(bulk)]
            assert all(not isinstance(r, Exception) for r in await settle(engine.submit_many(a)))
            await elapse(2.0)
            t0 = loop.time()
            b = [SubmitRequest(account="B", to=f"0701{i:07d}", text=f"B {i}", carrier="au", priority="high") for i in range(100)]
            b_ids = [r.id for r in await settle(engine.submit_many(b))]  # type: ignore[union-attr]
            await log.wait_finals(b_ids, timeout=bulk / RATE + 30)
            done = max(log.finals[i].done_at for i in b_ids) - WALL0 - t0  # type: ignore[operator]
    assert {log.finals[i].status for i in b_ids} == {"delivered"}
    assert done <= 100 / RATE + DLR_S + 1.0, f"B's high-priority messages done {done:.1f} s after submit (A's backlog: {bulk / RATE:.0f} s)"
