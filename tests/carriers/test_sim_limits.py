"""The carriers' length limits, counted as SPEC says: UTF-16 code units of the
wire form, all parts of a concatenated message together."""

from __future__ import annotations

import pytest

from carriers.profiles import PROFILES
from engine.smpp.constants import Status, Tag
from engine.text import PROFILES as TEXT_PROFILES
from engine.text import plan

from .simkit import bind, collect, data_sm, payload_sm, rid, running, sm, submit_all, text_pdus, udh_parts

pytestmark = pytest.mark.looptime

NUMBER = "819012345678"
LIMITS = [("au", 670), ("softbank", 670), ("docomo", 660), ("rakuten", 660)]
OK, TOO_LONG = Status.ESME_ROK, Status.ESME_RINVMSGLEN


def test_simulator_limits_agree_with_spec_and_text_layer():
    for carrier, limit in LIMITS:
        assert PROFILES[carrier].max_characters == limit
        assert TEXT_PROFILES[carrier].max_characters == limit


@pytest.mark.parametrize("carrier, limit", LIMITS)
async def test_limit_in_one_message_payload_pdu(carrier, limit):
    async with running(carrier) as sim:
        esme = await bind(sim)
        ok = await esme.request(payload_sm(NUMBER, "あ" * limit), timeout=5)
        assert ok.command_status == OK and ok.message_id
        over = await esme.request(payload_sm(NUMBER, "あ" * (limit + 1)), timeout=5)
        assert over.command_status == TOO_LONG
        assert over.message_id == ""
        assert sim.stats()["too_long"] == 1
        assert sim.stats()["accepted"] == 1
        (receipt,) = await collect(esme, 1)  # only the accepted one gets a receipt
        assert rid(receipt) == ok.message_id
        await esme.close()


@pytest.mark.parametrize("carrier, limit", LIMITS)
async def test_limit_for_data_sm(carrier, limit):
    async with running(carrier) as sim:
        esme = await bind(sim)
        assert (await esme.request(data_sm(NUMBER, "亜" * limit, rd=0), timeout=5)).command_status == OK
        assert (await esme.request(data_sm(NUMBER, "亜" * (limit + 1), rd=0), timeout=5)).command_status == TOO_LONG
        await esme.close()


@pytest.mark.parametrize("carrier, limit", LIMITS)
async def test_emoji_outside_the_bmp_counts_two(carrier, limit):
    half = limit // 2
    async with running(carrier) as sim:
        esme = await bind(sim)
        assert (await esme.request(payload_sm(NUMBER, "😀" * half, rd=0), timeout=5)).command_status == OK
        assert (await esme.request(payload_sm(NUMBER, "😀" * half + "a", rd=0), timeout=5)).command_status == TOO_LONG
        await esme.close()


async def test_gsm_escape_pair_counts_one():
    """data_coding 0 (unpacked GSM 03.38): ESC + char is one character, though two octets."""
    async with running("au") as sim:
        esme = await bind(sim)
        euro = b"\x1b\x65"
        ok = sm(NUMBER, b"", rd=0, tlvs={Tag.MESSAGE_PAYLOAD: euro * 670})
        over = sm(NUMBER, b"", rd=0, tlvs={Tag.MESSAGE_PAYLOAD: euro * 670 + b"a"})
        assert (await esme.request(ok, timeout=5)).command_status == OK
        assert (await esme.request(over, timeout=5)).command_status == TOO_LONG
        await esme.close()


@pytest.mark.parametrize("carrier, limit", [("au", 670), ("docomo", 660), ("rakuten", 660)])
async def test_planned_multipart_text_at_the_limit_is_accepted(carrier, limit):
    text = "\u65e5" * limit
    pdus = text_pdus(carrier, NUMBER, text, ref=3)
    assert len(pdus) == 10
    async with running(carrier) as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, pdus)
        assert [r.command_status for r in resps] == [OK] * 10
        assert len(await collect(esme, 10)) == 10
        await esme.close()


async def test_newlines_count_as_sent_au_crlf_counts_two():
    """au sends a newline as CR LF: 335 newlines are 670 characters on the wire (the limit)."""
    p = plan("\n" * 335, "au", ref=1)
    assert p.characters == 670
    async with running("au") as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, text_pdus("au", NUMBER, "\n" * 335, ref=1, rd=0))
        assert all(r.command_status == OK for r in resps)
        # one more CR LF, hand-built as a single payload: 672 > 670
        assert (await esme.request(payload_sm(NUMBER, "\r\n" * 336, rd=0), timeout=5)).command_status == TOO_LONG
        await esme.close()


