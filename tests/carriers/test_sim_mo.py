"""Mobile-originated messages injected into the simulator."""

from __future__ import annotations

import pytest

from engine.smpp.constants import EsmClass, Tag
from engine.text import parse_concat_udh

from .simkit import SilentEsme, bind, collect, is_receipt, nothing_for, running

pytestmark = pytest.mark.looptime

HANDSET = "819098765432"
ENTERPRISE = "0120123456"


def reassemble(parts) -> str:
    """Text of MO parts (UDH8/UDH16, SAR or message_payload), ordered by sequence number."""
    pieces = []
    for p in parts:
        if Tag.MESSAGE_PAYLOAD in p.tlvs:
            pieces.append((1, p.tlvs[Tag.MESSAGE_PAYLOAD]))
        elif p.esm_class & EsmClass.UDHI:
            info = parse_concat_udh(p.short_message)
            pieces.append((info.seq, p.short_message[info.header_octets :]))
        elif Tag.SAR_SEGMENT_SEQNUM in p.tlvs:
            pieces.append((p.tlvs[Tag.SAR_SEGMENT_SEQNUM], p.short_message))
        else:
            pieces.append((1, p.short_message))
    pieces.sort()
    return b"".join(b for _, b in pieces).decode("utf-16-be")


@pytest.mark.parametrize("carrier", ["au", "docomo", "softbank", "rakuten"])
async def test_short_japanese_mo(carrier):
    async with running(carrier) as sim:
        esme = await bind(sim)
        assert sim.inject_mo(source=HANDSET, destination=ENTERPRISE, text="了解です、ありがとう") == 1
        (mo,) = await collect(esme, 1)
        assert not is_receipt(mo)
        assert mo.esm_class == 0  # a normal message, no UDH
        assert mo.source_addr == HANDSET and mo.destination_addr == ENTERPRISE
        assert mo.data_coding == 0x08  # UCS-2
        assert reassemble([mo]) == "了解です、ありがとう"
        assert Tag.RECEIPTED_MESSAGE_ID not in mo.tlvs and Tag.MESSAGE_STATE not in mo.tlvs
        await nothing_for(esme, 5)
        stats = sim.stats()
        assert (stats["mo_injected"], stats["mo_sent"], stats["mo_acked"]) == (1, 1, 1)
        assert stats["receipts_sent"] == 0
        await esme.close()


@pytest.mark.parametrize("carrier, parts, udh_iei", [("au", 4, 0x00), ("rakuten", 4, 0x00), ("docomo", 4, 0x08)])
async def test_long_mo_arrives_as_concatenated_parts(carrier, parts, udh_iei):
    text = "長いメッセージ" * 35  # 245 characters
    async with running(carrier) as sim:
        esme = await bind(sim)
        assert sim.inject_mo(source=HANDSET, destination=ENTERPRISE, text=text) == parts
        got = await collect(esme, parts)
        await nothing_for(esme, 5)
        refs = set()
        for p in got:
            assert p.esm_class & EsmClass.UDHI and not is_receipt(p)
            assert p.source_addr == HANDSET and p.data_coding == 0x08
            assert p.short_message[1] == udh_iei
            info = parse_concat_udh(p.short_message)
            assert info.total == parts
            refs.add(info.ref)
        assert len(refs) == 1  # one concatenation reference for the whole message
        assert reassemble(got) == text
        assert (sim.stats()["mo_injected"], sim.stats()["mo_sent"], sim.stats()["mo_acked"]) == (1, parts, parts)
        await esme.close()


async def test_long_softbank_mo_arrives_in_one_message_payload():
    text = "ソフトバンク" * 50
    async with running("softbank") as sim:
        esme = await bind(sim)
        assert sim.inject_mo(source=HANDSET, destination=ENTERPRISE, text=text) == 1
        (mo,) = await collect(esme, 1)
        assert mo.short_message == b"" and reassemble([mo]) == text
        await esme.close()


async def test_mo_goes_to_the_named_system_id():
    async with running("au") as sim:
        a = await bind(sim, "receiver", system_id="alpha")
        b = await bind(sim, "receiver", system_id="beta")
        sim.inject_mo(source=HANDSET, destination=ENTERPRISE, text="to beta", system_id="beta")
        (mo,) = await collect(b, 1)
        assert reassemble([mo]) == "to beta"
        await nothing_for(a, 5)
        await a.close()
        await b.close()


async def test_mo_goes_to_the_configured_system_id_and_waits_for_its_bind():
    async with running("docomo", system_id="acme", password="pw") as sim:
        sim.inject_mo(source=HANDSET, destination=ENTERPRISE, text="待っていた")
        assert sim.stats()["receipts_pending"] == 1
        rx = await bind(sim, "receiver", system_id="acme", password="pw")
        (mo,) = await collect(rx, 1)
        assert reassemble([mo]) == "待っていた"
        await rx.close()


async def test_mo_without_any_target_is_refused():
    async with running("au") as sim:
        with pytest.raises(LookupError):
            sim.inject_mo(source=HANDSET, destination=ENTERPRISE, text="nobody")
        assert sim.stats()["mo_injected"] == 0


async def test_mo_not_acknowledged_is_redelivered_after_a_drop():
    async with running("au") as sim:
        silent = await bind(sim, "receiver", system_id="acme", cls=SilentEsme)
        sim.inject_mo(source=HANDSET, destination=ENTERPRISE, text="もう一度", system_id="acme")
        (first,) = await collect(silent, 1)
        silent.drop()
        rx = await bind(sim, "receiver", system_id="acme")
        (again,) = await collect(rx, 1)
        assert again.short_message == first.short_message
        await nothing_for(rx, 5)
        assert sim.stats()["mo_acked"] == 1
        await rx.close()
