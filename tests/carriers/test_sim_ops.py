"""query_sm, cancel_sm, replace_sm and submit_multi."""

from __future__ import annotations

import pytest

from engine.smpp.constants import CommandId, MessageState, Status, Tag
from engine.smpp.pdu import CancelSm, DistributionList, QuerySm, ReplaceSm, SmeAddress, SubmitMulti
from tests.vtime import elapse

from .simkit import FIXED_WALL, SOURCE, bind, collect, fields, nothing_for, rid, running, sm

pytestmark = pytest.mark.looptime

N = "819012345678"


async def test_query_sm_enroute_before_the_receipt_final_after():
    async with running("docomo", dlr_delay_ms=90_000, wallclock=lambda: FIXED_WALL) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N), timeout=5)
        q = await esme.request(QuerySm(message_id=r.message_id, source_addr=SOURCE), timeout=5)
        assert q.command_id == CommandId.QUERY_SM_RESP and q.command_status == Status.ESME_ROK
        assert q.message_id == r.message_id
        assert q.message_state == MessageState.ENROUTE and q.final_date == "" and q.error_code == 0
        await elapse(89)
        q = await esme.request(QuerySm(message_id=r.message_id, source_addr=SOURCE), timeout=5)
        assert q.message_state == MessageState.ENROUTE
        (receipt,) = await collect(esme, 1, timeout=5)
        q = await esme.request(QuerySm(message_id=r.message_id, source_addr=SOURCE), timeout=5)
        assert q.message_state == MessageState.DELIVERED and q.error_code == 0
        # the final date: 09:00:15 JST + 90 s, SMPP absolute time in JST (+36 quarter hours)
        assert len(q.final_date) == 16 and q.final_date.startswith("2501010901") and q.final_date.endswith("36+")
        assert fields(receipt)["done"] == q.final_date[:10]
        await esme.close()


@pytest.mark.parametrize("knob, state, err", [("undeliverable_rate", MessageState.UNDELIVERABLE, 1), ("expired_rate", MessageState.EXPIRED, 6)])
async def test_query_sm_reports_a_failure(knob, state, err):
    async with running("au", **{knob: 1.0}) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N), timeout=5)
        await collect(esme, 1)
        q = await esme.request(QuerySm(message_id=r.message_id, source_addr=SOURCE), timeout=5)
        assert (q.message_state, q.error_code) == (state, err)
        await esme.close()


async def test_query_sm_final_even_without_a_receipt_requested():
    async with running("au") as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N, rd=0), timeout=5)
        await elapse(5)
        q = await esme.request(QuerySm(message_id=r.message_id), timeout=5)
        assert q.message_state == MessageState.DELIVERED and q.final_date
        await esme.close()


async def test_query_sm_unknown_id_fails():
    async with running("au") as sim:
        esme = await bind(sim)
        q = await esme.request(QuerySm(message_id="nope"), timeout=5)
        assert q.command_status == Status.ESME_RQUERYFAIL
        await esme.close()


async def test_cancel_before_release_turns_the_receipt_into_deleted():
    async with running("docomo", dlr_delay_ms=5000) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N), timeout=5)
        c = await esme.request(CancelSm(message_id=r.message_id, source_addr=SOURCE, destination_addr=N), timeout=5)
        assert c.command_id == CommandId.CANCEL_SM_RESP and c.command_status == Status.ESME_ROK
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id
        assert fields(receipt)["stat"] == "DELETED" and fields(receipt)["dlvrd"] == "000"
        assert receipt.tlvs[Tag.MESSAGE_STATE] == MessageState.DELETED
        q = await esme.request(QuerySm(message_id=r.message_id), timeout=5)
        assert q.message_state == MessageState.DELETED
        assert sim.stats()["cancelled"] == 1
        await esme.close()


