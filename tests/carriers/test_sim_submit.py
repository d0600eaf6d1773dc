"""submit_sm / data_sm: unique message ids, id styles, receipt id styles."""

from __future__ import annotations

import pytest

from engine.smpp.constants import CommandId, Status, Tag

from .simkit import bind, collect, data_sm, fields, rid, running, sm

BASE = 2748  # the first id is 2749 = 0xabd: decimal and hex forms differ in every way


@pytest.mark.looptime
@pytest.mark.parametrize("carrier", ["au", "docomo", "softbank", "rakuten"])
async def test_submit_sm_and_data_sm_get_unique_ids(carrier):
    async with running(carrier) as sim:
        esme = await bind(sim)
        ids = []
        for i in range(15):
            r = await esme.request(sm(f"8190000{i:05d}", rd=0), timeout=5)
            assert r.command_id == CommandId.SUBMIT_SM_RESP and r.command_status == Status.ESME_ROK
            ids.append(r.message_id)
            r = await esme.request(data_sm(f"8180000{i:05d}", rd=0), timeout=5)
            assert r.command_id == CommandId.DATA_SM_RESP and r.command_status == Status.ESME_ROK
            ids.append(r.message_id)
        assert all(ids) and len(set(ids)) == 30
        stats = sim.stats()
        assert (stats["submit_sm"], stats["data_sm"], stats["accepted"]) == (15, 15, 30)
        await esme.close()


@pytest.mark.looptime
async def test_ids_stay_unique_across_two_simulator_runs():
    """Without message_id_base the ids come from the wall clock, so a restart does not reuse them."""
    seen = set()
    for run in range(2):
        async with running("docomo", wallclock=lambda run=run: 1_700_000_000.0 + run) as sim:
            esme = await bind(sim)
            for i in range(5):
                seen.add((await esme.request(sm("819011112222", rd=0), timeout=5)).message_id)
            await esme.close()
    assert len(seen) == 10


@pytest.mark.looptime
@pytest.mark.parametrize("style, first, second", [("decimal", "2749", "2750"), ("hex", "abd", "abe")])
@pytest.mark.parametrize("carrier", ["au", "docomo"])
async def test_message_id_style(carrier, style, first, second):
    async with running(carrier, message_id_style=style, message_id_base=BASE) as sim:
        esme = await bind(sim)
        r1 = await esme.request(sm("819011112222", rd=0), timeout=5)
        r2 = await esme.request(data_sm("819011112223", rd=0), timeout=5)
        assert (r1.message_id, r2.message_id) == (first, second)
        await esme.close()


@pytest.mark.looptime
@pytest.mark.parametrize("carrier, first", [("au", "abd"), ("softbank", "abd"), ("docomo", "2749"), ("rakuten", "2749")])
async def test_carrier_default_id_style(carrier, first):
    async with running(carrier, message_id_base=BASE) as sim:
        esme = await bind(sim)
        assert (await esme.request(sm("819011112222", rd=0), timeout=5)).message_id == first
        await esme.close()


@pytest.mark.looptime
@pytest.mark.parametrize(
    "id_style, receipt_style, resp_id, text_id",
    [
        ("decimal", "same", "2749", "2749"),
        ("hex", "same", "abd", "abd"),
        ("decimal", "hex", "2749", "abd"),
        ("hex", "decimal", "abd", "2749"),
        ("hex", "hex", "abd", "abd"),
        ("decimal", "decimal", "2749", "2749"),
    ],
)
async def test_receipt_id_style_changes_only_the_text_id(id_style, receipt_style, resp_id, text_id):
    async with running("docomo", message_id_style=id_style, receipt_id_style=receipt_style, message_id_base=BASE) as sim:
        esme = await bind(sim)
        r = await esme.request(sm("819011112222"), timeout=5)
        assert r.message_id == resp_id
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["id"] == text_id
        assert rid(receipt) == resp_id
        await esme.close()


@pytest.mark.looptime
async def test_message_id_base_sets_the_first_id():
    async with running("rakuten", message_id_base=41) as sim:
        esme = await bind(sim)
        got = [(await esme.request(sm("819011112222", rd=0), timeout=5)).message_id for _ in range(3)]
        assert got == ["42", "43", "44"]
        await esme.close()


@pytest.mark.looptime
async def test_data_sm_gets_a_receipt_for_its_id():
    async with running("au", message_id_base=BASE) as sim:
        esme = await bind(sim)
        r = await esme.request(data_sm("819011112222", "ABC"), timeout=5)
        assert r.command_id == CommandId.DATA_SM_RESP and r.message_id == "abd"
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == "abd"
        assert fields(receipt)["stat"] == "DELIVRD"
        assert fields(receipt)["text"] == "ABC"
        assert receipt.source_addr == "819011112222"
        assert receipt.tlvs[Tag.MESSAGE_STATE] == 2
        await esme.close()
