"""Result, MO and Kannel dlr-url notifications end to end: engine, simulator,
HTTP API and notification receivers all real HTTP/SMPP on 127.0.0.1.  Real time:
waits are for events (a receiver got what was expected), bounded by timeouts."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from aiohttp import web

from engine.api.auth import new_token
from engine.api.http import HttpApi
from engine.api.server import HttpServer
from tests.engine._kit import SENDERS, config, running, simulator

TOKEN, DIGEST = new_token()
SECRET = "notify-secret-0123456789"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Receiver:
    """An HTTP receiver on a fixed port: ``down`` (not listening), ``slow`` (answers
    after ``delay``, past the notifier's 500 ms), or ``up``.  Keeps every request."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.mode = "up"
        self.delay = 0.7
        self.requests: list[tuple[str, str, bytes, dict[str, str]]] = []
        self.changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        if self.mode == "slow":
            await asyncio.sleep(self.delay)  # the receiver under test is slow: its own behaviour, not a wait
        self.requests.append((request.method, str(request.rel_url), body, dict(request.headers)))
        self.changed.set()
        return web.Response(status=200)

    async def up(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def down(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def wait(self, predicate: Any, timeout: float = 30.0) -> None:
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()

    def events(self) -> dict[int, dict[str, Any]]:
        """Every event received, de-duplicated by event_id (at-least-once delivery)."""
        out: dict[int, dict[str, Any]] = {}
        for method, _path, body, _headers in self.requests:
            if method != "POST":
                continue
            payload = json.loads(body)
            for event in payload if isinstance(payload, list) else [payload]:
                out[event["event_id"]] = event
        return out


def account(result: Receiver | None = None, mo: Receiver | None = None, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"senders": SENDERS, "token_sha256": DIGEST, "rate_limit": 10_000, "burst": 10_000, "signing_secret": SECRET}
    if result is not None:
        data["result_url"] = f"{result.url}/results"
    if mo is not None:
        data["mo_url"] = f"{mo.url}/mo"
    data.update(kw)
    return data


@asynccontextmanager
async def service(tmp_path: Path, accounts: dict[str, Any], **sim_knobs: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any, Any]]:
    async with simulator("docomo", dlr_delay_ms=10, **sim_knobs) as sim:
        cfg = config(tmp_path, {"docomo": sim}, accounts=accounts)
        cfg = type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__struct_fields__}, "notify": type(cfg.notify)(retry_base_s=0.05, retry_cap_s=0.2)})
        async with running(cfg) as (engine, _log):
            async with HttpServer(HttpApi(engine, cfg), "127.0.0.1", 0) as server:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {TOKEN}"}) as client:
                    yield client, engine, sim


MSG = {"to": "090-1234-5678", "text": "ご注文の商品を発送しました", "carrier": "docomo"}


