"""Issue 7's acceptance: `denpo serve` as a subprocess on free ports, READY through
a fake NOTIFY_SOCKET, 20k messages over HTTP, SIGTERM mid-run, a restart — every
message answered 202 reaches a final status, nothing is lost.  Prints the counts.

The simulators run as their own processes (`denpo sim`), so they outlive the
engine as carriers do: receipts owed for messages submitted before the stop are
delivered to the restarted engine when it binds again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from engine.api.auth import new_token

ROOT = Path(__file__).resolve().parents[2]
CARRIERS = ("au", "docomo", "softbank", "rakuten")
FINAL = ("delivered", "partially_failed", "undeliverable", "expired", "rejected", "indefinite", "cancelled")
TOTAL = 20_000
BATCH = 500


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _start_sim(carrier: str) -> tuple[asyncio.subprocess.Process, int]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "sim", "--carrier", carrier, "--port", "0", "--system-id", "denpo",
        "--password", "denpo", "--dlr-delay-ms", "100", "--partial-failure-rate", "0",
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
    return proc, ready["port"]


def _config(path: Path, ports: dict[str, int], digest: str) -> None:
    lines = ['[accounts.demo]', f'token_sha256 = "{digest}"', "rate_limit = 100000.0", "burst = 100000",
             'senders = { au = ["0120000001"], docomo = ["0120000002"], softbank = ["0120000003"], rakuten = ["0120000004"] }']
    for carrier, port in ports.items():
        lines += [f"[carriers.{carrier}]", f'endpoints = [{{ host = "127.0.0.1", port = {port}, system_id = "denpo", password = "denpo" }}]', "binds = 2"]
    path.write_text("\n".join(lines) + "\n")


class Notify:
    """A fake NOTIFY_SOCKET (abstract namespace): what serve tells systemd."""

    def __init__(self) -> None:
        self.name = f"denpo-restart-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + self.name)
        self.sock.setblocking(False)

    async def wait_for(self, word: str, timeout: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            while True:
                data = await loop.sock_recv(self.sock, 4096)
                if word in data.decode().split("\n"):
                    return


async def _serve(config: Path, data: Path, notify: Notify) -> tuple[asyncio.subprocess.Process, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "serve", "--config", str(config), "--http", "127.0.0.1:0", "--data-dir", str(data),
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL,
        env={**os.environ, "NOTIFY_SOCKET": "@" + notify.name},
    )
    await notify.wait_for("READY=1")
    assert proc.stdout is not None
    ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 30))
    return proc, ready["http"]


@pytest.mark.slow
async def test_sigterm_mid_run_then_restart_loses_nothing(tmp_path):
    token, digest = new_token()
    sims = {c: await _start_sim(c) for c in CARRIERS}
    config = tmp_path / "denpo.toml"
    _config(config, {c: port for c, (_p, port) in sims.items()}, digest)
    notify = Notify()
    accepted: set[str] = set()
    try:
        proc, url = await _serve(config, tmp_path / "var", notify)
        stopped = asyncio.Event()

        retry: list[list[dict]] = []

        async def post(client: httpx.AsyncClient, batch: list[dict]) -> bool:
            """True when the batch was answered 202 (every item accepted)."""
            try:
                r = await client.post("/v1/messages/batch", json={"messages": batch})
            except httpx.TransportError:
                return False  # the server went away: maybe stored, maybe not — the retry's client_refs tell
            if r.status_code != 202:
                assert r.status_code == 503, r.text  # draining: refused, retryable, never half-taken
                return False
            body = r.json()
            assert body["rejected"] == 0, body
            accepted.update(x["id"] for x in body["results"])
            return True

        async def send(worker: int) -> None:
            async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
                for k in range(worker * BATCH, TOTAL, 4 * BATCH):
                    if k >= TOTAL // 2 and not stopped.is_set():
                        stopped.set()
                        proc.send_signal(signal.SIGTERM)  # mid-run: half sent, the rest races the drain
                    batch = [
                        {"to": f"090{k + i:08d}", "text": f"再起動テスト {k + i}", "carrier": CARRIERS[(k + i) % 4], "client_ref": f"m{k + i}"}
                        for i in range(BATCH)
                    ]
                    if not await post(client, batch):
                        retry.append(batch)

        await asyncio.gather(*(send(w) for w in range(4)))
        assert await asyncio.wait_for(proc.wait(), 120) == 0
        first_run = len(accepted)
        refused = sum(len(b) for b in retry)
        # restart on the same store: everything unfinished is recovered and finished; the
        # client sends again what was refused (client_ref: a retry never makes a second message)
        proc, url = await _serve(config, tmp_path / "var", notify)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=10) as client:
            for batch in retry:
                assert await post(client, batch)
        db = sqlite3.connect(f"file:{tmp_path / 'var' / 'denpo.db'}?mode=ro", uri=True)
        marks = ", ".join("?" for _ in FINAL)
        try:
            async with asyncio.timeout(180):
                while db.execute(f"SELECT count(*) FROM messages WHERE status NOT IN ({marks})", FINAL).fetchone()[0]:
                    await asyncio.sleep(0.2)  # polling the store read-only while the engine finishes
        except TimeoutError:
            stuck = db.execute(
                f"SELECT carrier, status, count(*) FROM messages WHERE status NOT IN ({marks}) GROUP BY carrier, status", FINAL
            ).fetchall()
            raise AssertionError(f"not final after the restart: {stuck}") from None
        rows = dict(db.execute("SELECT printf('%016x', id), status FROM messages").fetchall())
        counts: dict[str, int] = {}
        for status in rows.values():
            counts[status] = counts.get(status, 0) + 1
        db.close()
        lost = [mid for mid in accepted if rows.get(mid) not in FINAL]
        print(f"\nsent {TOTAL}: accepted {first_run} before the restart, {refused} refused while draining and sent again "
              f"after it; stored {len(rows)}, final {counts}, lost {len(lost)}")
        assert not lost
        assert len(accepted) == TOTAL and set(rows) == accepted  # every message once: no loss, no duplicate
        assert counts == {"delivered": TOTAL}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60) == 0
    finally:
        notify.sock.close()
        for sim, _port in sims.values():
            if sim.returncode is None:
                sim.send_signal(signal.SIGTERM)
        for sim, _port in sims.values():
            await asyncio.wait_for(sim.wait(), 30)
