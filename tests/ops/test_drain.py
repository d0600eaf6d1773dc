"""Graceful drain of `denpo serve` (a subprocess on the embedded default).

Deterministic without sleeps: a batch request is held half-sent (its head
answered ``100 Continue``, so the server is known to be reading its body) while
SIGTERM arrives; the drain waits for it, so the server is known to be draining
(its ``draining`` line) and still serving when the next request comes."""

from __future__ import annotations

import asyncio
import json
import signal
from pathlib import Path
from typing import Any

import pytest

from tests.ops.serving import TOKEN, Serve, serving, until

pytestmark = pytest.mark.slow

SETTLED = {"submitted", "delivered", "partially_failed", "undeliverable", "expired", "rejected", "indefinite", "cancelled"}
NUMBERS = {"au": "090-10{:02d}-{:04d}", "docomo": "080-20{:02d}-{:04d}", "softbank": "070-30{:02d}-{:04d}", "rakuten": "090-40{:02d}-{:04d}"}


def batch(n: int, offset: int = 0) -> dict[str, Any]:
    carriers = list(NUMBERS)
    return {"messages": [
        {"to": NUMBERS[carriers[i % 4]].format((offset + i) // 10000, (offset + i) % 10000), "text": f"ドレイン試験 {i}", "carrier": carriers[i % 4]}
        for i in range(n)
    ]}


async def all_binds_up(serve: Serve) -> None:
    async with serve.client() as client:
        async def ready() -> bool:
            r = await client.get("/readyz")
            return r.status_code == 200 and all(c["ready"] for c in r.json()["carriers"].values())
        await until(ready, 60, "every carrier bound")


async def send(serve: Serve, n: int, offset: int) -> list[str]:
    async with serve.client() as client:
        r = await client.post("/v1/messages/batch", json=batch(n, offset))
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["accepted"] == n, body
        return [item["id"] for item in body["results"]]


class HeldRequest:
    """A batch POST whose body is sent in two halves, over a raw connection."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.body = json.dumps(batch(10, 90_000)).encode()

    async def begin(self) -> None:
        host, port = self.serve.url.removeprefix("http://").rsplit(":", 1)
        self.reader, self.writer = await asyncio.open_connection(host, int(port))
        head = (f"POST /v1/messages/batch HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {TOKEN}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(self.body)}\r\nExpect: 100-continue\r\n\r\n")
        self.writer.write(head.encode() + self.body[: len(self.body) // 2])
        await self.writer.drain()
        line = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)
        assert line.startswith(b"HTTP/1.1 100"), line  # the server is reading this request's body now

    async def finish(self) -> tuple[int, dict[str, str], bytes]:
        self.writer.write(self.body[len(self.body) // 2 :])
        await self.writer.drain()
        head = (await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 30)).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head.split("\r\n")[1:] if h)}
        body = await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), 30)
        self.writer.close()
        return status, headers, body


async def every_message_settled(data_dir: Path, ids: list[str]) -> dict[str, int]:
    """Restart on the same store: every accepted message is there and reaches a
    final status, or ``submitted`` (the carrier took it; the embedded default's
    simulators are new processes after a restart, so a receipt the old one owed
    never comes: such a message becomes ``indefinite`` at the receipt timeout,
    an hour by default).  Nothing stays queued: the unsent are recovered and sent."""
    counts: dict[str, int] = {}
    async with serving(data_dir) as serve:
        async with serve.client() as client:
            for mid in ids:
                last: dict[str, Any] = {}

                async def final() -> bool:
                    r = await client.get(f"/v1/messages/{mid}")
                    assert r.status_code == 200, r.text  # known: nothing lost
                    last.update(r.json())
                    return last["status"] in SETTLED

                await until(final, 60, f"message {mid} submitted or final", lambda: f": {last}")
                counts[last["status"]] = counts.get(last["status"], 0) + 1
    return counts


async def test_drain_answers_503_finishes_and_exits_0(tmp_path):
    data = tmp_path / "var"
    async with serving(data, "--drain-timeout", "60") as serve:
        await all_binds_up(serve)
        ids = await send(serve, 400, 0)
        held = HeldRequest(serve)
        await held.begin()
        serve.signal(signal.SIGTERM)
        draining = await serve.event("draining", 30)
        assert draining["deadline_s"] == 60
        async with serve.client() as client:
            r = await client.post("/v1/messages", json={"to": "090-1234-5678", "text": "x", "carrier": "au"})
            assert r.status_code == 503 and r.headers["retry-after"] == "5", r.text
            assert r.headers["content-type"] == "application/problem+json" and r.headers["x-transaction-id"]
            problem = r.json()
            assert problem["status"] == 503 and problem["errors"][0]["reason"] == "shutting_down"
            assert (await client.get(f"/v1/messages/{ids[0]}")).status_code == 503
            kannel = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": TOKEN, "to": "09012345678", "text": "x"})
            assert kannel.status_code == 503 and kannel.text.startswith("Temporary failure")
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            assert (await client.get("/healthz")).status_code == 200
            assert "denpo_http_draining 1.0" in (await client.get("/metrics")).text
        status, headers, body = await held.finish()  # the request being received when SIGTERM came: answered, not cut
        assert status == 503 and headers["retry-after"] == "5", body
        assert await serve.wait() == 0
        assert (await serve.event("stopped"))["drained"] is True
    counts = await every_message_settled(data, ids)
    print(f"drained: {len(ids)} accepted, settled after restart: {counts}")
    assert sum(counts.values()) == len(ids)


@pytest.mark.parametrize("how", ["second_signal", "deadline"])
async def test_drain_cut_short_loses_nothing(tmp_path, how):
    data = tmp_path / "var"
    timeout = "60" if how == "second_signal" else "1"
    async with serving(data, "--drain-timeout", timeout) as serve:
        await all_binds_up(serve)
        ids = await send(serve, 1000, 0)
        ids += await send(serve, 1000, 1000)  # some still queued or in flight at the signal
        held = HeldRequest(serve)
        await held.begin()  # holds the drain until the deadline or a second signal
        serve.signal(signal.SIGTERM)
        await serve.event("draining", 30)
        if how == "second_signal":
            serve.signal(signal.SIGTERM)
        assert await serve.wait(30) == 0
        assert (await serve.event("stopped"))["drained"] is False
    counts = await every_message_settled(data, ids)
    print(f"{how}: {len(ids)} accepted, settled after restart: {counts}")
    assert sum(counts.values()) == len(ids)
