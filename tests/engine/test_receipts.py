"""Issue acceptance 3: receipts at engine level, against the simulators over TCP.

Id forms, receipt before response, part receipts in any order, every row of
SPEC's multi-part outcome table (status and billable units), late receipts.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from engine.api import SubmitRequest
from engine.engine import _LINGERING
from engine.smpp.constants import EsmClass, Tag
from engine.smpp.pdu import DeliverSm
from tests.vtime import elapse

from ._kit import WALL0, config, running, settle, simulator

FIVE_PARTS = "あ" * 330  # au/docomo/rakuten: 5 parts, 5 billing units; softbank: 1 payload PDU, 1 unit


def _req(i: int, carrier: str = "docomo", text: str | None = None) -> SubmitRequest:
    return SubmitRequest(account="demo", to=f"070{i:08d}", text=text or f"message {i}", carrier=carrier)


async def _send(engine: Any, requests: list[SubmitRequest]) -> list[str]:
    results = await settle(engine.submit_many(requests))
    for r in results:
        assert not isinstance(r, Exception), r
    return [r.id for r in results]


@pytest.mark.looptime
@pytest.mark.parametrize("receipt_text", ["decimal", "auto"])
async def test_hex_response_ids_with_decimal_receipt_text(tmp_path: Path, receipt_text: str) -> None:
    async with simulator("docomo", dlr_delay_ms=300, message_id_style="hex", receipt_id_style="decimal", partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, carriers={"docomo": {"id_response": "hex", "id_receipt_text": receipt_text}})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(i) for i in range(50)] + [_req(100 + i, text=FIVE_PARTS) for i in range(5)])
            await log.wait_finals(ids, timeout=30)
            stats = engine.stats()
    assert {log.finals[i].status for i in ids} == {"delivered"}
    assert sim.stats()["receipts_sent"] == 50 + 25
    assert stats["correlator"]["matched"] == 75
    assert stats["correlator"]["orphans"] == 0
    assert all(log.finals[i].billable_units == (5 if n >= 50 else 1) for n, i in enumerate(ids))


@pytest.mark.looptime
async def test_receipt_before_response(tmp_path: Path) -> None:
    # the receipt leaves 0.2 s after the submit, its submit_sm_resp 1.5 s after
    async with simulator("docomo", dlr_delay_ms=200, response_delay_ms=1500, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(i) for i in range(20)] + [_req(100, text=FIVE_PARTS)])
            await log.wait_finals(ids, timeout=30)
            stats = engine.stats()
    assert {log.finals[i].status for i in ids} == {"delivered"}
    assert log.finals[ids[-1]].billable_units == 5
    assert stats["counters"]["receipts_held"] >= 25  # every receipt came first
    assert stats["correlator"]["released"] >= 25
    assert stats["correlator"]["orphans"] == 0


@pytest.mark.looptime
async def test_part_receipts_in_any_order(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=100, dlr_spread_ms=5000, partial_failure_rate=0.0, seed=7) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(i, text=FIVE_PARTS) for i in range(10)])
            await log.wait_finals(ids, timeout=30)
            rows = [await settle(engine.store.get(int(i, 16))) for i in ids]
    shuffled = 0
    for i, row in zip(ids, rows):
        assert log.finals[i].status == "delivered"
        assert log.finals[i].billable_units == 5
        assert row.delivered_parts == 5
        times = [p.at for p in row.part_records]
        assert len(times) == 5 and None not in times
        shuffled += times != sorted(times)
        # final only when the last part reported
        assert log.finals[i].done_at == pytest.approx(max(times))  # type: ignore[type-var]
    assert shuffled >= 5, "the simulator's spread should have shuffled most messages' part receipts"


# --- SPEC's multi-part outcome table -------------------------------------------------------------


@pytest.mark.looptime
@pytest.mark.parametrize(
    "carrier, knobs, status, billable",
    [
        ("docomo", {"partial_failure_rate": 0.0}, "delivered", 5),
        ("au", {}, "delivered", 5),
        ("rakuten", {}, "delivered", 5),
        ("softbank", {}, "delivered", 1),  # one PDU, one receipt
        ("docomo", {"partial_failure_rate": 1.0}, "partially_failed", None),  # None: the delivered parts
        ("docomo", {"undeliverable_rate": 1.0}, "undeliverable", 0),
        ("docomo", {"expired_rate": 1.0}, "expired", 0),
        ("docomo", {"receipt_drop_rate": 1.0}, "indefinite", 0),
        ("softbank", {"receipt_drop_rate": 1.0}, "indefinite", 0),
    ],
)
async def test_multi_part_outcome_table(tmp_path: Path, carrier: str, knobs: dict[str, Any], status: str, billable: int | None) -> None:
    timeout = 20.0
    async with simulator(carrier, dlr_delay_ms=500, **knobs) as sim:
        cfg = config(tmp_path, {carrier: sim}, engine={"receipt_timeout_s": timeout})
        async with running(cfg) as (engine, log):
            (mid,) = await _send(engine, [_req(1, carrier, FIVE_PARTS)])
            await log.wait_finals([mid], timeout=timeout + 10)
            view = await settle(engine.status(mid))
            row = await settle(engine.store.get(int(mid, 16)))
    event = log.finals[mid]
    assert event.status == status
    assert view is not None and view.status == status
    parts = 1 if carrier == "softbank" else 5
    assert event.parts == parts
    delivered = sum(1 for p in row.part_records if p.state == "delivered")
    if status == "partially_failed":
        assert 1 <= delivered < 5
        billable = delivered
    if status in ("partially_failed", "undeliverable", "expired"):
        # the failed part's stat/err, even when the last receipt was a delivered part's
        assert event.error is not None and event.error.get("stat") not in (None, "DELIVRD"), event.error
        assert view.error == event.error
    assert event.billable_units == billable, (event.billable_units, row.part_records)
    assert view.billable_units == billable
    assert view.billing_units == 5 if carrier in ("au", "docomo", "rakuten") else 1
    if status == "indefinite":
        # final when the receipt timeout fired (the engine's once-a-second timer), not before
        assert event.submitted_at is not None and event.done_at is not None
        assert timeout <= event.done_at - event.submitted_at <= timeout + 1.5
        assert view.error is not None
    else:
        assert row.delivered_parts == delivered


# --- late receipts ---------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_late_receipt_updates_an_indefinite_message(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=8000, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"receipt_timeout_s": 3})
        async with running(cfg) as (engine, log):
            (mid,) = await _send(engine, [_req(1)])
            await log.wait(lambda: len(log.finals_by_id[mid]) >= 2, timeout=30)
            view = await settle(engine.status(mid))
    first, second = log.finals_by_id[mid]
    assert (first.status, first.billable_units, first.late) == ("indefinite", 0, False)
    assert 3 <= first.done_at - first.submitted_at <= 4.5  # type: ignore[operator]
    assert (second.status, second.billable_units, second.late) == ("delivered", 1, True)
    assert second.done_at - WALL0 == pytest.approx(8.0, abs=0.1)  # type: ignore[operator]
    assert view is not None and view.status == "delivered" and view.billable_units == 1
    statuses = [h["status"] for h in view.history]
    assert "indefinite" in statuses and statuses[-1] == "delivered", view.history


@pytest.mark.looptime
@pytest.mark.parametrize("text", ["one part", FIVE_PARTS])
async def test_a_late_receipt_after_a_restart_still_updates_an_indefinite_message(tmp_path: Path, text: str) -> None:
    """Indefinite at 3 s, the engine restarts at ~5 s, the receipts come at 12 s to the new bind."""
    async with simulator("docomo", dlr_delay_ms=12000, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"receipt_timeout_s": 3})
        async with running(cfg) as (engine, log):
            (mid,) = await _send(engine, [_req(1, text=text)])
            await log.wait_finals([mid], timeout=30)
            live = engine.stats()["live"]  # indefinite: only the correlator keeps it (bounded)
        first = log.finals[mid]
        assert live == 0
        async with running(cfg) as (engine, log2):
            await log2.wait(lambda: bool(log2.finals_by_id[mid]), timeout=30)
            view = await settle(engine.status(mid))
    assert first.status == "indefinite"
    (late,) = log2.finals_by_id[mid]
    parts = 5 if text == FIVE_PARTS else 1
    assert (late.status, late.billable_units, late.late) == ("delivered", parts, True)
    assert view is not None and view.status == "delivered" and view.billable_units == parts


@pytest.mark.looptime
async def test_late_part_receipts_complete_a_multi_part_message(tmp_path: Path) -> None:
    """Some parts report before the timeout (recorded, not billed: indefinite), the rest after it."""
    async with simulator("docomo", dlr_delay_ms=0, dlr_spread_ms=20000, partial_failure_rate=0.0, seed=3) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"receipt_timeout_s": 10})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(i, text=FIVE_PARTS) for i in range(6)])
            await log.wait(lambda: all(log.finals_by_id[i] and log.finals_by_id[i][-1].status == "delivered" for i in ids), timeout=60)
            rows = {i: await settle(engine.store.get(int(i, 16))) for i in ids}
    mixed = 0
    for i in ids:
        events = log.finals_by_id[i]
        if len(events) == 1:  # every part reported before the timeout
            assert events[0].status == "delivered" and not events[0].late
            continue
        mixed += 1
        first, last = events[0], events[-1]
        assert first.status == "indefinite" and first.billable_units == 0 and not first.late
        assert last.status == "delivered" and last.billable_units == 5 and last.late
        assert all(e.late for e in events[1:])
        assert rows[i].delivered_parts == 5 and rows[i].billable_units == 5
    assert mixed >= 3, "the spread should leave some parts after the timeout"


@pytest.mark.looptime
async def test_late_au_receipt_restarts_the_pacing_clock(tmp_path: Path) -> None:
    """au: the receipt timeout (5 s) fires before the receipt (8 s).  The pacing clock first
    counts from the timeout; the late receipt then shows the message ended at 8 s, so the
    next message to the number may go no earlier than 8 + 12 = 20 s (the carrier's rule and
    the simulator's; engine.flow.pacing: a late receipt *pushes* the number's clock)."""
    async with simulator("au", dlr_delay_ms=8000) as sim:
        cfg = config(tmp_path, {"au": sim}, engine={"receipt_timeout_s": 5})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(1, "au"), _req(1, "au")])
            await log.wait(lambda: all(i in log.finals for i in ids) and len(log.late) >= 2, timeout=120)
    times = sim.submit_times("8170" + "00000001")
    assert len(times) == 2
    assert times[1] - times[0] >= 8.0 + 12.0, f"second message sent {times[1] - times[0]:.2f} s after the first; its late receipt came at 8 s"
    assert sim.stats()["violations"] == 0
    assert [e.status for e in log.late] == ["delivered", "delivered"]


@pytest.mark.looptime
async def test_a_part_refused_after_others_were_accepted_bills_the_delivered_ones(tmp_path: Path) -> None:
    """A 5-part message whose 3rd part the carrier refuses: parts 1-2 may still reach the
    handset, so they are billed by the multi-part table; the rest is not sent."""
    async with simulator("docomo", dlr_delay_ms=300, partial_failure_rate=0.0, reject_rate=0.3, seed=5) as sim:
        cfg = config(tmp_path, {"docomo": sim}, carriers={"docomo": {"binds": 1, "window": 1}})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(i, "docomo", FIVE_PARTS) for i in range(20)])
            await log.wait_finals(ids, timeout=60)
    finals = [log.finals[i] for i in ids]
    statuses = {e.status for e in finals}
    assert statuses <= {"rejected", "partially_failed", "delivered"}, statuses
    assert "partially_failed" in statuses and "rejected" in statuses, statuses
    # every part the carrier accepted was delivered (partial_failure_rate 0): all billed
    assert sum(e.billable_units for e in finals) == sim.stats()["accepted"]
    for e in finals:
        if e.status == "partially_failed":
            assert e.error is not None and e.error["smpp_status"] == 0x45, e.error
            assert 1 <= e.billable_units < 5
        if e.status == "rejected":
            assert e.billable_units == 0


@pytest.mark.looptime
async def test_an_orphan_receipt_is_counted_and_kept_for_inspection(tmp_path: Path) -> None:
    from engine.smpp.pdu import DeliverSm

    async with simulator("docomo", dlr_delay_ms=100, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            text = b"id:99999 sub:001 dlvrd:001 submit date:2611220101 done date:2611220101 stat:UNDELIV err:001 text:x"
            receipt = DeliverSm(esm_class=0x04, source_addr="817000000001", destination_addr="0120", short_message=text)
            acked = engine.carriers["docomo"].delivered(receipt, "b0", asyncio.get_running_loop().time(), lambda *a: None)
            await elapse(65)  # held for a response that never comes (pending_ttl 60 s), then an orphan
            orphans = engine.orphan_receipts()
            counted = engine.stats()["counters"]["orphan_receipts"]
    assert acked is False  # answered at once: nothing to store
    assert counted == 1
    assert [(o["carrier"], o["reason"], o["message_id"], o["stat"], o["err"]) for o in orphans] == [
        ("docomo", "expired", "99999", "UNDELIV", "001")
    ]


@pytest.mark.looptime
async def test_a_duplicate_final_receipt_is_acked_changes_nothing_and_keeps_no_message_alive(tmp_path: Path) -> None:
    # an SMSC re-sends a receipt whose deliver_sm_resp it lost: within the linger it still
    # matches, but the correlator holds a marker for it, not the finished message
    async with simulator("docomo", dlr_delay_ms=100, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(i) for i in range(3)])
            await log.wait_finals(ids, timeout=30)
            lingering = engine.correlator._carriers["docomo"].lingering
            assert len(lingering) == 3 and all(e.ref is _LINGERING for e in lingering.values())
            key = next(iter(lingering))
            acked = asyncio.Event()
            body = b"id:%s sub:001 dlvrd:000 submit date:2611220000 done date:2611220000 stat:UNDELIV err:001 text:" % key.encode()
            pdu = DeliverSm(esm_class=EsmClass.SMSC_DELIVERY_RECEIPT, short_message=body, tlvs={Tag.RECEIPTED_MESSAGE_ID: key, Tag.MESSAGE_STATE: 5})
            now = asyncio.get_running_loop().time()
            assert engine.carriers["docomo"].delivered(pdu, "docomo-1", now, lambda *a, **k: acked.set()) is True
            await asyncio.wait_for(acked.wait(), 10)  # answered once the store caught up
            assert engine.counters["receipts_duplicate"] == 1
            views = [await settle(engine.status(i)) for i in ids]
    assert [v.status for v in views] == ["delivered"] * 3  # the duplicate "UNDELIV" changed nothing



@pytest.mark.looptime
async def test_the_receipt_linger_is_configured_and_reloaded(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=100, partial_failure_rate=0.0) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"receipt_linger_s": 0})
        async with running(cfg) as (engine, log):
            ids = await _send(engine, [_req(i) for i in range(3)])
            await log.wait_finals(ids, timeout=30)
            assert len(engine.correlator._carriers["docomo"].lingering) == 0  # forgotten at once
            applied, _refused = engine.reload(config(tmp_path, {"docomo": sim}, engine={"receipt_linger_s": 30}))
            assert "engine" in applied
            more = await _send(engine, [_req(10 + i) for i in range(2)])
            await log.wait_finals(more, timeout=30)
            assert len(engine.correlator._carriers["docomo"].lingering) == 2
            await elapse(31)
            engine.correlator.expire(asyncio.get_running_loop().time())
            assert len(engine.correlator._carriers["docomo"].lingering) == 0
