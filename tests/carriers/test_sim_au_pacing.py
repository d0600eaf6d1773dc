"""au per-number pacing as the simulator counts it (SPEC "au pacing clock"):
a submit to an au number is a violation when it comes less than 12 s after the
previous message it sent a receipt for to that number ended (its last receipt),
or while such a message still awaits its receipt.  All in virtual time."""

from __future__ import annotations

import pytest

from engine.smpp.constants import MessageState, Status, Tag
from engine.smpp.pdu import NetworkErrorCode
from tests.vtime import elapse

from .simkit import bind, collect, collect_timed, fields, nothing_for, now, payload_sm, rid, running, sm, submit_all, text_pdus, udh_parts

pytestmark = pytest.mark.looptime

N = "819011112222"
M = "819033334444"


async def first_message(esme, number=N):
    """Submit one message and wait for its receipt; returns (message_id, receipt arrival time)."""
    r = await esme.request(sm(number), timeout=5)
    ((t, receipt),) = await collect_timed(esme, 1)
    assert rid(receipt) == r.message_id and fields(receipt)["stat"] == "DELIVRD"
    return r.message_id, t


async def test_second_message_before_the_first_receipt_is_a_violation():
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        r1 = await esme.request(sm(N), timeout=5)
        await elapse(0.5)
        r2 = await esme.request(sm(N), timeout=5)
        assert r2.command_status == Status.ESME_ROK  # accepted; the violation shows in the receipt
        receipts = {rid(p): p for p in await collect(esme, 2)}
        assert fields(receipts[r1.message_id])["stat"] == "DELIVRD"
        bad = receipts[r2.message_id]
        f = fields(bad)
        assert (f["stat"], f["err"], f["dlvrd"]) == ("UNDELIV", "012", "000")
        assert bad.tlvs[Tag.MESSAGE_STATE] == MessageState.UNDELIVERABLE
        assert bad.tlvs[Tag.NETWORK_ERROR_CODE] == NetworkErrorCode(3, 12)
        stats = sim.stats()
        assert stats["violations"] == 1
        assert stats["violation_numbers"] == [N]
        assert list(sim.violation_numbers) == [N]
        await esme.close()


@pytest.mark.parametrize(
    "gap, violation",
    [(0.0, True), (6.0, True), (11.9, True), (11.999, True), (12.0, False), (12.1, False), (60.0, False)],
)
async def test_gap_after_the_previous_receipt(gap, violation):
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        _, t_end = await first_message(esme)
        await elapse(t_end + gap - now())
        r = await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id
        assert sim.stats()["violations"] == int(violation)
        assert fields(receipt)["stat"] == ("UNDELIV" if violation else "DELIVRD")
        assert fields(receipt)["err"] == ("012" if violation else "000")
        await esme.close()


async def test_clock_runs_from_each_message_end_a_paced_train_has_no_violations():
    async with running("au", dlr_delay_ms=3000) as sim:
        esme = await bind(sim)
        t_end = now()
        for _ in range(5):
            await elapse(t_end + 12.0 - now())
            _, t_end = await first_message(esme)
        assert sim.stats()["violations"] == 0
        times = sim.submit_times(N)
        assert [round(b - a, 6) for a, b in zip(times, times[1:])] == [15.0] * 4
        await esme.close()


async def test_parts_of_one_message_are_not_violations_of_each_other():
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        pdus = text_pdus("au", N, "あ" * 300, ref=4)
        assert len(pdus) == 5
        resps = []
        for p in pdus:  # parts spread over 4 s: later parts come after earlier parts' receipts
            resps.append(await esme.request(p, timeout=5))
            await elapse(1.0)
        assert all(r.command_status == Status.ESME_ROK for r in resps)
        receipts = await collect(esme, 5)
        assert {rid(p) for p in receipts} == {r.message_id for r in resps}
        assert all(fields(p)["stat"] == "DELIVRD" for p in receipts)
        assert sim.stats()["violations"] == 0
        assert len(sim.submit_times(N)) == 1  # one message, tracked once (its first part)
        await esme.close()


async def _two_part_message_with_receipts_at_1_and_6(esme, t0):
    (_, p1), (_, p2) = udh_parts(N, ["前半", "後半"], ref=8)
    await esme.request(p1, timeout=5)
    await elapse(5.0)
    await esme.request(p2, timeout=5)
    got = await collect_timed(esme, 2)
    assert [round(t - t0, 6) for t, _ in got] == [1.0, 6.0]
    assert all(fields(p)["stat"] == "DELIVRD" for _, p in got)


async def test_a_multipart_message_has_not_ended_at_its_first_part_receipt():
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        t0 = now()
        await _two_part_message_with_receipts_at_1_and_6(esme, t0)
        assert sim.stats()["violations"] == 0
        await elapse(t0 + 1.0 + 12.0 - now())  # 12 s after the first part's receipt
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["err"] == "012"
        assert sim.stats()["violations"] == 1
        await esme.close()


