"""The HTTP API over real HTTP on 127.0.0.1: engine, simulator and server in this
loop, httpx as the client.  Real time: waits poll a condition, never sleep."""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import httpx
import pytest

from engine.api.auth import new_token
from engine.api.http import HttpApi
from engine.api.server import HttpServer
from tests.engine._kit import SENDERS, config, running, simulator

TOKEN, DIGEST = new_token()
OTHER_TOKEN, OTHER_DIGEST = new_token()


def accounts(**demo: Any) -> dict[str, Any]:
    return {
        "demo": {"senders": SENDERS, "token_sha256": DIGEST, "rate_limit": 1000, "burst": 1000, **demo},
        "other": {"senders": SENDERS, "token_sha256": OTHER_DIGEST, "rate_limit": 1000, "burst": 1000},
    }


@asynccontextmanager
async def service(tmp_path: Path, *, with_sim: bool = True, http: dict[str, Any] | None = None, **kw: Any) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    async with simulator("docomo", dlr_delay_ms=10) as sim:
        cfg = config(tmp_path, {"docomo": sim if with_sim else 1}, accounts=kw.pop("accounts", None) or accounts(), **kw)
        if http:
            cfg = type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__struct_fields__}, "http": type(cfg.http)(**http)})
        async with running(cfg) as (engine, _log):
            api = HttpApi(engine, cfg)
            async with HttpServer(api, "127.0.0.1", 0) as server:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", headers={"Authorization": f"Bearer {TOKEN}"}) as client:
                    yield client, engine


async def until(predicate: Any, timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.02)  # real time: polling the HTTP API, as a client would


MSG = {"to": "090-1234-5678", "text": "お届け物のご案内です", "carrier": "docomo"}


async def test_send_read_and_final_status(tmp_path):
    async with service(tmp_path) as (client, _engine):
        r = await client.post("/v1/messages", json={**MSG, "client_ref": "order-1"})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["to"] == "+819012345678" and body["carrier"] == "docomo" and body["parts"] == 1
        assert body["status"] == "queued" and body["client_ref"] == "order-1"
        assert r.headers["x-transaction-id"]

        async def delivered() -> bool:
            got = (await client.get(f"/v1/messages/{body['id']}")).json()
            return got["status"] == "delivered"

        await until(delivered)
        got = (await client.get(f"/v1/messages/{body['id']}")).json()
        assert got["billable_units"] == 1 and got["client_ref"] == "order-1"
        assert [h["status"] for h in got["history"]] == ["accepted", "queued", "submitted", "delivered"]

        again = await client.post("/v1/messages", json={**MSG, "client_ref": "order-1"})
        assert again.status_code == 202 and again.json()["id"] == body["id"] and again.json()["duplicate"] is True
        assert again.headers["x-transaction-id"] != r.headers["x-transaction-id"]


@pytest.mark.parametrize(
    "payload, status, field, reason",
    [
        (b"{", 400, "", "malformed_json"),
        (b"[]", 422, "", "bad_type"),
        ({"text": "x"}, 422, "to", "missing"),
        ({**MSG, "colour": "red"}, 422, "colour", "unknown_field"),
        ({**MSG, "to": 12345}, 422, "to", "bad_type"),
        ({**MSG, "to": "03-1234-5678"}, 422, "to", "not_mobile"),
        ({**MSG, "to": "+1 212 555 0100"}, 422, "to", "not_japanese"),
        ({**MSG, "text": ""}, 422, "text", "empty"),
        ({**MSG, "carrier": "ntt"}, 422, "carrier", "unknown_carrier"),
        ({**MSG, "carrier": "au"}, 422, "carrier", "carrier_not_configured"),
        ({"to": MSG["to"], "text": "x"}, 422, "carrier", "unresolvable_carrier"),
        ({**MSG, "sender": "0999999999"}, 422, "sender", "sender_not_registered"),
        ({**MSG, "priority": "urgent"}, 422, "priority", "bad_value"),
        ({**MSG, "validity": 0}, 422, "validity", "bad_value"),
        ({**MSG, "send_at": "2030-01-01T00:00:00"}, 422, "send_at", "bad_value"),
        ({**MSG, "client_ref": ""}, 422, "client_ref", "too_short"),
    ],
)
async def test_errors_name_the_field_and_reason(tmp_path, payload, status, field, reason):
    async with service(tmp_path, with_sim=False) as (client, _engine):
        if isinstance(payload, bytes):
            r = await client.post("/v1/messages", content=payload, headers={"Content-Type": "application/json"})
        else:
            r = await client.post("/v1/messages", json=payload)
        assert r.status_code == status, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        problem = r.json()
        assert problem["status"] == status and problem["type"].startswith("urn:denpo:problem:")
        assert problem["title"] and problem["detail"]
        assert [(e["field"], e["reason"]) for e in problem["errors"]] == [(field, reason)]


async def test_over_limit_text_gives_the_limit_and_the_count(tmp_path):
    async with service(tmp_path, with_sim=False) as (client, _engine):
        r = await client.post("/v1/messages", json={**MSG, "text": "あ" * 661})  # docomo: 660 characters
        assert r.status_code == 422
        problem = r.json()
        assert problem["errors"][0]["field"] == "text"
        assert problem["limit"] == 660 and problem["count"] == 661


