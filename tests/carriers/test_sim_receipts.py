"""Delivery receipts: one per part, timing, Appendix B text and TLVs, routing,
holding, re-delivery and registered_delivery."""

from __future__ import annotations

import asyncio

import pytest

from engine.smpp.constants import CommandId, EsmClass, MessageState, Status, Tag
from engine.smpp.pdu import NetworkErrorCode
from tests.vtime import elapse

from .simkit import (
    FIXED_WALL,
    SOURCE,
    SilentEsme,
    bind,
    collect,
    collect_timed,
    fields,
    is_receipt,
    nothing_for,
    now,
    payload_sm,
    rid,
    running,
    sm,
    submit_all,
    text_pdus,
)

pytestmark = pytest.mark.looptime

NUMBER = "819012345678"


def numbered_text(n: int) -> str:
    """ASCII text in which every 20-character window is different."""
    return "".join(f"{i:04d}," for i in range(n))[:n]


@pytest.mark.parametrize("carrier, parts", [("au", 5), ("rakuten", 5), ("docomo", 5)])
async def test_one_receipt_per_part_each_with_its_own_id(carrier, parts):
    text = numbered_text(300)
    pdus = text_pdus(carrier, NUMBER, text, ref=9)
    assert len(pdus) == parts and all(p.esm_class & EsmClass.UDHI for p in pdus)
    async with running(carrier, partial_failure_rate=0.0) as sim:  # docomo's default would fail some parts
        esme = await bind(sim)
        resps = await submit_all(esme, pdus)
        assert all(r.command_status == Status.ESME_ROK for r in resps)
        ids = [r.message_id for r in resps]
        assert len(set(ids)) == parts
        receipts = await collect(esme, parts)
        await nothing_for(esme, 30)
        by_id = {rid(r): r for r in receipts}
        assert set(by_id) == set(ids)
        per_part = 67 if carrier != "docomo" else 66
        for k, message_id in enumerate(ids):
            f = fields(by_id[message_id])
            assert f["id"] == message_id and f["stat"] == "DELIVRD"
            # the text: field is the first 20 characters of that part's own text
            assert f["text"] == text[k * per_part : k * per_part + 20]
        assert sim.stats()["receipts_sent"] == parts
        await esme.close()


async def test_softbank_long_text_is_one_pdu_and_one_receipt():
    pdus = text_pdus("softbank", NUMBER, "あ" * 500)
    assert len(pdus) == 1 and Tag.MESSAGE_PAYLOAD in pdus[0].tlvs
    async with running("softbank") as sim:
        esme = await bind(sim)
        (r,) = await submit_all(esme, pdus)
        assert r.command_status == Status.ESME_ROK
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id
        await nothing_for(esme, 30)
        await esme.close()


@pytest.mark.parametrize("delay_ms", [0, 250, 5000, 90_000])
async def test_receipt_arrives_after_dlr_delay_exactly(delay_ms):
    async with running("docomo", dlr_delay_ms=delay_ms) as sim:
        esme = await bind(sim)
        t0 = now()
        await esme.request(sm(NUMBER), timeout=5)
        assert now() == t0  # the response itself takes no (virtual) time
        ((t, _receipt),) = await collect_timed(esme, 1, timeout=200)
        assert t - t0 == pytest.approx(delay_ms / 1000, abs=1e-6)
        await esme.close()


async def test_receipts_keep_their_own_delay_when_submits_are_spread_out():
    async with running("rakuten", dlr_delay_ms=2000) as sim:
        esme = await bind(sim)
        t0 = now()
        sent = {}
        for i in range(4):
            r = await esme.request(sm(f"81901234000{i}"), timeout=5)
            sent[r.message_id] = now()
            await elapse(0.7)
        got = await collect_timed(esme, 4)
        for t, receipt in got:
            assert t - sent[rid(receipt)] == pytest.approx(2.0, abs=1e-6)
        assert got[-1][0] - t0 == pytest.approx(2.1 + 2.0, abs=1e-6)
        await esme.close()


async def test_dlr_spread_stays_within_bounds_and_spreads():
    async with running("docomo", dlr_delay_ms=1000, dlr_spread_ms=2000, seed=7) as sim:
        esme = await bind(sim)
        t0 = now()
        await submit_all(esme, [sm(f"8190123{i:05d}") for i in range(40)])
        assert now() == t0
        times = [t - t0 for t, _ in await collect_timed(esme, 40)]
        assert all(1.0 - 1e-6 <= t <= 3.0 + 1e-6 for t in times), times
        assert len({round(t, 6) for t in times}) >= 30
        assert min(times) < 1.5 and max(times) > 2.5  # uniform over the whole 2 s, not a constant shift
        await esme.close()