@pytest.mark.parametrize("gap_after_last, violation", [(11.9, True), (12.0, False)])
async def test_a_multipart_message_ends_with_its_last_part_receipt(gap_after_last, violation):
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        t0 = now()
        await _two_part_message_with_receipts_at_1_and_6(esme, t0)
        await elapse(t0 + 6.0 + gap_after_last - now())
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["stat"] == ("UNDELIV" if violation else "DELIVRD")
        assert sim.stats()["violations"] == int(violation)
        await esme.close()


async def test_a_violating_message_still_ends_and_restarts_the_clock():
    """Whatever the outcome: a violating (undeliverable) message ends at its own receipt."""
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        t0 = now()
        await esme.request(sm(N), timeout=5)  # receipt at t0+1
        await elapse(0.5)
        await esme.request(sm(N), timeout=5)  # violation, its receipt at t0+1.5
        await collect(esme, 2)
        await elapse(t0 + 13.2 - now())  # 12.2 s after the first's end, 11.7 after the second's
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["err"] == "012"
        assert sim.stats()["violations"] == 2
        await esme.close()


@pytest.mark.parametrize("knob", ["undeliverable_rate", "expired_rate"])
async def test_a_failed_message_paces_like_a_delivered_one(knob):
    async with running("au", dlr_delay_ms=1000, **{knob: 1.0}) as sim:
        esme = await bind(sim)
        await esme.request(sm(N), timeout=5)
        ((t_end, receipt),) = await collect_timed(esme, 1)
        assert fields(receipt)["stat"] in ("UNDELIV", "EXPIRED") and fields(receipt)["err"] != "012"
        await elapse(t_end + 11.0 - now())
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["err"] == "012"
        assert sim.stats()["violations"] == 1
        await esme.close()


async def test_a_message_whose_receipt_is_dropped_imposes_no_pacing():
    async with running("au", dlr_delay_ms=1000, receipt_drop_rate=1.0) as sim:
        esme = await bind(sim)
        await esme.request(sm(N), timeout=5)
        await nothing_for(esme, 5)
        assert sim.stats()["receipts_dropped_messages"] == 1
        sim.update(receipt_drop_rate=0.0)
        r = await esme.request(sm(N), timeout=5)  # 5 s later: the dropped one does not count
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id and fields(receipt)["stat"] == "DELIVRD"
        assert sim.stats()["violations"] == 0
        await esme.close()


async def test_a_message_still_in_flight_when_its_receipt_is_dropped_imposes_no_pacing():
    async with running("au", dlr_delay_ms=10_000, receipt_drop_rate=1.0) as sim:
        esme = await bind(sim)
        await esme.request(sm(N), timeout=5)
        sim.update(receipt_drop_rate=0.0)
        await elapse(1.0)  # the first message's (dropped) receipt is not due yet
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1, timeout=60)
        assert fields(receipt)["stat"] == "DELIVRD"
        assert sim.stats()["violations"] == 0
        await esme.close()


@pytest.mark.parametrize("rd", [0, 2])
async def test_a_message_the_simulator_sends_no_receipt_for_imposes_no_pacing(rd):
    """SPEC: the simulator counts a violation only against "the previous message it
    *sent a receipt for*".  With registered_delivery 0 (or 2 and delivered) no
    receipt is sent, so a message right behind it is not a violation."""
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        await esme.request(sm(N, rd=rd), timeout=5)
        await nothing_for(esme, 2)
        r = await esme.request(sm(N), timeout=5)  # 1 s after the first "ended"
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id
        assert sim.stats()["violations"] == 0, "a message without a receipt imposed au pacing"
        assert fields(receipt)["stat"] == "DELIVRD"
        await esme.close()


async def test_a_held_receipt_keeps_the_message_open():
    """While its receipt waits for a receiver bind, the message has not ended."""
    async with running("au", dlr_delay_ms=1000) as sim:
        tx = await bind(sim, "transmitter", system_id="acme")
        await tx.request(sm(N), timeout=5)
        await elapse(30)
        await tx.request(sm(N), timeout=5)  # 30 s later, but the first still awaits its receipt
        assert sim.stats()["violations"] == 1
        rx = await bind(sim, "receiver", system_id="acme")
        got = await collect(rx, 2)
        assert sorted(fields(p)["stat"] for p in got) == ["DELIVRD", "UNDELIV"]
        t_end = now()  # both receipts sent now: the clock starts here
        await elapse(t_end + 12.0 - now())
        await tx.request(sm(N), timeout=5)
        (receipt,) = await collect(rx, 1)
        assert fields(receipt)["stat"] == "DELIVRD"
        assert sim.stats()["violations"] == 1
        await tx.close()
        await rx.close()


