"""denpo bench kannel: Kannel's config, the very same requests to both sides, the callback
receiver, and (with Kannel installed, or installed here by bench/kannel/install.sh) a tiny real
run and the clean-up after a failed one."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from bench import kannel_bench
from bench.http_bench import RawClient, _children, _client, build_request
from bench.kannel_bench import (
    DLR_MASK,
    DlrReceiver,
    client_spec,
    denpo_config,
    kannel_config,
)
from engine.numbers import CarrierLookup
from engine.ops.config import load_config

TOKEN = "tok-" + "x" * 39


def _groups(text: str) -> list[dict[str, str]]:
    """Kannel's config as a list of groups (key → value, quotes removed)."""
    groups: list[dict[str, str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = (part.strip() for part in line.partition("="))
        value = value.strip('"')
        if key == "group":
            groups.append({"group": value})
        else:
            assert groups, f"{key} outside any group"
            assert key not in groups[-1], f"{key} twice in group {groups[-1]['group']}"
            groups[-1][key] = value
    return groups


def test_kannel_config_one_transceiver_window_100_quiet_logs(tmp_path):
    conf = kannel_config(tmp_path, sim_port=4321, token=TOKEN)
    text = conf["path"].read_text()
    assert "$" not in text  # every placeholder filled
    groups = _groups(text)
    assert [g["group"] for g in groups] == ["core", "smsc", "smsbox", "sendsms-user"]
    core, smsc, smsbox, user = groups
    assert smsc["smsc"] == "smpp" and smsc["transceiver-mode"] == "true" and smsc["receive-port"] == "0"
    assert smsc["max-pending-submits"] == "100"  # Kannel's default window is 10
    assert "throughput" not in smsc  # no cap
    assert (smsc["host"], smsc["port"]) == ("127.0.0.1", "4321")
    assert (smsc["smsc-username"], smsc["smsc-password"]) == (kannel_bench.SYSTEM_ID, kannel_bench.SMPP_PASSWORD)
    assert core["log-level"] == smsbox["log-level"] == "2"  # Kannel's default is 0, debug
    assert core["dlr-storage"] == "internal" and core["sms-resend-freq"] == "1"
    assert "store-type" not in core and "store-location" not in core and "access-log" not in core
    assert core["smsbox-port"] == smsbox["bearerbox-port"] == str(conf["smsbox_port"])
    assert (core["admin-port"], smsbox["sendsms-port"]) == (str(conf["admin_port"]), str(conf["sendsms_port"]))
    assert (user["username"], user["password"]) == ("demo", TOKEN)  # denpo's account and token
    assert all(g.get("log-file", str(tmp_path)).startswith(str(tmp_path)) for g in groups)


def test_denpo_config_one_bind_docomo_only_no_json_notifications(tmp_path):
    config = load_config(denpo_config(tmp_path, sim_port=4321, token=TOKEN, receiver_port=9999))
    assert list(config.carriers) == ["docomo"] and not config.simulators
    docomo = config.carriers["docomo"]
    assert (docomo.binds, docomo.window, docomo.bind_mode) == (1, 100, "transceiver")
    assert [(e.host, e.port) for e in docomo.endpoints] == [("127.0.0.1", 4321)]
    demo = config.accounts["demo"]
    assert demo.result_url is None  # the dlr-url callback is the one per message
    assert kannel_bench.SENDER in demo.senders["docomo"]
    assert demo.rate_limit >= 1_000_000
    lookup = config.lookup
    table = CarrierLookup(fallback=dict(lookup.prefixes) if lookup.prefix_fallback else None)
    assert table.lookup("+819000000001") == "docomo"


class _Recorder(asyncio.Protocol):
    """A stand-in gateway: keeps every request's bytes, answers Kannel's 202."""

    REPLY = b"HTTP/1.1 202 Accepted\r\nContent-Length: 24\r\n\r\n0: Accepted for delivery"

    def __init__(self, requests: list[bytes]) -> None:
        self.requests = requests
        self.buffer = b""

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            request, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
            self.requests.append(request + b"\r\n\r\n")
            self.transport.write(self.REPLY)


async def test_both_sides_get_byte_identical_requests():
    loop = asyncio.get_running_loop()
    seen: dict[str, list[bytes]] = {"kannel": [], "denpo": []}
    servers = {side: await loop.create_server(lambda side=side: _Recorder(seen[side]), "127.0.0.1", 0) for side in seen}
    try:
        results = {}
        for side, server in servers.items():
            port = server.sockets[0].getsockname()[1]
            spec = client_spec(port, token=TOKEN, receiver_port=5555, count=40, concurrency=4)
            results[side] = await _client(spec)
    finally:
        for server in servers.values():
            server.close()
    assert results["kannel"]["accepted"] == results["denpo"]["accepted"] == 40
    assert len(seen["kannel"]) == 40 and sorted(seen["kannel"]) == sorted(seen["denpo"])
    for raw in seen["kannel"]:
        line, *headers = raw.decode("ascii").split("\r\n")
        assert line.startswith("GET /cgi-bin/sendsms?") and line.endswith(" HTTP/1.1")
        assert not any(h.lower().startswith("authorization") for h in headers)
        params = dict(p.split("=", 1) for p in line.split(" ")[1].split("?", 1)[1].split("&"))
        assert params["username"] == "demo" and params["password"] == TOKEN
        assert params["dlr-mask"] == str(DLR_MASK) == "19"  # delivered 1 + undelivered 2 + SMSC reject 16
        n = int(params["to"][3:])
        assert unquote(params["dlr-url"]) == f"http://127.0.0.1:5555/dlr?id={n}&d=%d"
        assert unquote(params["text"]).endswith(f"({n})") and params["coding"] == "2"
    assert {int(r.split(b"&to=")[1][:11]) for r in seen["denpo"]} == {9000000000 + i for i in range(40)}


async def test_receiver_counts_one_final_callback_per_message():
    receiver = await DlrReceiver().start()
    conn = await RawClient.connect("127.0.0.1", receiver.port)
    try:
        for target in ("/dlr?id=1&d=1", "/dlr?id=2&d=2", "/dlr?id=1&d=1", "/dlr?id=3&d=16"):
            status, _head, _body = await conn.request(build_request("x", target, "", b"", "GET"))
            assert status == 200
    finally:
        conn.transport.close()
        await receiver.close()
    assert len(receiver.finals) == 3 and receiver.callbacks == 4 and len(receiver.seen) == 3
    assert receiver.values == {"delivered": 1, "undelivered": 1, "smsc_rejected": 1}
    await receiver.settle(3, first_wait=5, stall_s=5)  # reached: returns at once
    await receiver.settle(4, first_wait=5, stall_s=0.1)  # one missing: gives up after the stall
    receiver.reset()
    assert not receiver.finals and receiver.callbacks == 0


# --- with Kannel ------------------------------------------------------------------------------


# CI runs as root and installs Kannel; a developer without root and without Kannel cannot
needs_kannel = pytest.mark.skipif(
    not kannel_bench.kannel_installed() and os.geteuid() != 0, reason="Kannel missing and not root to install it"
)


@pytest.fixture(scope="module")
def kannel():
    if not kannel_bench.kannel_installed():
        done = subprocess.run(["bash", str(kannel_bench.INSTALL)], check=False, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            pytest.fail(f"bench/kannel/install.sh failed:\n{done.stdout[-1000:]}\n{done.stderr[-1000:]}")
    assert kannel_bench.kannel_installed()


def _leftovers() -> list[str]:
    """Processes this test process started and still has (bearerbox, smsbox, sim, serve, client)."""
    left = []
    for pid in _children(os.getpid()):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and re.search(r"bearerbox|smsbox|engine (sim|serve)|http_bench client", cmdline):
            left.append(cmdline)
    return left


@pytest.mark.slow
@needs_kannel
async def test_tiny_run_side_by_side(kannel):
    figures = await kannel_bench.run(count=300, pairs=1, concurrency=20)
    assert not _leftovers()
    assert figures["kannel_version"] == "1.4.5"
    assert len(figures["kannel_per_s"]) == len(figures["denpo_per_s"]) == 1
    assert figures["kannel_per_s"][0] > 0 and figures["denpo_per_s"][0] > 0 and figures["ratio_median"] > 0
    for run in figures["runs"]:
        assert run["accepted"] == 300 and run["http_statuses"] == {"202": 300}, run["side"]
        assert run["final"] == 300 and run["lost"] == 0 and run["callback_values"] == {"delivered": 300}, run["side"]
        assert run["sim"]["submit_sm"] == 300 and run["sim"]["connections"] == 1, run["side"]
        assert set(run["accept_latency_ms"]) == {"p50", "p90", "p99", "p999"}
    kannel_run, denpo_run = figures["runs"]
    assert {"bearerbox", "smsbox", "sim", "client", "receiver"} == set(kannel_run["processes"])
    assert {"serve", "sim", "client", "receiver"} == set(denpo_run["processes"])


@pytest.mark.slow
@needs_kannel
async def test_a_failed_start_leaves_no_process_behind(kannel, monkeypatch, capsys):
    monkeypatch.setattr(kannel_bench, "SMPP_PASSWORD", "wrong")  # Kannel's bind is refused by the simulator
    monkeypatch.setattr(kannel_bench, "START_TIMEOUT", 3.0)
    with pytest.raises(RuntimeError, match="bearerbox"):
        await kannel_bench.run(count=10, pairs=1)
    assert not _leftovers()
    kept = re.search(r"logs kept in (\S+)", capsys.readouterr().err)
    assert kept and (Path(kept.group(1)) / "1-kannel" / "kannel.conf").exists()
    shutil.rmtree(kept.group(1))