async def test_media_type_body_size_and_routes(tmp_path):
    async with service(tmp_path, with_sim=False, http={"max_body_bytes": 2000, "max_batch": 3}) as (client, _engine):
        r = await client.post("/v1/messages", content=b"to=1", headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert r.status_code == 415
        r = await client.post("/v1/messages", json={**MSG, "text": "x" * 3000})
        assert r.status_code == 413 and r.json()["type"] == "urn:denpo:problem:body_too_large"
        r = await client.post("/v1/messages/batch", json={"messages": [MSG] * 4})
        assert r.status_code == 413
        assert r.json()["limit"] == 3 and r.json()["count"] == 4
        assert (await client.get("/v1/messages")).status_code == 405
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/v1/messages/zzzz")).status_code == 404
        assert (await client.get("/healthz")).status_code == 200


async def test_batch_gives_a_result_per_item(tmp_path):
    async with service(tmp_path) as (client, _engine):
        items = [MSG, {**MSG, "to": "03-1234-5678"}, {**MSG, "extra": 1}, {**MSG, "client_ref": "b-1"}, {**MSG, "client_ref": "b-1"}]
        r = await client.post("/v1/messages/batch", json={"messages": items})
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["accepted"] == 3 and body["rejected"] == 2
        results = body["results"]
        assert results[0]["status"] == "queued"
        assert results[1]["error"]["field"] == "to" and results[1]["error"]["reason"] == "not_mobile"
        assert results[2]["error"]["field"] == "extra" and results[2]["error"]["reason"] == "unknown_field"
        assert results[3]["id"] == results[4]["id"]  # one client_ref, one message
        r = await client.post("/v1/messages/batch", json={"messages": {}})
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "messages"


async def test_cancel_and_ownership(tmp_path):
    async with service(tmp_path) as (client, _engine):
        later = (await client.post("/v1/messages", json={**MSG, "send_at": 4_000_000_000})).json()
        assert later["status"] == "accepted"
        other = httpx.AsyncClient(base_url=str(client.base_url), headers={"Authorization": f"Bearer {OTHER_TOKEN}"})
        async with other:
            assert (await other.get(f"/v1/messages/{later['id']}")).status_code == 404
            assert (await other.delete(f"/v1/messages/{later['id']}")).status_code == 404
        r = await client.delete(f"/v1/messages/{later['id']}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        r = await client.delete(f"/v1/messages/{later['id']}")
        assert r.status_code == 409 and r.json()["type"] == "urn:denpo:problem:not_cancellable"
        assert (await client.delete("/v1/messages/00000000000000ff")).status_code == 404


async def test_401_403_and_trusted_proxies(tmp_path):
    accts = accounts(allow_ips=["198.51.100.0/24"])
    async with service(tmp_path, with_sim=False, accounts=accts, http={"trusted_proxies": ["127.0.0.1"]}) as (client, _engine):
        r = await client.post("/v1/messages", json=MSG, headers={"Authorization": ""})
        assert r.status_code == 401 and "bearer" in r.headers["www-authenticate"].lower()
        r = await client.post("/v1/messages", json=MSG, headers={"Authorization": "Bearer wrong"})
        assert r.status_code == 401
        r = await client.post("/v1/messages", json=MSG)  # from 127.0.0.1, not allowed for demo
        assert r.status_code == 403
        r = await client.post("/v1/messages", json=MSG, headers={"X-Forwarded-For": "198.51.100.9"})
        assert r.status_code == 202, r.text  # 127.0.0.1 is a trusted proxy: its word counts
        r = await client.post("/v1/messages", json=MSG, headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.1"})
        assert r.status_code == 403  # the right-most untrusted hop decides
    async with service(tmp_path / "b", with_sim=False, accounts=accts) as (client, _engine):
        r = await client.post("/v1/messages", json=MSG, headers={"X-Forwarded-For": "198.51.100.9"})
        assert r.status_code == 403  # no trusted proxies: the header is ignored


async def test_429_with_retry_after(tmp_path):
    accts = accounts(rate_limit=1, burst=2)
    async with service(tmp_path, with_sim=False, accounts=accts) as (client, _engine):
        codes = [(await client.get("/v1/messages/00000000000000ff")).status_code for _ in range(3)]
        assert codes == [404, 404, 429]
        r = await client.post("/v1/messages", json=MSG)
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1


async def test_backpressure_is_503_with_retry_after(tmp_path):
    async with service(tmp_path, with_sim=False, engine={"backlog_limit": 1}) as (client, _engine):
        assert (await client.post("/v1/messages", json=MSG)).status_code == 202
        r = await client.post("/v1/messages", json=MSG)
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        assert r.json()["type"] == "urn:denpo:problem:backpressure"
        r = await client.post("/v1/messages/batch", json={"messages": [MSG, MSG]})
        assert r.status_code == 503 and len(r.json()["results"]) == 2