@pytest.mark.parametrize(
    "knobs, status",
    [
        ({"queue_full_rate": 1.0}, Status.ESME_RMSGQFUL),
        ({"reject_rate": 1.0}, Status.ESME_RSUBMITFAIL),
        ({"throughput_cap": 1.0, "throttle_burst": 1}, Status.ESME_RTHROTTLED),
    ],
)
async def test_refused_submits_are_not_messages_and_impose_no_pacing(knobs, status):
    async with running("au", dlr_delay_ms=1000, **knobs) as sim:
        esme = await bind(sim)
        if "throughput_cap" in knobs:
            await esme.request(sm(M, rd=0), timeout=5)  # takes the one token, to another number
        for _ in range(3):
            assert (await esme.request(sm(N), timeout=5)).command_status == status
        sim.update(queue_full_rate=0.0, reject_rate=0.0, throughput_cap=0.0)
        r = await esme.request(sm(N), timeout=5)  # right behind the refused ones
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id and fields(receipt)["stat"] == "DELIVRD"
        assert sim.stats()["violations"] == 0
        await esme.close()


async def test_a_too_long_message_imposes_no_pacing():
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        over = await esme.request(payload_sm(N, "あ" * 671), timeout=5)
        assert over.command_status == Status.ESME_RINVMSGLEN
        parts = udh_parts(N, ["字" * 67] * 11, ref=3)
        statuses = [(await esme.request(p, timeout=5)).command_status for _, p in parts]
        assert statuses[-1] == Status.ESME_RINVMSGLEN
        got = await collect_timed(esme, 10)  # the ten accepted parts: one message, no violation
        assert all(fields(p)["stat"] == "DELIVRD" for _, p in got)
        t_end = max(t for t, _ in got)
        await elapse(t_end + 12.0 - now())
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["stat"] == "DELIVRD"
        assert sim.stats()["violations"] == 0
        await esme.close()


async def test_a_multipart_message_whose_later_part_was_refused_ends_with_its_receipts():
    """Part 1 accepted, part 2 refused with a permanent error (0x45, the sender will not
    send it again): the message ended when the simulator sent its last receipt (part 1's).
    A message a minute later is no violation."""
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        (_, p1), (_, p2) = udh_parts(N, ["前半", "後半"], ref=6)
        assert (await esme.request(p1, timeout=5)).command_status == Status.ESME_ROK
        sim.update(reject_rate=1.0)
        assert (await esme.request(p2, timeout=5)).command_status == Status.ESME_RSUBMITFAIL
        sim.update(reject_rate=0.0)
        ((t_end, _),) = await collect_timed(esme, 1)
        await elapse(t_end + 60.0 - now())
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert sim.stats()["violations"] == 0, "the abandoned message still paces the number a minute later"
        assert fields(receipt)["stat"] == "DELIVRD"
        await esme.close()


@pytest.mark.parametrize("carrier", ["docomo", "softbank", "rakuten"])
async def test_other_carriers_never_count_violations(carrier):
    async with running(carrier, dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, [sm(N) for _ in range(5)])
        receipts = await collect(esme, 5)
        assert {rid(p) for p in receipts} == {r.message_id for r in resps}
        assert all(fields(p)["stat"] == "DELIVRD" for p in receipts)
        stats = sim.stats()
        assert stats["violations"] == 0 and stats["violation_numbers"] == [] and stats["au_numbers_paced"] == 0
        await esme.close()


async def test_different_numbers_do_not_interact():
    numbers = [f"8190555500{i:02d}" for i in range(20)]
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        await submit_all(esme, [sm(n) for n in numbers])
        assert sim.stats()["au_numbers_paced"] == 20
        receipts = await collect(esme, 20)
        assert all(fields(p)["stat"] == "DELIVRD" for p in receipts)
        assert sim.stats()["violations"] == 0
        # one of them again, too early: only that one is a violation
        await esme.request(sm(numbers[7]), timeout=5)
        await esme.request(sm(M), timeout=5)
        got = {p.source_addr: fields(p)["stat"] for p in await collect(esme, 2)}
        assert got == {numbers[7]: "UNDELIV", M: "DELIVRD"}
        stats = sim.stats()
        assert stats["violations"] == 1 and stats["violation_numbers"] == [numbers[7]]
        await esme.close()


async def test_violation_numbers_lists_each_violation():
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        await submit_all(esme, [sm(N), sm(N), sm(M), sm(N), sm(M)])
        await collect(esme, 5)
        stats = sim.stats()
        assert stats["violations"] == 3
        assert stats["violation_numbers"] == [N, N, M]  # the 2nd and 4th to N, the 2nd to M
        await esme.close()