def _crossing(limit: int, per_part: int, parts: int) -> list[int]:
    statuses = []
    total = 0
    for _ in range(parts):
        total += per_part
        statuses.append(OK if total <= limit else TOO_LONG)
    return statuses


@pytest.mark.parametrize(
    "carrier, kind, per_part, parts",
    [
        ("au", "udh8", 67, 11),  # 10 parts = 670 ok, the 11th crosses
        ("au", "sar", 67, 11),
        ("docomo", "udh16", 66, 11),  # 660 ok, the 11th crosses
        ("rakuten", "udh8", 67, 10),  # 9 parts = 603, the 10th (670) crosses 660
        ("softbank", "udh8", 67, 11),
        ("docomo", "udh8", 50, 14),  # 13 × 50 = 650 ok, 14th = 700 crosses
    ],
)
async def test_concatenated_parts_together_over_the_limit(carrier, kind, per_part, parts):
    limit = PROFILES[carrier].max_characters
    texts = ["字" * per_part] * parts
    expected = _crossing(limit, per_part, parts)
    assert TOO_LONG in expected and expected[0] == OK
    async with running(carrier) as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, [p for _, p in udh_parts(NUMBER, texts, kind=kind)])
        assert [r.command_status for r in resps] == expected
        crossing = expected.index(TOO_LONG)
        assert sim.stats()["too_long"] == parts - crossing
        assert len(await collect(esme, crossing)) == crossing  # receipts for the accepted parts only
        await esme.close()


@pytest.mark.parametrize("carrier, kind", [("au", "udh8"), ("docomo", "udh16"), ("rakuten", "sar"), ("softbank", "udh8")])
async def test_concatenated_message_one_character_over_the_limit(carrier, kind):
    limit = PROFILES[carrier].max_characters
    full, rest = divmod(limit, 60)
    texts = ["字" * 60] * full + ["字" * rest] + ["字"]  # limit characters, then one more
    async with running(carrier) as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, [p for _, p in udh_parts(NUMBER, texts, kind=kind, rd=0)])
        assert [r.command_status for r in resps] == [OK] * (len(texts) - 1) + [TOO_LONG]
        # the same parts without the extra character: exactly the limit, accepted
        resps = await submit_all(esme, [p for _, p in udh_parts(NUMBER, texts[:-1], kind=kind, ref=8, rd=0)])
        assert [r.command_status for r in resps] == [OK] * (len(texts) - 1)
        await esme.close()


async def test_concatenated_parts_out_of_order_rejected_at_the_crossing_part():
    texts = ["字" * 67] * 11
    order = [11, 3, 5, 1, 2, 4, 6, 7, 8, 9, 10]
    async with running("au") as sim:
        esme = await bind(sim)
        parts = udh_parts(NUMBER, texts, order=order, rd=0)
        resps = await submit_all(esme, [p for _, p in parts])
        statuses = [r.command_status for r in resps]
        # the 11th part to arrive (part 10) takes the total to 737 > 670
        assert statuses == [OK] * 10 + [TOO_LONG]
        await esme.close()


async def test_parts_of_different_messages_do_not_add_up():
    async with running("docomo") as sim:
        esme = await bind(sim)
        for ref in (1, 2):  # two 660-character messages to the same number
            resps = await submit_all(esme, [p for _, p in udh_parts(NUMBER, ["字" * 66] * 10, kind="udh16", ref=ref, rd=0)])
            assert all(r.command_status == OK for r in resps)
        # same reference again once the first message completed: a new message
        resps = await submit_all(esme, [p for _, p in udh_parts(NUMBER, ["字" * 66] * 10, kind="udh16", ref=1, rd=0)])
        assert all(r.command_status == OK for r in resps)
        # different destination, same reference, interleaved
        a = udh_parts(NUMBER, ["字" * 66] * 10, kind="udh16", ref=5, rd=0)
        b = udh_parts("819099999999", ["字" * 66] * 10, kind="udh16", ref=5, rd=0)
        resps = await submit_all(esme, [p for pair in zip(a, b) for _, p in pair])
        assert all(r.command_status == OK for r in resps)
        await esme.close()


async def test_softbank_670_characters_in_one_message_payload_pdu():
    pdus = text_pdus("softbank", NUMBER, "ソ" * 670)
    assert len(pdus) == 1 and pdus[0].short_message == b"" and len(pdus[0].tlvs[Tag.MESSAGE_PAYLOAD]) == 1340
    async with running("softbank") as sim:
        esme = await bind(sim)
        (r,) = await submit_all(esme, pdus)
        assert r.command_status == OK
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id
        await esme.close()
