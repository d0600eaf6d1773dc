"""Receipts and MO messages when binds go away: a lost, closed or unbinding
connection never gets a deliver_sm, and what it held (or what was queued for
it) waits, nothing lost, for the next receiver bind of that system_id.

Regression: when the engine unbound all its connections at the end of a run,
the first connection_lost re-queued its unacknowledged receipts and pumped
them into a sibling bind whose session was already closed (its unbind had
been read, its connection_lost not yet run), raising SmppStateError from the
loop's callback and losing the receipt it had taken off the queue."""

from __future__ import annotations

import asyncio
from contextlib import contextmanager
from typing import Any, Iterator

import pytest

from engine.smpp.pdu import Unbind
from tests.vtime import elapse

from .simkit import SilentEsme, bind, collect, nothing_for, rid, running, sm, submit_all

pytestmark = pytest.mark.looptime

SYSTEM_ID = "acme"


@contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    """Every call of the running loop's exception handler, for the test to assert none."""
    loop = asyncio.get_running_loop()
    calls: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: calls.append(context))
    try:
        yield calls
    finally:
        loop.set_exception_handler(previous)


def describe(calls: list[dict[str, Any]]) -> list[str]:
    return [f"{c.get('message')}: {c.get('exception')!r}" for c in calls]


async def two_silent_transceivers_with_receipts_outstanding(sim: Any) -> tuple[Any, Any, Any, set[str]]:
    """Two transceivers of one system_id that answer no deliver_sm, each with
    two receipts outstanding and two free window slots (the simulator's window
    is 4): so each is a bind the other's receipts could be moved to."""
    a = await bind(sim, "transceiver", system_id=SYSTEM_ID, cls=SilentEsme)
    b = await bind(sim, "transceiver", system_id=SYSTEM_ID, cls=SilentEsme)
    tx = await bind(sim, "transmitter", system_id=SYSTEM_ID)
    ids: set[str] = set()
    for esme, first in ((a, 0), (b, 2)):  # round robin: the first pair fills a, the next goes to b
        ids |= {r.message_id for r in await submit_all(tx, [sm(f"8190000000{i:02d}") for i in (first, first + 1)])}
        await collect(esme, 2)
    assert len(ids) == 4
    assert a.delivered.empty() and b.delivered.empty()
    stats = sim.stats()
    assert stats["receipts_sent"] == 4 and stats["receipts_pending"] == 0
    return a, b, tx, ids


async def all_go_to_a_new_bind(sim: Any, ids: set[str]) -> None:
    assert sim.stats()["receipts_pending"] == len(ids)  # nothing lost, all held
    rx = await bind(sim, "receiver", system_id=SYSTEM_ID)
    got = await collect(rx, len(ids))
    assert {rid(p) for p in got} == ids
    await nothing_for(rx, 15)
    stats = sim.stats()
    assert stats["receipts_pending"] == 0 and stats["receipts_acked"] == len(ids)
    await rx.close()


async def _unbind_both(sim: Any, a: Any, b: Any) -> None:
    # both unbinds leave in the same loop pass, neither client acked anything
    a.conn.send(Unbind())
    b.conn.send(Unbind())
    await asyncio.wait_for(a.lost.wait(), 5)
    await asyncio.wait_for(b.lost.wait(), 5)


async def _simulator_drops_all(sim: Any, a: Any, b: Any) -> None:
    assert sim.disconnect_all() == 3  # a, b and the transmitter, in one call
    await asyncio.wait_for(a.lost.wait(), 5)
    await asyncio.wait_for(b.lost.wait(), 5)


async def _clients_drop_tcp(sim: Any, a: Any, b: Any) -> None:
    a.drop()
    b.drop()


@pytest.mark.parametrize("lose", [_unbind_both, _simulator_drops_all, _clients_drop_tcp], ids=["unbind", "disconnect_all", "tcp_drop"])
async def test_both_transceivers_lost_at_once_keep_their_receipts_for_the_next_bind(lose: Any) -> None:
    async with running("docomo", window=4, dlr_delay_ms=100) as sim:
        with loop_errors() as errors:
            a, b, tx, ids = await two_silent_transceivers_with_receipts_outstanding(sim)
            await lose(sim, a, b)
            await elapse(1)
            assert sim.stats()["deliver_requeued"] == 4  # each outstanding receipt once
            assert not errors, describe(errors)
            await all_go_to_a_new_bind(sim, ids)
            await tx.close()
        assert not errors, describe(errors)


async def test_ack_and_unbind_in_one_read_sends_nothing_more_on_that_bind():
    async with running("docomo", window=2, dlr_delay_ms=100) as sim:
        with loop_errors() as errors:
            silent = await bind(sim, "transceiver", system_id=SYSTEM_ID, cls=SilentEsme)
            ids = {r.message_id for r in await submit_all(silent, [sm(f"8190000000{i:02d}") for i in range(4)])}
            first, second = await collect(silent, 2)
            # the ack frees a window slot, but the unbind right behind it closes the session
            silent.ack(first)
            silent.conn.send(Unbind())
            await asyncio.wait_for(silent.lost.wait(), 5)
            await elapse(1)
            assert not errors, describe(errors)
            stats = sim.stats()
            assert stats["receipts_acked"] == 1 and stats["deliver_requeued"] == 1
            assert stats["receipts_pending"] == 3
            rx = await bind(sim, "receiver", system_id=SYSTEM_ID)
            got = await collect(rx, 3)
            assert {rid(p) for p in got} == ids - {rid(first)}
            assert rid(second) in {rid(p) for p in got}
            await nothing_for(rx, 15)
            await rx.close()
        assert not errors, describe(errors)


async def test_mo_injected_as_the_only_receiver_goes_away_waits_for_the_next_bind():
    async with running("docomo") as sim:
        with loop_errors() as errors:
            esme = await bind(sim, "transceiver", system_id=SYSTEM_ID)
            sim.disconnect_all()
            # the connection is closed but its connection_lost has not run yet
            assert sim.inject_mo(source="819011112222", destination="0120123456", text="hello", system_id=SYSTEM_ID) == 1
            await asyncio.wait_for(esme.lost.wait(), 5)
            await elapse(1)
            stats = sim.stats()
            assert stats["mo_sent"] == 0 and stats["receipts_pending"] == 1
            rx = await bind(sim, "receiver", system_id=SYSTEM_ID)
            (mo,) = await collect(rx, 1)
            assert mo.short_message.decode("utf-16-be") == "hello" and mo.source_addr == "819011112222"
            await nothing_for(rx, 5)
            assert sim.stats()["mo_acked"] == 1
            await rx.close()
        assert not errors, describe(errors)
