"""Binds, authentication, enquire_link and unbind, over real TCP."""

from __future__ import annotations

import asyncio

import pytest

from engine.client import BindError, SimpleEsme
from engine.smpp.constants import CommandId, Status
from engine.smpp.pdu import BindReceiver, BindTransceiver, BindTransmitter, EnquireLink, EnquireLinkResp, Unbind

from .simkit import HOST, Raw, bind, now, running, sm

BIND_KINDS = ["transmitter", "receiver", "transceiver"]
BIND_PDUS = {"transmitter": BindTransmitter, "receiver": BindReceiver, "transceiver": BindTransceiver}


@pytest.mark.parametrize("kind", BIND_KINDS)
async def test_configured_credentials_bind_each_kind(kind):
    async with running("au", system_id="acme", password="s3cret") as sim:
        esme = await bind(sim, kind, system_id="acme", password="s3cret")
        try:
            assert esme.session.is_bound
            stats = sim.stats()
            assert stats["bound"] == {k: int(k == kind) for k in BIND_KINDS}
            assert stats["bind_failures"] == 0
            assert stats[f"binds_{kind}"] == 1
        finally:
            await esme.close()


@pytest.mark.parametrize(
    "system_id, password, status",
    [
        ("acme", "wrong", Status.ESME_RINVPASWD),
        ("other", "s3cret", Status.ESME_RINVSYSID),
        ("other", "wrong", Status.ESME_RINVSYSID),
    ],
)
@pytest.mark.parametrize("kind", BIND_KINDS)
async def test_wrong_credentials_refused(kind, system_id, password, status):
    async with running("docomo", system_id="acme", password="s3cret") as sim:
        with pytest.raises(BindError) as err:
            await bind(sim, kind, system_id=system_id, password=password)
        assert err.value.status == status
        assert sim.stats()["bind_failures"] == 1
        assert sim.stats()["bound"] == {k: 0 for k in BIND_KINDS}


@pytest.mark.parametrize("password, status", [("wrong", Status.ESME_RINVPASWD), ("", Status.ESME_RINVPASWD)])
async def test_refused_bind_then_the_simulator_closes_the_connection(password, status):
    async with running("au", system_id="acme", password="s3cret") as sim:
        raw = await Raw.open(sim.port)
        try:
            raw.send(BindTransceiver(system_id="acme", password=password))
            resp = await raw.read()
            assert resp is not None and resp.command_id == CommandId.BIND_TRANSCEIVER_RESP
            assert resp.command_status == status
            # we do not close: the simulator must
            assert await raw.read(timeout=5.0) is None
        finally:
            raw.close()


async def test_refused_wrong_system_id_closes_the_connection():
    async with running("au", system_id="acme", password="s3cret") as sim:
        raw = await Raw.open(sim.port)
        try:
            raw.send(BindTransmitter(system_id="acme2", password="s3cret"))
            resp = await raw.read()
            assert resp.command_status == Status.ESME_RINVSYSID
            assert await raw.read(timeout=5.0) is None
        finally:
            raw.close()


@pytest.mark.parametrize("kind", BIND_KINDS)
@pytest.mark.parametrize("system_id, password", [("anyone", "whatever"), ("x", ""), ("", "")])
async def test_without_configured_credentials_anything_binds(kind, system_id, password):
    async with running("softbank") as sim:
        esme = await bind(sim, kind, system_id=system_id, password=password)
        try:
            assert esme.session.is_bound
            assert sim.stats()["bound"][kind] == 1
        finally:
            await esme.close()


async def test_bind_response_names_the_simulator():
    async with running("rakuten") as sim:
        raw = await Raw.open(sim.port)
        try:
            raw.send(BindTransmitter(system_id="x", password="y"))
            resp = await raw.read()
            assert resp.command_status == Status.ESME_ROK
            assert resp.system_id == "rakuten-sim"
        finally:
            raw.close()


