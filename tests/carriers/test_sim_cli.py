"""``denpo sim`` as a subprocess, and the stats file."""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import aiohttp
import pytest

from engine.client import SimpleEsme
from engine.smpp.constants import Status
from tests.vtime import elapse

from .simkit import HOST, bind, collect, running, sm

N = "819012345678"


async def _line(stream: asyncio.StreamReader, timeout: float = 20.0) -> dict:
    raw = await asyncio.wait_for(stream.readline(), timeout)
    assert raw, "the simulator's stdout closed early"
    return json.loads(raw)


async def _sim(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "sim", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def test_denpo_sim_ready_bind_submit_then_sigterm(tmp_path):
    stats_file = tmp_path / "au-stats.json"
    proc = await _sim(
        "--carrier", "au", "--port", "0", "--control-port", "0",
        "--system-id", "acme", "--password", "pw", "--dlr-delay-ms", "0",
        "--message-id-base", "0x100", "--stats-file", str(stats_file),
    )
    try:
        ready = await _line(proc.stdout)
        assert ready["event"] == "ready" and ready["carrier"] == "au"
        assert ready["port"] > 0 and ready["control_port"] > 0 and ready["port"] != ready["control_port"]
        esme = await SimpleEsme.connect(HOST, ready["port"], system_id="acme", password="pw", bind="transceiver")
        r = await esme.request(sm(N), timeout=10)
        assert r.command_status == Status.ESME_ROK and r.message_id == "101"  # hex ids on au, base 0x100
        (receipt,) = await collect(esme, 1, timeout=10)
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://{HOST}:{ready['control_port']}/stats") as resp:
                assert (await resp.json())["receipts_acked"] == 1
        await esme.close()
        still_bound = await SimpleEsme.connect(HOST, ready["port"], system_id="acme", password="pw", bind="receiver")
        proc.send_signal(signal.SIGTERM)
        stopped = await _line(proc.stdout)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
        await asyncio.wait_for(still_bound.lost.wait(), 5)  # connections are dropped on stop
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert stopped["event"] == "stopped"
    assert stopped["carrier"] == "au" and stopped["submit_sm"] == 1 and stopped["accepted"] == 1
    assert stopped["receipts_sent"] == 1 and stopped["receipts_acked"] == 1
    written = json.loads(stats_file.read_text())
    assert written["submit_sm"] == 1 and written["receipts_acked"] == 1
    assert N in written["submit_times"]


async def test_denpo_sim_refuses_wrong_credentials_and_stops_on_sigint():
    proc = await _sim("--carrier", "docomo", "--port", "0", "--system-id", "acme", "--password", "pw")
    try:
        ready = await _line(proc.stdout)
        assert ready["control_port"] is None
        from engine.client import BindError

        with pytest.raises(BindError) as err:
            await SimpleEsme.connect(HOST, ready["port"], system_id="acme", password="nope")
        assert err.value.status == Status.ESME_RINVPASWD
        proc.send_signal(signal.SIGINT)
        stopped = await _line(proc.stdout)
        assert stopped["event"] == "stopped" and stopped["bind_failures"] == 1
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.mark.parametrize(
    "args, mention",
    [
        (["--queue-full-rate", "2"], "queue_full_rate"),
        (["--dlr-delay-ms", "-5"], "dlr_delay_ms"),
        (["--window", "0"], "window"),
        (["--system-id", "acme"], "password"),
        (["--message-id-style", "octal"], "--message-id-style"),
        (["--port", "70000"], "port"),
    ],
)
async def test_denpo_sim_invalid_option_exits_2_naming_the_key(args, mention):
    proc = await _sim("--carrier", "au", *args)
    out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 2
    assert mention in err.decode()
    assert b"ready" not in out


async def test_stats_file_written_on_stop(tmp_path):
    path = tmp_path / "stats.json"
    async with running("docomo", stats_file=str(path), dlr_delay_ms=0) as sim:
        esme = await bind(sim)
        await esme.request(sm(N), timeout=5)
        await esme.request(sm(N, rd=0), timeout=5)
        await collect(esme, 1, timeout=5)
        await esme.close()
    stats = json.loads(path.read_text())
    assert stats["carrier"] == "docomo"
    assert stats["submit_sm"] == 2 and stats["accepted"] == 2 and stats["receipts_sent"] == 1
    assert stats["submit_times"][N] and len(stats["submit_times"][N]) == 2
    assert not path.with_suffix(".json.tmp").exists()


@pytest.mark.looptime
async def test_stats_file_also_written_while_running(tmp_path):
    path = tmp_path / "stats.json"
    async with running("au", stats_file=str(path)) as sim:
        esme = await bind(sim)
        await esme.request(sm(N, rd=0), timeout=5)
        await elapse(1.5)  # virtual: the periodic writer runs every second
        assert json.loads(path.read_text())["submit_sm"] == 1
        await esme.close()
