"""denpo bench http, tiny: denpo serve + the load client process + the receiver, end to end."""

from __future__ import annotations

import pytest

from bench.http_bench import (
    RawClient,
    Receiver,
    build_request,
    percentiles,
    run,
    write_config,
)
from engine.ops.config import load_config

KEYS = {
    "accepted", "final", "notified", "lost", "seconds", "accepted_per_s", "final_per_s",
    "accept_latency_ms", "rss_mb", "cpu_s", "processes", "count",
}


def test_write_config_is_valid_and_moves_every_port(tmp_path):
    path = write_config(tmp_path, token="t" * 43, receiver_port=1234)
    config = load_config(path)
    demo = config.accounts["demo"]
    assert demo.rate_limit == 1_000_000 and demo.burst == 1_000_000
    assert demo.result_url == "http://127.0.0.1:1234/results" and demo.notify_batch == 100
    sim_ports = {s.carrier: s.port for s in config.simulators}
    assert not set(sim_ports.values()) & {2775, 2776, 2777, 2778}
    for name, carrier in config.carriers.items():
        assert [e.port for e in carrier.endpoints] == [sim_ports[name]]


async def test_receiver_counts_events_once_and_answers_200():
    receiver = await Receiver().start()
    conn = await RawClient.connect("127.0.0.1", receiver.port)
    try:
        one = b'{"event_id": 1, "id": "a", "status": "delivered"}'
        many = b'[{"event_id": 1, "id": "a", "status": "delivered"}, {"event_id": 2, "id": "b", "status": "expired"}]'
        for body in (one, many):
            status, _head, _body = await conn.request(build_request("x", "/results", "-", body))
            assert status == 200
    finally:
        conn.transport.close()
        await receiver.close()
    assert len(receiver.events) == 2 and len(receiver.messages) == 2
    assert receiver.deliveries == 3 and receiver.statuses == {"delivered": 1, "expired": 1}


def test_percentiles():
    assert percentiles([]) == {"p50": None, "p90": None, "p99": None, "p999": None}
    figures = percentiles([i / 1000 for i in range(1, 1001)])
    assert figures == {"p50": 501.0, "p90": 901.0, "p99": 991.0, "p999": 1000.0}


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "count"), [("single", 200), ("batch", 2000)])
async def test_run_tiny(mode, count):
    figures = await run(mode=mode, count=count, concurrency=8 if mode == "single" else 2, stall_s=20.0, half_peak=mode == "single")
    assert KEYS <= set(figures)
    assert figures["accepted"] == count
    assert set(figures["accept_latency_ms"]) == {"p50", "p90", "p99", "p999"}
    assert {"serve", "client", "receiver"} <= set(figures["processes"])
    if figures["final"] is not None:  # notifications live
        assert figures["final"] + figures["lost"] == count
        assert figures["notified"] >= figures["final"]
    if mode == "single":  # then half of the peak it reached, new messages, each notified
        half = figures["half_peak"]
        assert 0 < half["rate"] <= figures["accepted_per_s"] and half["accepted"] == half["count"] >= 1000
        assert half["final"] == half["accepted"] and set(half["accept_latency_ms"]) == {"p50", "p90", "p99", "p999"}
