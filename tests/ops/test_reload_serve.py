"""SIGHUP on denpo serve: a new rate and a new account token take effect, the old
token stops working, nothing in flight is dropped (issue 7 acceptance)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import httpx
import pytest

from engine.api.auth import new_token

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
async def test_sighup_changes_a_rate_and_a_token_without_dropping_a_message(tmp_path):
    old_token, old_digest = new_token()
    new_token_, new_digest = new_token()
    base = (ROOT / "config" / "denpo.toml").read_text()
    config = tmp_path / "denpo.toml"

    def write(digest: str, rate: float) -> None:
        text = base.replace("[accounts.demo]\n", f'[accounts.demo]\ntoken_sha256 = "{digest}"\n', 1)
        text = text.replace("[carriers.docomo]\n", f"[carriers.docomo]\nrate = {rate}\n", 1)
        for i, (port) in enumerate(ports):
            text = text.replace(f"port = {2775 + i}\n", f"port = {port}\n")
            text = text.replace(f"port = {2775 + i}, ", f"port = {port}, ")
        config.write_text(text)

    import socket

    ports = []
    for _ in range(4):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    write(old_digest, 2.0)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "serve", "--config", str(config), "--http", "127.0.0.1:0", "--data-dir", str(tmp_path / "var"),
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env={**os.environ}, cwd=tmp_path,
    )
    assert proc.stdout is not None

    async def event(name: str) -> dict:
        async with asyncio.timeout(60):
            while True:
                line = json.loads(await proc.stdout.readline())
                if line.get("event") == name:
                    return line

    try:
        ready = await event("ready")
        async with httpx.AsyncClient(base_url=ready["http"], headers={"Authorization": f"Bearer {old_token}"}, timeout=30) as client:
            messages = [{"to": f"070-2000-{i:04d}", "text": "reload test", "carrier": "docomo"} for i in range(40)]
            r = await client.post("/v1/messages/batch", json={"messages": messages})
            assert r.status_code == 202 and r.json()["accepted"] == 40
            ids = [x["id"] for x in r.json()["results"]]

            async def statuses() -> list[str]:
                return [(await client.get(f"/v1/messages/{i}", headers={"Authorization": f"Bearer {token[0]}"})).json().get("status") for i in ids]

            token = [old_token]
            # at 2/s the batch takes ~20 s; change the rate to 200/s and the token
            write(new_digest, 200.0)
            proc.send_signal(signal.SIGHUP)
            reloaded = await event("reloaded")
            assert "carriers.docomo" in reloaded["applied"] and "accounts" in reloaded["applied"], reloaded
            assert reloaded["refused"] == []
            assert (await client.get(f"/v1/messages/{ids[0]}")).status_code == 401  # the old token is gone
            token[0] = new_token_
            async with asyncio.timeout(15):  # well under the ~20 s the old rate needed
                while set(await statuses()) != {"delivered"}:
                    await asyncio.sleep(0.2)  # polling the API as a client would
        bad = config.read_text().replace("[store]", "[store]\nbogus = 1", 1) if "[store]" in config.read_text() else config.read_text() + "\n[store]\nbogus = 1\n"
        config.write_text(bad)
        proc.send_signal(signal.SIGHUP)
        failed = await event("reload_failed")
        assert any("store.bogus" in p for p in failed["problems"])
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 60)
    assert proc.returncode == 0