async def test_appendix_b_text_and_tlvs_of_a_delivered_receipt():
    text = b"Hello from denpo, a test message"
    async with running("docomo", dlr_delay_ms=90_000, wallclock=lambda: FIXED_WALL) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(NUMBER, text), timeout=5)
        (receipt,) = await collect(esme, 1, timeout=200)
        assert receipt.command_id == CommandId.DELIVER_SM
        assert receipt.esm_class & EsmClass.TYPE_MASK == EsmClass.SMSC_DELIVERY_RECEIPT
        assert receipt.source_addr == NUMBER  # from the handset ...
        assert receipt.destination_addr == SOURCE  # ... to the sender
        f = fields(receipt)
        assert f == {
            "id": r.message_id,
            "sub": "001",
            "dlvrd": "001",
            "submit": "2501010900",  # 09:00:15 JST
            "done": "2501010901",  # 90 s later
            "stat": "DELIVRD",
            "err": "000",
            "text": "Hello from denpo, a ",  # the first 20 characters
        }
        assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == r.message_id
        assert receipt.tlvs[Tag.MESSAGE_STATE] == MessageState.DELIVERED
        assert Tag.NETWORK_ERROR_CODE not in receipt.tlvs
        await esme.close()


@pytest.mark.parametrize(
    "text, dc, expected",
    [
        ("hello world, in UCS-2 this time".encode("utf-16-be"), 8, "hello world, in UCS-"),
        ("こんにちは、テストです".encode("utf-16-be"), 8, ""),  # not ASCII: no sample
        (b"short", 0, "short"),
    ],
)
async def test_receipt_text_sample(text, dc, expected):
    async with running("au") as sim:
        esme = await bind(sim)
        await esme.request(sm(NUMBER, text, dc=dc), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["text"] == expected
        await esme.close()


@pytest.mark.parametrize(
    "knob, stat, state, err",
    [
        ("undeliverable_rate", "UNDELIV", MessageState.UNDELIVERABLE, 1),
        ("expired_rate", "EXPIRED", MessageState.EXPIRED, 6),
    ],
)
async def test_failed_receipt_text_and_tlvs(knob, stat, state, err):
    async with running("softbank", **{knob: 1.0}) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(NUMBER, b"doomed"), timeout=5)
        assert r.command_status == Status.ESME_ROK  # accepted; the failure comes in the receipt
        (receipt,) = await collect(esme, 1)
        f = fields(receipt)
        assert (f["id"], f["sub"], f["dlvrd"], f["stat"], f["err"]) == (r.message_id, "001", "000", stat, f"{err:03d}")
        assert receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] == r.message_id
        assert receipt.tlvs[Tag.MESSAGE_STATE] == state
        assert receipt.tlvs[Tag.NETWORK_ERROR_CODE] == NetworkErrorCode(3, err)
        await esme.close()


async def test_receipt_goes_to_the_receiver_bind_not_the_transmitter():
    async with running("docomo") as sim:
        tx = await bind(sim, "transmitter", system_id="acme")
        rx = await bind(sim, "receiver", system_id="acme")
        r = await tx.request(sm(NUMBER), timeout=5)
        (receipt,) = await collect(rx, 1)
        assert rid(receipt) == r.message_id
        await nothing_for(tx, 10)
        for e in (tx, rx):
            await e.close()


async def test_receipts_for_one_system_id_never_go_to_another():
    async with running("rakuten") as sim:
        a_tx = await bind(sim, "transmitter", system_id="alpha")
        a_rx = await bind(sim, "receiver", system_id="alpha")
        b = await bind(sim, "transceiver", system_id="beta")
        ra = [(await a_tx.request(sm(f"8190000000{i}"), timeout=5)).message_id for i in range(3)]
        rb = [(await b.request(sm(f"8180000000{i}"), timeout=5)).message_id for i in range(2)]
        got_a = {rid(p) for p in await collect(a_rx, 3)}
        got_b = {rid(p) for p in await collect(b, 2)}
        assert got_a == set(ra) and got_b == set(rb)
        await nothing_for(a_rx, 30)
        await nothing_for(b, 0)
        await nothing_for(a_tx, 0)
        for e in (a_tx, a_rx, b):
            await e.close()


async def test_receipts_are_held_until_a_receiver_binds():
    async with running("au", dlr_delay_ms=1000) as sim:
        tx = await bind(sim, "transmitter", system_id="acme")
        ids = {(await tx.request(sm(f"8190000000{i}"), timeout=5)).message_id for i in range(3)}
        await elapse(60)
        assert sim.stats()["receipts_pending"] == 3
        assert sim.stats()["receipts_sent"] == 0
        other = await bind(sim, "receiver", system_id="someone-else")
        await nothing_for(other, 5)
        rx = await bind(sim, "receiver", system_id="acme")
        t = now()
        got = await collect(rx, 3)
        assert now() == t  # at once on bind
        assert {rid(p) for p in got} == ids
        assert sim.stats()["receipts_pending"] == 0
        for e in (tx, rx, other):
            await e.close()