async def test_cancel_after_release_fails():
    async with running("docomo", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1)
        assert fields(receipt)["stat"] == "DELIVRD"
        c = await esme.request(CancelSm(message_id=r.message_id, source_addr=SOURCE, destination_addr=N), timeout=5)
        assert c.command_status == Status.ESME_RCANCELFAIL
        c = await esme.request(CancelSm(message_id="unknown"), timeout=5)
        assert c.command_status == Status.ESME_RCANCELFAIL
        await esme.close()


async def test_replace_before_release_ok_after_fails():
    async with running("rakuten", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N, b"old"), timeout=5)
        rep = await esme.request(ReplaceSm(message_id=r.message_id, source_addr=SOURCE, short_message=b"new"), timeout=5)
        assert rep.command_id == CommandId.REPLACE_SM_RESP and rep.command_status == Status.ESME_ROK
        (receipt,) = await collect(esme, 1)
        assert rid(receipt) == r.message_id
        rep = await esme.request(ReplaceSm(message_id=r.message_id, source_addr=SOURCE, short_message=b"newer"), timeout=5)
        assert rep.command_status == Status.ESME_RREPLACEFAIL
        rep = await esme.request(ReplaceSm(message_id="unknown", short_message=b"x"), timeout=5)
        assert rep.command_status == Status.ESME_RREPLACEFAIL
        await esme.close()


async def test_submit_multi_one_response_and_a_receipt_per_address():
    dests = (SmeAddress("819011110001", 1, 1), DistributionList("friends"), SmeAddress("819011110002", 1, 1))
    async with running("docomo") as sim:
        esme = await bind(sim)
        resp = await esme.request(
            SubmitMulti(source_addr=SOURCE, dest_addresses=dests, registered_delivery=1, short_message=b"to all"),
            timeout=5,
        )
        assert resp.command_id == CommandId.SUBMIT_MULTI_RESP and resp.command_status == Status.ESME_ROK
        assert resp.message_id
        assert [(u.address, u.error_status_code) for u in resp.unsuccess_smes] == [("friends", Status.ESME_RINVDLNAME)]
        receipts = await collect(esme, 2)
        await nothing_for(esme, 10)
        assert sorted(p.source_addr for p in receipts) == ["819011110001", "819011110002"]
        assert resp.message_id in {rid(p) for p in receipts}
        assert all(fields(p)["stat"] == "DELIVRD" for p in receipts)
        stats = sim.stats()
        assert stats["submit_multi"] == 1 and stats["accepted"] == 2
        await esme.close()


async def test_submit_multi_names_each_refused_address():
    dests = (SmeAddress("819011110001", 1, 1), SmeAddress("819011110002", 1, 1))
    async with running("au", queue_full_rate=1.0) as sim:
        esme = await bind(sim)
        resp = await esme.request(SubmitMulti(source_addr=SOURCE, dest_addresses=dests, short_message=b"x"), timeout=5)
        assert resp.command_id == CommandId.SUBMIT_MULTI_RESP
        assert [(u.address, u.error_status_code, u.ton, u.npi) for u in resp.unsuccess_smes] == [
            ("819011110001", Status.ESME_RMSGQFUL, 1, 1),
            ("819011110002", Status.ESME_RMSGQFUL, 1, 1),
        ]
        await esme.close()


async def test_submit_multi_to_au_numbers_is_paced_per_number():
    dests = (SmeAddress("819011110001"), SmeAddress("819011110002"))
    async with running("au", dlr_delay_ms=1000) as sim:
        esme = await bind(sim)
        for _ in range(2):
            await esme.request(SubmitMulti(source_addr=SOURCE, dest_addresses=dests, registered_delivery=1, short_message=b"x"), timeout=5)
        got = await collect(esme, 4)
        assert sorted(fields(p)["stat"] for p in got) == ["DELIVRD", "DELIVRD", "UNDELIV", "UNDELIV"]
        assert sorted(sim.stats()["violation_numbers"]) == ["819011110001", "819011110002"]
        await esme.close()
