"""/metrics and /readyz over real HTTP: engine, simulators and server in this
loop (real time; waits poll a condition, never sleep)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from engine.api.auth import new_token
from engine.api.http import HttpApi
from engine.api.server import HttpServer
from engine.ops.metrics import Metrics
from tests.engine._kit import SENDERS, config, running, simulator
from tests.ops.serving import until

TOKEN, DIGEST = new_token()


@asynccontextmanager
async def service(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Any, HttpApi, dict[str, Any]]]:
    async with simulator("docomo", dlr_delay_ms=10) as docomo, simulator("au", dlr_delay_ms=10) as au:
        sims = {"docomo": docomo, "au": au}
        cfg = config(tmp_path, sims, accounts={"demo": {"senders": SENDERS, "token_sha256": DIGEST, "rate_limit": 1000, "burst": 1000}})
        async with running(cfg) as (engine, _log):
            api = HttpApi(engine, cfg)
            async with HttpServer(api, "127.0.0.1", 0) as server:
                async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                    yield client, engine, api, sims


def scrape(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


async def test_metrics_move_and_need_no_token(tmp_path):
    async with service(tmp_path) as (client, engine, _api, _sims):
        r = await client.get("/metrics")  # no Authorization header
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        before = scrape(r.text)
        assert value(before, "denpo_carrier_binds", carrier="docomo") == 1
        assert value(before, "denpo_submit_response_seconds_count") == 0
        auth = {"Authorization": f"Bearer {TOKEN}"}
        messages = [{"to": f"080-5555-{i:04d}", "text": "計測", "carrier": "docomo"} for i in range(20)]
        messages += [{"to": f"090-5555-{i:04d}", "text": "計測", "carrier": "au"} for i in range(5)]
        r = await client.post("/v1/messages/batch", json={"messages": messages}, headers=auth)
        assert r.status_code == 202 and r.json()["accepted"] == 25, r.text

        async def receipts_in() -> bool:
            return value(scrape((await client.get("/metrics")).text), "denpo_messages_final_total", status="delivered") >= 25

        await until(receipts_in, 30, "25 messages delivered, seen in /metrics")
        after = scrape((await client.get("/metrics")).text)
        assert value(after, "denpo_messages_accepted_total") == 25
        assert value(after, "denpo_receipts_total") >= 25
        assert value(after, "denpo_carrier_submitted_total", carrier="docomo") == 20
        assert value(after, "denpo_carrier_responses_total", carrier="docomo", status="ESME_ROK") == 20
        assert value(after, "denpo_bind_submitted_total", carrier="au") == 5
        # the histogram moved: 25 observations, buckets cumulative, +Inf = count
        assert value(after, "denpo_submit_response_seconds_count") == 25
        assert value(after, "denpo_submit_response_seconds_bucket", carrier="docomo", le="+Inf") == 20
        assert value(after, "denpo_submit_response_seconds_sum") > 0
        buckets = sorted(
            (float(dict(ls)["le"]), v) for (n, ls), v in after.items()
            if n == "denpo_submit_response_seconds_bucket" and dict(ls)["carrier"] == "docomo"
        )
        counts = [v for _le, v in buckets]
        assert counts == sorted(counts)
        assert value(after, "denpo_store_commit_seconds_count") > value(before, "denpo_store_commit_seconds_count")
        assert value(after, "denpo_accept_to_submit_seconds_count", carrier="docomo") == 20
        assert value(after, "denpo_submit_to_receipt_seconds_count", carrier="docomo") == 20
        assert value(after, "denpo_submit_to_receipt_seconds_sum", carrier="au") > 0
        assert value(after, "denpo_carrier_receipts_total", carrier="docomo", result="delivered") == 20
        assert sum(v for (n, ls), v in after.items() if n == "denpo_bind_responses_total" and dict(ls)["carrier"] == "docomo") == 20
        assert value(after, "denpo_backlog_priority_messages", priority="normal") == 0  # all sent
        assert ("denpo_loop_lag_seconds_count", ()) in after
        assert value(after, "denpo_pacing_table_numbers", carrier="au") >= 0
        assert value(after, "denpo_bind_up", carrier="au") == 1
        assert value(after, "denpo_http_draining") == 0
        assert ("denpo_notification_seconds_count", ()) in after
        assert ("denpo_backlog_messages", ()) in after
        # OpenMetrics for a scraper that asks for it
        r = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert r.headers["content-type"].startswith("application/openmetrics-text") and r.text.endswith("# EOF\n")
        assert (await client.post("/metrics")).status_code == 405


def test_collector_survives_a_moved_section():
    class Odd:
        def stats(self) -> dict[str, Any]:
            return {"backlog": 3, "store": None, "carriers": {"x": {"pool": {"binds": [{"name": "x-1", "state": "up"}], "responses": None}}}}

    text = Metrics(Odd(), process=False).render()[0].decode()
    samples = scrape(text)
    assert value(samples, "denpo_backlog_messages") == 3
    assert value(samples, "denpo_bind_up", carrier="x", bind="x-1") == 1


async def test_readyz_lists_binds_and_follows_a_carrier(tmp_path):
    async with service(tmp_path) as (client, engine, api, sims):
        async def all_up() -> bool:
            r = await client.get("/readyz")
            return r.status_code == 200 and all(c["ready"] for c in r.json()["carriers"].values())

        await until(all_up, 30, "both carriers bound")
        body = (await client.get("/readyz")).json()
        assert body["status"] == "ready" and body["store"] == "ok" and body["http"] == "ok"
        assert body["carriers"]["docomo"]["binds_up"] == 1 and body["carriers"]["docomo"]["binds"] == 1
        assert body["carriers"]["docomo"]["states"][0]["state"] == "up"
        assert (await client.get("/readyz", params={"carrier": "docomo"})).status_code == 200
        assert (await client.get("/readyz", params={"carrier": "kddi"})).status_code == 404

        port = sims["docomo"].port
        await sims["docomo"].stop()  # the carrier goes away

        async def docomo_down() -> bool:
            return (await client.get("/readyz", params={"carrier": "docomo"})).status_code == 503

        await until(docomo_down, 30, "docomo down in /readyz?carrier=docomo")
        r = await client.get("/readyz")
        assert r.status_code == 200, r.text  # the service itself is ready: one carrier's outage is in the body
        body = r.json()
        assert body["carriers"]["docomo"]["ready"] is False and body["carriers"]["docomo"]["binds_up"] == 0
        assert body["carriers"]["docomo"]["states"][0]["state"] != "up"
        assert body["carriers"]["au"]["ready"] is True
        down = (await client.get("/readyz", params={"carrier": "docomo"})).json()
        assert down["status"] == "carrier_down" and down["carrier"] == "docomo"
        metrics = scrape((await client.get("/metrics")).text)
        assert value(metrics, "denpo_carrier_binds_up", carrier="docomo") == 0

        async with simulator("docomo", dlr_delay_ms=10, port=port):  # it comes back on the same port

            async def docomo_up() -> bool:
                return (await client.get("/readyz", params={"carrier": "docomo"})).status_code == 200

            await until(docomo_up, 30, "docomo back in /readyz?carrier=docomo")
            metrics = scrape((await client.get("/metrics")).text)
            assert value(metrics, "denpo_bind_reconnects_total", carrier="docomo") == 1

            api.draining = True  # as denpo serve sets it on SIGTERM
            r = await client.get("/readyz")
            assert r.status_code == 503 and r.json()["status"] == "draining" and r.headers["retry-after"]
            assert (await client.get("/healthz")).status_code == 200
            r = await client.post("/v1/messages", json={"to": "080-5555-0000", "text": "x", "carrier": "docomo"},
                                  headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            api.draining = False