async def test_receipt_resent_when_the_receiver_drops_before_acknowledging():
    async with running("docomo", dlr_delay_ms=500) as sim:
        tx = await bind(sim, "transmitter", system_id="acme")
        silent = await bind(sim, "receiver", system_id="acme", cls=SilentEsme)
        r = await tx.request(sm(NUMBER, b"once"), timeout=5)
        (first,) = await collect(silent, 1)
        assert rid(first) == r.message_id
        silent.drop()  # no deliver_sm_resp was sent
        await asyncio.wait_for(silent.lost.wait(), 5)
        await elapse(5)
        assert sim.stats()["receipts_pending"] == 1
        assert sim.stats()["deliver_requeued"] == 1
        rx = await bind(sim, "receiver", system_id="acme")
        (again,) = await collect(rx, 1)
        assert rid(again) == r.message_id
        assert again.short_message == first.short_message
        await nothing_for(rx, 10)
        assert sim.stats()["receipts_acked"] == 1
        await tx.close()
        await rx.close()


async def test_receipt_moves_to_another_live_receiver_when_one_drops():
    async with running("docomo", dlr_delay_ms=500) as sim:
        silent = await bind(sim, "receiver", system_id="acme", cls=SilentEsme)
        tx = await bind(sim, "transmitter", system_id="acme")
        r = await tx.request(sm(NUMBER), timeout=5)
        (first,) = await collect(silent, 1)
        rx = await bind(sim, "receiver", system_id="acme")
        await nothing_for(rx, 1)  # still outstanding on the silent one
        silent.drop()
        (again,) = await collect(rx, 1)
        assert rid(again) == rid(first) == r.message_id
        await tx.close()
        await rx.close()


async def test_nacked_receipt_is_offered_again():
    async with running("au", dlr_delay_ms=300) as sim:
        esme = await bind(sim)
        esme.ack_status = Status.ESME_RX_T_APPN
        r = await esme.request(sm(NUMBER), timeout=5)
        ((t1, first),) = await collect_timed(esme, 1)
        esme.ack_status = Status.ESME_ROK
        ((t2, again),) = await collect_timed(esme, 1)
        assert rid(first) == rid(again) == r.message_id
        assert again.short_message == first.short_message
        assert t2 - t1 == pytest.approx(1.0, abs=1e-6)  # offered again a second later
        await nothing_for(esme, 10)
        stats = sim.stats()
        assert stats["deliver_nacked"] == 1 and stats["receipts_acked"] == 1
        await esme.close()


async def test_unacknowledged_receipt_is_offered_again_after_the_response_timeout():
    async with running("docomo", dlr_delay_ms=0) as sim:
        silent = await bind(sim, cls=SilentEsme)
        r = await silent.request(sm(NUMBER), timeout=5)
        ((t1, first),) = await collect_timed(silent, 1)
        ((t2, again),) = await collect_timed(silent, 1, timeout=60)
        assert rid(again) == rid(first) == r.message_id
        assert t2 - t1 == pytest.approx(10.0 + 1.0, abs=1e-6)  # response timeout, then 1 s
        assert sim.stats()["deliver_timeouts"] == 1
        silent.ack(again)
        await silent.close()


async def test_registered_delivery_0_gets_no_receipt():
    async with running("docomo") as sim:
        esme = await bind(sim)
        r = await esme.request(sm(NUMBER, rd=0), timeout=5)
        assert r.command_status == Status.ESME_ROK
        await nothing_for(esme, 30)
        assert sim.stats()["receipts_sent"] == 0
        await esme.close()


@pytest.mark.parametrize("fail_rate, expect_receipt", [(0.0, False), (1.0, True)])
async def test_registered_delivery_2_gets_a_receipt_only_on_failure(fail_rate, expect_receipt):
    async with running("rakuten", undeliverable_rate=fail_rate) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(NUMBER, rd=2), timeout=5)
        if expect_receipt:
            (receipt,) = await collect(esme, 1)
            assert rid(receipt) == r.message_id and fields(receipt)["stat"] == "UNDELIV"
        await nothing_for(esme, 30)
        await esme.close()


async def test_registered_delivery_2_reports_an_expiry_too():
    async with running("rakuten", expired_rate=1.0) as sim:
        esme = await bind(sim)
        await esme.request(sm(NUMBER, rd=2), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["stat"] == "EXPIRED"
        await esme.close()


async def test_receipts_are_receipts_not_mo():
    async with running("au") as sim:
        esme = await bind(sim)
        await esme.request(payload_sm(NUMBER, "テスト"), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert is_receipt(receipt)
        assert receipt.data_coding == 0
        await esme.close()