async def test_receiver_down_then_slow_then_up_gets_every_event_signed(tmp_path):
    receiver = Receiver(free_port())  # down: nothing listens yet
    async with service(tmp_path, {"demo": account(receiver)}) as (client, engine, _sim):
        ids = []
        for i in range(20):
            r = await client.post("/v1/messages", json={**MSG, "to": f"090-0000-{i:04d}", "client_ref": f"r{i}"})
            assert r.status_code == 202
            ids.append(r.json()["id"])
        # every message ends while the receiver is down: the notifier retries
        async with asyncio.timeout(30):
            while engine.notifier.counters["retry"] < 20:
                await asyncio.sleep(0.02)  # polling a counter of the running engine
        receiver.mode = "slow"
        await receiver.up()
        await receiver.wait(lambda: len(receiver.requests) >= 5)  # answers come, but too late: retried
        receiver.mode = "up"
        await receiver.wait(lambda: set(receiver.events()) and {e["id"] for e in receiver.events().values()} >= set(ids))
        events = receiver.events()
        assert sorted(e["id"] for e in events.values()) == sorted(ids)  # none lost, each once after de-duplication
        assert all(e["status"] == "delivered" and e["billable_units"] == 1 for e in events.values())
        assert {e["client_ref"] for e in events.values()} == {f"r{i}" for i in range(20)}
        assert set(events.values().__iter__().__next__()) >= {
            "event_id", "id", "client_ref", "status", "carrier", "to", "parts", "billable_units", "error", "submitted_at", "done_at",
        }
        for method, path, body, headers in receiver.requests:
            assert path == "/results"
            expected = hmac.new(SECRET.encode(), headers["X-Denpo-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
            assert headers["X-Denpo-Signature"] == expected
        await receiver.down()


async def test_a_dead_receiver_does_not_slow_another_account(tmp_path):
    alive, dead = Receiver(free_port()), Receiver(free_port())
    await alive.up()
    other_token, other_digest = new_token()
    accounts = {"demo": account(alive), "other": {**account(dead, notify_concurrency=2), "token_sha256": other_digest}}
    try:
        async with service(tmp_path, accounts) as (client, engine, _sim):
            async with httpx.AsyncClient(base_url=str(client.base_url), headers={"Authorization": f"Bearer {other_token}"}) as other:
                for i in range(30):
                    assert (await other.post("/v1/messages", json={**MSG, "to": f"080-1000-{i:04d}"})).status_code == 202
            loop = asyncio.get_running_loop()
            started = loop.time()
            ids = [(await client.post("/v1/messages", json={**MSG, "to": f"090-1111-{i:04d}"})).json()["id"] for i in range(30)]
            await alive.wait(lambda: {e["id"] for e in alive.events().values()} >= set(ids), timeout=20)
            assert loop.time() - started < 10  # receipts after 10 ms; nothing waited on the dead receiver
            assert engine.notifier.counters["retry"] > 0  # the other account's are being retried meanwhile
            listed = await client.get("/v1/notifications", params={"state": "dead"})
            assert listed.status_code == 200 and listed.json() == {"notifications": []}
    finally:
        await alive.down()


@pytest.mark.parametrize("events", [True, False])
async def test_mo_is_notified(tmp_path, events):
    mo = Receiver(free_port())
    await mo.up()
    try:
        async with service(tmp_path, {"demo": account(mo=mo)}) as (_client, engine, sim):
            engine._events_on = events  # False: as denpo serve makes it (Engine(events=False))
            sim.inject_mo(source="819011112222", destination=SENDERS["docomo"][0], text="はい、大丈夫です", system_id="denpo")
            await mo.wait(lambda: len(mo.events()) == 1)
            (event,) = mo.events().values()
            assert event["from"] == "+819011112222" and event["to"] == SENDERS["docomo"][0]
            assert event["carrier"] == "docomo" and event["text"] == "はい、大丈夫です"
            assert {"event_id", "received_at"} <= set(event)
    finally:
        await mo.down()


async def test_kannel_sendsms_and_dlr_url(tmp_path):
    dlr = Receiver(free_port())
    await dlr.up()
    try:
        async with service(tmp_path, {"demo": account()}) as (client, _engine, _sim):
            template = f"{dlr.url}/dlr?status=%d&id=%I&cid=%F&to=%p&from=%P&at=%t&reply=%A"
            # what a Kannel client sends: the text percent-encoded UTF-8, the dlr-url encoded once more
            r = await client.get(
                "/cgi-bin/sendsms",
                params={
                    "username": "demo", "password": TOKEN, "to": "09012345678", "text": "テスト送信", "smsc": "docomo",
                    "charset": "UTF-8", "dlr-mask": "3", "dlr-url": template,
                },
            )
            assert r.status_code == 202 and r.text == "0: Accepted for delivery"
            assert r.headers["content-type"].startswith("text/plain") and r.headers["x-transaction-id"]
            await dlr.wait(lambda: len(dlr.requests) == 1)
            method, path, _body, _headers = dlr.requests[0]
            assert method == "GET"
            query = parse_qs(urlsplit(path).query)
            assert query["status"] == ["1"] and query["to"] == ["+819012345678"] and query["from"] == [SENDERS["docomo"][0]]
            assert len(query["id"][0]) == 16 and query["cid"][0] and query["reply"] == ["DELIVRD"]
            assert len(query["at"][0]) == len("2026-11-22 10:00:00")

            bad = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": "wrong", "to": "09012345678", "text": "x"})
            assert bad.status_code == 403 and bad.text == "Authorization failed for sendsms"
            bad = await client.get("/cgi-bin/sendsms", params={"username": "other", "password": TOKEN, "to": "09012345678", "text": "x"})
            assert bad.status_code == 403
            bad = await client.get("/cgi-bin/sendsms", params={"username": "demo", "password": TOKEN, "text": "x"})
            assert bad.status_code == 400 and bad.text == "Missing receiver number, rejected"
            bad = await client.post(
                "/cgi-bin/sendsms", content=b"username=demo&password=" + TOKEN.encode() + b"&to=0312345678&text=x&smsc=docomo",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            assert bad.status_code == 400 and bad.text.startswith("Rejected: to:")
            query = urlencode(
                {"username": "demo", "password": TOKEN, "to": "09012345679", "smsc": "docomo", "coding": "2",
                 "text": "テスト".encode("utf-16-be")}  # UCS-2 octets, percent-encoded as Kannel clients send them
            )
            ucs2 = await client.get(f"/cgi-bin/sendsms?{query}")
            assert ucs2.status_code == 202, ucs2.text
    finally:
        await dlr.down()


async def test_dead_notifications_are_listed(tmp_path):
    dead = Receiver(free_port())  # never up
    async with service(tmp_path, {"demo": account(dead, notify_max_age_s=0.3)}) as (client, engine, _sim):
        mid = (await client.post("/v1/messages", json=MSG)).json()["id"]
        async with asyncio.timeout(20):
            while engine.notifier.counters["dead"] < 1:
                await asyncio.sleep(0.02)  # polling a counter of the running engine
        listed = (await client.get("/v1/notifications")).json()["notifications"]
        assert [n["message_id"] for n in listed] == [mid]
        assert listed[0]["kind"] == "result" and listed[0]["attempts"] >= 1 and listed[0]["last_error"]
        assert json.loads(listed[0]["body"])["status"] == "delivered"
