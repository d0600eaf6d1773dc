"""`denpo serve` as a subprocess on the embedded default: ready line, the README's
requests, a clean stop on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys

import httpx
import pytest

from engine.ops.serve import parse_listen


def test_parse_listen():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", ":80", "h:99999", "h:x"):
        with pytest.raises(ValueError):
            parse_listen(bad)


@pytest.mark.slow
async def test_serve_embedded_default_end_to_end(tmp_path):
    env = {**os.environ, "DENPO_DEMO_TOKEN": "test-token-0123456789"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "serve", "--http", "127.0.0.1:0", "--data-dir", str(tmp_path / "var"),
        stdout=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        assert ready["event"] == "ready" and ready["account"] == "demo"
        assert ready["token"] == "test-token-0123456789"
        assert (tmp_path / "var" / "demo-token").read_text().strip() == "test-token-0123456789"
        assert oct((tmp_path / "var" / "demo-token").stat().st_mode & 0o777) == "0o600"
        headers = {"Authorization": "Bearer test-token-0123456789"}
        async with httpx.AsyncClient(base_url=ready["http"], headers=headers) as client:
            sent = []
            for carrier, to in (("au", "090-1234-5678"), ("docomo", "080-1234-5678"), ("softbank", "070-1234-5678"), ("rakuten", "090-8765-4321")):
                r = await client.post("/v1/messages", json={"to": to, "text": "テスト送信です", "carrier": carrier})
                assert r.status_code == 202, r.text
                sent.append(r.json()["id"])
            async with asyncio.timeout(30):
                for mid in sent:
                    while (await client.get(f"/v1/messages/{mid}")).json()["status"] != "delivered":
                        await asyncio.sleep(0.05)  # polling the API as a client would
        proc.send_signal(signal.SIGTERM)
        rest = await asyncio.wait_for(proc.stdout.read(), 30)
        assert await proc.wait() == 0
        assert json.loads(rest.decode().strip().splitlines()[-1])["event"] == "stopped"
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
