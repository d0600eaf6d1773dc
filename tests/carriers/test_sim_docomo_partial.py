"""docomo partial failure: some parts of a long message delivered, some not
(SPEC "Multi-part outcome": ≥ 1 delivered and ≥ 1 failed = partially_failed)."""

from __future__ import annotations

import collections

import pytest

from engine.smpp.constants import MessageState, Status, Tag
from engine.smpp.pdu import NetworkErrorCode

from .simkit import bind, collect, fields, rid, running, sm, submit_all, text_pdus

pytestmark = pytest.mark.looptime


async def send_messages(esme, count, text, *, carrier="docomo"):
    """``count`` long messages to different numbers; returns [[message_id per part], …]."""
    messages = []
    for i in range(count):
        resps = await submit_all(esme, text_pdus(carrier, f"8190700{i:05d}", text, ref=i % 256))
        assert all(r.command_status == Status.ESME_ROK for r in resps)
        messages.append([r.message_id for r in resps])
    return messages


async def outcomes(esme, messages):
    receipts = {rid(p): p for p in await collect(esme, sum(len(m) for m in messages))}
    return [[receipts[mid] for mid in m] for m in messages]


async def test_rate_1_every_multipart_message_is_partly_delivered_partly_failed():
    async with running("docomo", partial_failure_rate=1.0, seed=11) as sim:
        esme = await bind(sim)
        messages = await send_messages(esme, 20, "ド" * 300)  # 5 parts each
        assert all(len(m) == 5 for m in messages)
        failing_counts = collections.Counter()
        for parts in await outcomes(esme, messages):
            stats = [fields(p)["stat"] for p in parts]
            assert "DELIVRD" in stats and "UNDELIV" in stats, stats
            assert set(stats) == {"DELIVRD", "UNDELIV"}
            failing_counts[stats.count("UNDELIV")] += 1
            for p in parts:
                if fields(p)["stat"] == "UNDELIV":
                    assert fields(p)["err"] == "001"
                    assert p.tlvs[Tag.MESSAGE_STATE] == MessageState.UNDELIVERABLE
                    assert p.tlvs[Tag.NETWORK_ERROR_CODE] == NetworkErrorCode(3, 1)
                else:
                    assert p.tlvs[Tag.MESSAGE_STATE] == MessageState.DELIVERED
        assert set(failing_counts) <= {1, 2, 3, 4}
        assert len(failing_counts) > 1  # not always the same number of failed parts
        assert sim.stats()["partial_failures"] == 20
        await esme.close()


async def test_two_part_message_at_rate_1_has_one_of_each():
    async with running("docomo", partial_failure_rate=1.0, seed=3) as sim:
        esme = await bind(sim)
        (message,) = await send_messages(esme, 1, "ド" * 100)
        assert len(message) == 2
        ((a, b),) = await outcomes(esme, [message])
        assert sorted([fields(a)["stat"], fields(b)["stat"]]) == ["DELIVRD", "UNDELIV"]
        await esme.close()


async def test_rate_0_all_parts_delivered():
    async with running("docomo", partial_failure_rate=0.0) as sim:
        esme = await bind(sim)
        messages = await send_messages(esme, 20, "ド" * 300)
        for parts in await outcomes(esme, messages):
            assert [fields(p)["stat"] for p in parts] == ["DELIVRD"] * 5
        assert sim.stats()["partial_failures"] == 0
        await esme.close()


@pytest.mark.parametrize("text", [b"short", "短いメッセージ".encode("utf-16-be")])
async def test_single_part_messages_are_unaffected(text):
    async with running("docomo", partial_failure_rate=1.0) as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, [sm(f"81907000{i:04d}", text, dc=8 if len(text) > 5 else 0) for i in range(20)])
        receipts = await collect(esme, 20)
        assert {rid(p) for p in receipts} == {r.message_id for r in resps}
        assert all(fields(p)["stat"] == "DELIVRD" for p in receipts)
        assert sim.stats()["partial_failures"] == 0
        await esme.close()


async def test_docomo_default_rate_fails_some_but_few_multipart_messages():
    """The docomo profile's default share (5 %) applies when the knob is not set."""
    async with running("docomo", seed=5) as sim:
        esme = await bind(sim)
        messages = await send_messages(esme, 200, "ド" * 100)
        partly = sum(1 for parts in await outcomes(esme, messages) if {fields(p)["stat"] for p in parts} == {"DELIVRD", "UNDELIV"})
        assert sim.stats()["partial_failures"] == partly
        assert 1 <= partly <= 25
        await esme.close()


@pytest.mark.parametrize("carrier", ["rakuten", "au"])
async def test_other_carriers_default_to_no_partial_failure(carrier):
    async with running(carrier, seed=5) as sim:
        esme = await bind(sim)
        messages = await send_messages(esme, 100, "ラ" * 100, carrier=carrier)
        for parts in await outcomes(esme, messages):
            assert [fields(p)["stat"] for p in parts] == ["DELIVRD", "DELIVRD"]
        assert sim.stats()["partial_failures"] == 0
        await esme.close()
