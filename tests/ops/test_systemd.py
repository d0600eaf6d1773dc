"""systemd's notify protocol: the notifier alone (path and abstract sockets, the
environment), `denpo serve` under a fake NOTIFY_SOCKET (READY=1, STATUS=,
WATCHDOG=1, STOPPING=1), and `systemd-analyze verify` on config/denpo.service."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from engine.ops.systemd import Heartbeat, SystemdNotifier
from tests.ops.serving import ROOT, serving


def _abstract_socket() -> tuple[socket.socket, str]:
    name = f"denpo-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.setblocking(False)
    return sock, "@" + name


def test_path_socket_and_environment(tmp_path):
    path = tmp_path / "n.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid()), "OTHER": "x"}
        n = SystemdNotifier(env)
        assert env == {"OTHER": "x"}  # unset: children do not inherit them
        assert n.enabled and n.watchdog_interval == 15.0
        assert n.ready("serving: 0 accepted/s") and n.watchdog() and n.stopping()
        got = [sock.recv(4096).decode() for _ in range(3)]
        n.close()
    assert got[0].split("\n")[:2] == ["READY=1", "STATUS=serving: 0 accepted/s"]
    assert got[1:] == ["WATCHDOG=1", "STOPPING=1"]


def test_abstract_socket():
    sock, name = _abstract_socket()
    with sock:
        n = SystemdNotifier({"NOTIFY_SOCKET": name})
        assert n.enabled and n.watchdog_interval is None
        assert n.status("hello")
        assert sock.recv(4096) == b"STATUS=hello"
        n.close()


def test_not_under_systemd_and_foreign_watchdog():
    n = SystemdNotifier({})
    assert not n.enabled and not n.notify("READY=1")
    n = SystemdNotifier({"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"})
    assert n.watchdog_interval is None  # the watchdog is another process's
    gone = SystemdNotifier({"NOTIFY_SOCKET": f"@denpo-nobody-{uuid.uuid4().hex}"})
    assert not gone.ready()  # nobody listens: reported, not raised


async def test_heartbeat_pings_from_the_loop():
    sock, name = _abstract_socket()
    with sock:
        n = SystemdNotifier({"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "20000"})
        beat = Heartbeat(n, lambda: "fine", status_interval=0.01)
        beat.start()
        loop = asyncio.get_running_loop()
        seen: set[str] = set()
        async with asyncio.timeout(10):
            while seen < {"WATCHDOG=1", "STATUS=fine"}:
                seen.add((await loop.sock_recv(sock, 4096)).decode())
        beat.stop()
        n.close()


@pytest.mark.slow
async def test_serve_notifies_systemd(tmp_path):
    sock, name = _abstract_socket()
    loop = asyncio.get_running_loop()

    async def next_message(timeout: float = 30.0) -> list[str]:
        return (await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)).decode().split("\n")

    with sock:
        env = {"NOTIFY_SOCKET": name, "WATCHDOG_USEC": "400000"}
        async with serving(tmp_path / "var", env=env) as serve:
            first = await next_message()
            assert first[0] == "READY=1", first  # sent right where the ready line was printed
            assert any(line.startswith("STATUS=serving:") and "binds up" in line for line in first)
            assert f"MAINPID={serve.proc.pid}" in first
            seen: list[str] = []
            async with asyncio.timeout(30):  # a STATUS line of its own (every 2 s) and watchdog pings (every 0.2 s)
                while not ({"WATCHDOG=1"} <= set(seen) and any(s.startswith("STATUS=serving:") for s in seen)):
                    seen += await next_message()
            serve.signal()
            async with asyncio.timeout(30):
                while "STOPPING=1" not in (message := await next_message()):
                    pass
            assert any(line.startswith("STATUS=draining:") for line in message)
            assert await serve.wait() == 0
            assert (await serve.event("stopped"))["drained"] is True


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_unit_file_verifies(tmp_path):
    unit = (ROOT / "config" / "denpo.service").read_text()
    for key in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "DynamicUser=yes", "StateDirectory=denpo",
                "ProtectSystem=strict", "NoNewPrivileges=yes", "PrivateTmp=yes", "ProtectHome=yes",
                "ExecReload=/bin/kill -HUP $MAINPID",
                "ExecStart=/usr/local/bin/denpo serve --config /etc/denpo/denpo.toml --data-dir /var/lib/denpo"):
        assert key in unit, key
    # verify checks ExecStart's binary exists: point it at this checkout's
    binary = Path(ROOT / ".venv" / "bin" / "denpo")
    if not binary.exists():
        binary = Path(shutil.which("denpo") or "/bin/true")
    copy = tmp_path / "denpo.service"
    copy.write_text(unit.replace("/usr/local/bin/denpo", str(binary)))
    result = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    problems = [line for line in (result.stdout + result.stderr).splitlines() if "denpo.service" in line]
    assert result.returncode == 0 and not problems, result.stdout + result.stderr