async def test_bind_kinds_decide_what_may_be_sent():
    """A receiver bind may not submit (ESME_RINVBNDSTS); a transmitter and a transceiver may."""
    async with running("docomo") as sim:
        raw = await Raw.open(sim.port)
        try:
            raw.send(BindReceiver(system_id="x"))
            assert (await raw.read()).command_status == Status.ESME_ROK
            raw.send(sm("819011110000"))
            resp = await raw.read()
            assert resp.command_id == CommandId.SUBMIT_SM_RESP
            assert resp.command_status == Status.ESME_RINVBNDSTS
        finally:
            raw.close()
        for kind in ("transmitter", "transceiver"):
            esme = await bind(sim, kind)
            resp = await esme.request(sm("819011110000", rd=0), timeout=5)
            assert resp.command_status == Status.ESME_ROK
            await esme.close()


@pytest.mark.parametrize("kind", BIND_KINDS)
async def test_enquire_link_answered(kind):
    async with running("au") as sim:
        raw = await Raw.open(sim.port)
        try:
            raw.send(BIND_PDUS[kind](system_id="x"))
            assert (await raw.read()).command_status == Status.ESME_ROK
            seq = raw.send(EnquireLink())
            resp = await raw.read()
            assert resp.command_id == CommandId.ENQUIRE_LINK_RESP
            assert resp.sequence_number == seq
            assert resp.command_status == Status.ESME_ROK
        finally:
            raw.close()


async def test_unbind_answered_then_connection_closed():
    async with running("au") as sim:
        raw = await Raw.open(sim.port)
        try:
            raw.send(BindTransceiver(system_id="x"))
            assert (await raw.read()).command_status == Status.ESME_ROK
            seq = raw.send(Unbind())
            resp = await raw.read()
            assert resp.command_id == CommandId.UNBIND_RESP
            assert resp.sequence_number == seq and resp.command_status == Status.ESME_ROK
            assert await raw.read(timeout=5.0) is None
        finally:
            raw.close()
        assert sim.stats()["unbinds"] == 1


async def test_simple_esme_unbind_is_answered():
    async with running("docomo") as sim:
        esme = await bind(sim, "transmitter")
        resp = await esme.request(Unbind(), timeout=5)
        assert resp.command_id == CommandId.UNBIND_RESP and resp.command_status == Status.ESME_ROK
        await asyncio.wait_for(esme.lost.wait(), 5)
        await esme.close()


@pytest.mark.looptime
async def test_simulator_sends_enquire_link_when_idle_and_drops_a_silent_peer():
    """enquire_link_interval_s: after that long without traffic the simulator asks;
    unanswered for the response timeout (10 s by default), it drops the connection."""
    async with running("au", enquire_link_interval_s=5.0) as sim:
        raw = await Raw.open(sim.port)
        try:
            raw.send(BindTransmitter(system_id="x"))
            assert (await raw.read()).command_status == Status.ESME_ROK
            t0 = now()
            ping = await raw.read(timeout=60)
            assert ping.command_id == CommandId.ENQUIRE_LINK
            assert now() - t0 == pytest.approx(5.0, abs=1e-6)
            # answered: the next one comes 5 s after our answer
            raw.send(EnquireLinkResp(sequence_number=ping.sequence_number))
            t1 = now()
            ping = await raw.read(timeout=60)
            assert ping.command_id == CommandId.ENQUIRE_LINK
            assert now() - t1 == pytest.approx(5.0, abs=1e-6)
            t2 = now()
            assert await raw.read(timeout=60) is None  # not answered: dropped
            assert now() - t2 == pytest.approx(10.0, abs=1e-6)
        finally:
            raw.close()


async def test_connect_helper_reports_lost_connection_on_disconnect_all():
    async with running("au") as sim:
        esme = await SimpleEsme.connect(HOST, sim.port, system_id="x")
        assert sim.disconnect_all() == 1
        await asyncio.wait_for(esme.lost.wait(), 5)
