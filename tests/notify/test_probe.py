"""denpo probe-webhook against real receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import sys

from aiohttp import web

from engine.notify.probe import probe


async def receiver(status: int = 200, delay: float = 0.0):
    async def handle(request):
        await request.read()
        if delay:
            await asyncio.sleep(delay)  # the receiver under test is slow: its behaviour, not a wait
        return web.Response(status=status)

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"


async def test_ok_slow_wrong_status_and_down():
    fast, fast_url = await receiver()
    slow, slow_url = await receiver(delay=0.6)
    wrong, wrong_url = await receiver(status=500)
    try:
        ok = await probe(fast_url, attempts=2)
        assert ok["ok"] and ok["verdict"].startswith("OK") and [a["status"] for a in ok["attempts"]] == [200, 200]
        ng = await probe(slow_url, attempts=1)
        assert not ng["ok"] and "slowest answer" in ng["verdict"] and ng["attempts"][0]["ms"] > 500
        ng = await probe(wrong_url, attempts=1)
        assert not ng["ok"] and "500" in ng["verdict"]
    finally:
        for r in (fast, slow, wrong):
            await r.cleanup()
    down = await probe(fast_url, attempts=1)  # nothing listens any more
    assert not down["ok"] and down["attempts"][0]["status"] is None and down["attempts"][0]["error"]


async def test_cli_exit_codes():
    runner, url = await receiver()
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine", "probe-webhook", url, "--attempts", "1", stdout=asyncio.subprocess.PIPE
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0 and json.loads(out)["ok"] is True
    finally:
        await runner.cleanup()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "probe-webhook", url, "--attempts", "1", stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and json.loads(out)["ok"] is False
