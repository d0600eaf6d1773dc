"""The pool alone against an SMSC: submit_sm/s with receipts ingested.

    denpo bench pool [--smsc HOST:PORT] [--system-id ID --password PW] [--binds 4] [--window 100]
                     [--count N] [--rate R] [--carrier docomo]

Without ``--smsc`` a ``denpo sim`` process is started for the run (receipts
after 100 ms), so the pool's process and the simulator's each have a core.
A submission whose fate is unknown (connection lost) is sent again, as the
engine's default re-sending rule does.  Prints ``sent``, ``acked``,
``receipts``, ``errors``, ``seconds``, ``submit_per_s`` and per-process
``rss_mb`` / ``cpu_s``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench._harness import process_usage, self_usage
from bench.sim_bench import start_simulator
from engine.ops.config import CarrierSettings, Endpoint, SmppSettings
from engine.pool import CarrierPool, Submission
from engine.smpp.codec import encode
from engine.smpp.constants import EsmClass
from engine.smpp.pdu import Pdu, SubmitSm

__all__ = ["run"]


class _Source:
    """Makes submissions as the pool asks for them (no up-front list of N objects)."""

    def __init__(self, count: int) -> None:
        self.left = count
        self.again: list[Submission] = []
        text = "ベンチマーク用のメッセージです。".encode("utf-16-be")
        self._bodies = [
            encode(
                SubmitSm(
                    source_addr_ton=2, source_addr_npi=1, source_addr="0120123456",
                    dest_addr_ton=1, dest_addr_npi=1, destination_addr=f"8190{n:08d}",
                    registered_delivery=1, data_coding=8, short_message=text,
                )
            )[16:]
            for n in range(1000)
        ]
        self.made = 0

    def take(self, n: int, now: float) -> list[Submission]:
        out = self.again[:n]
        del self.again[:n]
        bodies = self._bodies
        while len(out) < n and self.left:
            self.left -= 1
            self.made += 1
            out.append(Submission(bodies[self.made % 1000], self.made))
        return out


class _Sink:
    def __init__(self, count: int, pool_ref: list[CarrierPool]) -> None:
        self.count = count
        self.acked = 0
        self.errors = 0
        self.receipts = 0
        self.mo = 0
        self.fate_unknown = 0
        self.responses_done = asyncio.Event()
        self.receipts_done = asyncio.Event()
        self.last_response = 0.0
        self.last_receipt = 0.0
        self._pool = pool_ref
        self._source: _Source | None = None

    def _check(self) -> None:
        if self.acked + self.errors >= self.count and not self.responses_done.is_set():
            self.last_response = time.perf_counter()
            self.responses_done.set()
        if self.responses_done.is_set() and self.receipts >= self.acked:
            self.receipts_done.set()

    def submitted(self, sub: Submission, message_id: str, bind: str, now: float) -> None:
        self.acked += 1
        self._check()

    def failed(self, sub: Submission, status: int, now: float) -> None:
        self.errors += 1
        self._check()

    def fate_unknown(self, subs: list[Submission], reason: str, now: float) -> None:
        self.fate_unknown += len(subs)
        assert self._source is not None
        self._source.again[:0] = subs
        self._pool[0].wake()

    def returned(self, subs: list[Submission], now: float) -> None:
        pass

    def delivered(self, pdu: Pdu, bind: str, now: float, ack: Any = None) -> None:
        if pdu.esm_class & EsmClass.TYPE_MASK:
            self.receipts += 1
            self.last_receipt = time.perf_counter()
        else:
            self.mo += 1
        self._check()


async def run(
    *,
    smsc: str | None,
    system_id: str,
    password: str,
    binds: int,
    window: int,
    count: int,
    rate: float | None,
    carrier: str = "docomo",
    receipt_wait: float = 30.0,
) -> dict[str, Any]:
    proc = None
    if smsc is None:
        proc, ready = await start_simulator(carrier, "--dlr-delay-ms", "100", "--window", str(window))
        host, port = "127.0.0.1", int(ready["port"])
    else:
        host, _, port_text = smsc.rpartition(":")
        port = int(port_text)
    settings = CarrierSettings(
        endpoints=[Endpoint(host=host, port=port, system_id=system_id, password=password)],
        binds=binds,
        window=window,
        rate=rate,
        drain_timeout_s=5.0,
    )
    pool_ref: list[CarrierPool] = []
    sink = _Sink(count, pool_ref)
    source = _Source(count)
    sink._source = source
    pool = CarrierPool(carrier, settings, sink, source=source, smpp=SmppSettings(window=window, response_timeout_s=30.0))
    pool_ref.append(pool)
    try:
        async with pool:
            while pool.binds_up < binds:
                await asyncio.sleep(0.01)
            sim_before = process_usage(proc.pid) if proc else None
            me_before = self_usage()
            start = time.perf_counter()
            pool.wake()
            await asyncio.wait_for(sink.responses_done.wait(), timeout=max(120.0, count / 500))
            try:
                await asyncio.wait_for(sink.receipts_done.wait(), timeout=receipt_wait)
            except TimeoutError:
                pass
            end = max(sink.last_response, sink.last_receipt)
            me_after = self_usage()
            sim_after = process_usage(proc.pid) if proc else None
            stats = pool.stats()
    finally:
        if proc is not None:
            proc.terminate()
            await proc.wait()
    submit_seconds = sink.last_response - start
    seconds = end - start
    result: dict[str, Any] = {
        "smsc": smsc or f"denpo sim --carrier {carrier} (started for the run)",
        "binds": binds,
        "window": window,
        "rate": rate,
        "sent": stats["counters"].get("submitted", 0),
        "acked": sink.acked,
        "receipts": sink.receipts,
        "errors": sink.errors,
        "fate_unknown": sink.fate_unknown,
        "throttled": stats["counters"].get("throttled", 0),
        "seconds": round(seconds, 3),
        "submit_per_s": round(count / submit_seconds) if submit_seconds > 0 else None,
        "receipts_per_s": round(sink.receipts / seconds) if seconds > 0 else None,
        "submit_latency_p50_ms": round(pool.latency.quantile(0.5) * 1000, 2),
        "submit_latency_p99_ms": round(pool.latency.quantile(0.99) * 1000, 2),
        "engine_cpu_s": round(me_after["cpu_s"] - me_before["cpu_s"], 2),
        "engine_cpu_share": round((me_after["cpu_s"] - me_before["cpu_s"]) / seconds, 2) if seconds > 0 else None,
        "processes": {"engine": me_after},
    }
    if sim_before is not None and sim_after is not None:
        sim_cpu = sim_after["cpu_s"] - sim_before["cpu_s"]
        result["simulator_cpu_s"] = round(sim_cpu, 2)
        result["simulator_cpu_share"] = round(sim_cpu / seconds, 2) if seconds > 0 else None
        result["processes"]["simulator"] = sim_after
    return result
