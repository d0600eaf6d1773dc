"""The simulator's HTTP control API (carriers/control.py), on control_port 0."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from engine.smpp.constants import Status

from .simkit import HOST, bind, collect, fields, running, sm

N = "819012345678"


@pytest.fixture
async def http():
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        yield session


def url(sim, path):
    return f"http://{HOST}:{sim.control_port}{path}"


async def test_control_port_is_off_unless_asked():
    async with running("au") as sim:
        assert sim.control_port is None


async def test_healthz(http):
    async with running("rakuten", control_port=0) as sim:
        assert sim.control_port and sim.control_port != sim.port
        async with http.get(url(sim, "/healthz")) as resp:
            assert resp.status == 200
            assert await resp.json() == {"ok": True, "carrier": "rakuten"}


async def test_stats_over_http(http):
    async with running("au", control_port=0, dlr_delay_ms=0) as sim:
        esme = await bind(sim)
        await esme.request(sm(N), timeout=5)
        await esme.request(sm("819000000001"), timeout=5)
        await collect(esme, 2, timeout=5)
        async with http.get(url(sim, "/stats")) as resp:
            assert resp.status == 200 and resp.content_type == "application/json"
            stats = await resp.json()
        assert stats["carrier"] == "au" and stats["port"] == sim.port
        assert stats["submit_sm"] == 2 and stats["accepted"] == 2
        assert stats["bound"]["transceiver"] == 1
        assert stats["violations"] == 0 and stats["violation_numbers"] == []
        assert "submit_times" not in stats
        async with http.get(url(sim, "/stats?numbers=1")) as resp:
            stats = await resp.json()
        assert set(stats["submit_times"]) == {N, "819000000001"}
        assert stats["submit_times"][N] == sim.submit_times(N)
        await esme.close()


async def test_number_submit_times(http):
    async with running("docomo", control_port=0) as sim:
        esme = await bind(sim)
        for _ in range(3):
            await esme.request(sm(N, rd=0), timeout=5)
        async with http.get(url(sim, f"/numbers/{N}")) as resp:
            body = await resp.json()
        assert body == {"number": N, "submit_times": sim.submit_times(N)}
        assert len(body["submit_times"]) == 3
        async with http.get(url(sim, "/numbers/819999999999")) as resp:
            assert (await resp.json())["submit_times"] == []
        await esme.close()


async def test_post_mo(http):
    async with running("au", control_port=0) as sim:
        esme = await bind(sim, system_id="acme")
        async with http.post(url(sim, "/mo"), json={"from": "819098765432", "to": "0120123456", "text": "こんにちは"}) as resp:
            assert resp.status == 200
            assert await resp.json() == {"parts": 1}
        (mo,) = await collect(esme, 1, timeout=5)
        assert mo.esm_class == 0 and mo.source_addr == "819098765432" and mo.destination_addr == "0120123456"
        assert mo.short_message.decode("utf-16-be") == "こんにちは"
        async with http.post(url(sim, "/mo"), json={"from": "819098765432", "to": "0120123456", "text": "x" * 200, "system_id": "acme"}) as resp:
            assert (await resp.json()) == {"parts": 3}
        assert len(await collect(esme, 3, timeout=5)) == 3
        await esme.close()


@pytest.mark.parametrize(
    "body, status, mention",
    [
        ({"to": "0120", "text": "hi"}, 400, "from"),
        ({"from": "8190", "to": "0120", "text": ""}, 400, "text"),
        ({"from": "8190", "text": "hi"}, 400, "to"),
    ],
)
async def test_post_mo_invalid(http, body, status, mention):
    async with running("au", control_port=0) as sim:
        async with http.post(url(sim, "/mo"), json=body) as resp:
            assert resp.status == status
            assert mention in (await resp.json())["error"]


async def test_post_mo_over_the_carrier_limit_is_400(http):
    async with running("docomo", control_port=0) as sim:
        esme = await bind(sim)
        async with http.post(url(sim, "/mo"), json={"from": "8190", "to": "0120", "text": "あ" * 661}) as resp:
            assert resp.status == 400
            assert "660" in (await resp.json())["error"]
        assert sim.stats()["mo_injected"] == 0
        await esme.close()


async def test_post_mo_with_nobody_to_deliver_to_is_a_conflict(http):
    async with running("au", control_port=0) as sim:
        async with http.post(url(sim, "/mo"), json={"from": "8190", "to": "0120", "text": "hi"}) as resp:
            assert resp.status == 409
            assert "error" in await resp.json()


async def test_post_knobs_takes_effect(http):
    async with running("docomo", control_port=0) as sim:
        esme = await bind(sim)
        assert (await esme.request(sm(N, rd=0), timeout=5)).command_status == Status.ESME_ROK
        async with http.post(url(sim, "/knobs"), json={"queue_full_rate": 1.0, "reject_status": 0x58}) as resp:
            assert resp.status == 200
            settings = await resp.json()
        assert settings["queue_full_rate"] == 1.0 and settings["carrier"] == "docomo" and settings["port"] == 0
        assert (await esme.request(sm(N, rd=0), timeout=5)).command_status == Status.ESME_RMSGQFUL
        async with http.post(url(sim, "/knobs"), json={"queue_full_rate": 0.0, "undeliverable_rate": 1.0, "dlr_delay_ms": 0}) as resp:
            assert resp.status == 200
        await esme.request(sm(N), timeout=5)
        (receipt,) = await collect(esme, 1, timeout=5)
        assert fields(receipt)["stat"] == "UNDELIV"
        await esme.close()


async def test_post_knobs_cannot_move_the_simulator(http):
    async with running("docomo", control_port=0) as sim:
        async with http.post(url(sim, "/knobs"), json={"carrier": "au", "port": 1234}) as resp:
            assert resp.status == 200
        assert sim.settings.carrier == "docomo" and sim.profile.name == "docomo" and sim.settings.port == 0


@pytest.mark.parametrize(
    "body, key",
    [
        ({"queue_full_rate": 2}, "queue_full_rate"),
        ({"dlr_delay_ms": -1}, "dlr_delay_ms"),
        ({"message_id_style": "octal"}, "message_id_style"),
        ({"window": 0}, "window"),
        ({"throughput_cap": "fast"}, "throughput_cap"),
        ({"no_such_knob": 1}, "no_such_knob"),
    ],
)
async def test_post_knobs_invalid_value_is_400_naming_the_key(http, body, key):
    async with running("au", control_port=0, queue_full_rate=0.0) as sim:
        async with http.post(url(sim, "/knobs"), json=body) as resp:
            assert resp.status == 400
            assert key in (await resp.json())["error"]
        assert sim.settings.queue_full_rate == 0.0 and sim.settings.dlr_delay_ms == 100.0


@pytest.mark.parametrize("path", ["/knobs", "/mo"])
@pytest.mark.parametrize("data", [b"{not json", b"[1, 2]", b""])
async def test_bad_json_is_400(http, path, data):
    async with running("au", control_port=0) as sim:
        async with http.post(url(sim, path), data=data, headers={"Content-Type": "application/json"}) as resp:
            assert resp.status == 400
            assert "error" in await resp.json()


async def test_post_disconnect_drops_every_connection(http):
    async with running("au", control_port=0) as sim:
        a = await bind(sim, "transmitter")
        b = await bind(sim, "receiver")
        async with http.post(url(sim, "/disconnect")) as resp:
            assert resp.status == 200
            assert await resp.json() == {"dropped": 2}
        await asyncio.wait_for(a.lost.wait(), 5)
        await asyncio.wait_for(b.lost.wait(), 5)
        c = await bind(sim)  # still listening
        assert c.session.is_bound
        await c.close()
