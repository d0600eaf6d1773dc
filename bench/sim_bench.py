"""Simulator throughput: submit_sm/s one simulator process sustains.

The simulator runs as its own process (``denpo sim``, uvloop, one core); a
lean load client in this process keeps ``window`` submit_sm outstanding on
each of ``binds`` transceiver binds, acknowledges every receipt, and stops
after ``count`` messages.  Figures: submits and receipts per second, and the
CPU seconds and RSS of both processes.

    denpo bench sim [--count 200000] [--window 100] [--binds 1] [--no-receipts]

:func:`run_in_process` measures the simulator's own CPU per message without
sockets or a second process, steadier on a shared machine (see its docstring):

    python -m bench.sim_bench [--count 50000] [--carrier docomo] [--batch 50]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import sys
import time
from typing import Any

from bench._harness import process_usage, self_usage
from engine.smpp.constants import CommandId
from engine.smpp.pdu import BindTransceiver, DeliverSmResp, SubmitSm
from engine.smpp.session import Request, Response, Role, Session
from engine.transport import SmppConnection

__all__ = ["run", "run_in_process", "start_simulator"]


async def start_simulator(carrier: str, *extra: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """Start ``denpo sim`` on free ports; returns the process and its ready line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "sim", "--carrier", carrier, "--port", "0", "--control-port", "0", *extra,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        raise RuntimeError("simulator exited before it was ready")
    return proc, json.loads(line)


class _Load:
    """Keeps every window full until ``count`` submits went out; counts what comes back."""

    def __init__(self, count: int, receipts: bool) -> None:
        self.remaining = count
        self.count = count
        self.receipts_wanted = receipts
        self.acked = 0
        self.errors = 0
        self.receipts = 0
        self.responses_done_at = 0.0
        self.done = asyncio.Event()
        self.bound = 0
        self._numbers = [f"8190{n:08d}" for n in range(10_000)]
        self._template = SubmitSm(
            source_addr_ton=2,
            source_addr_npi=1,
            source_addr="0120123456",
            dest_addr_ton=1,
            dest_addr_npi=1,
            data_coding=8,
            registered_delivery=1 if receipts else 0,
            short_message="ベンチマーク用のメッセージです。".encode("utf-16-be"),
        )

    def pump(self, conn: SmppConnection) -> None:
        session = conn.session
        template = self._template
        numbers = self._numbers
        while self.remaining and session.free_slots > 0:
            self.remaining -= 1
            template.destination_addr = numbers[self.remaining % 10_000]
            conn.send(template)

    def connection_made(self, conn: SmppConnection) -> None:
        pass

    def handle_events(self, conn: SmppConnection, events: list[Any]) -> None:
        for ev in events:
            kind = type(ev)
            if kind is Response:
                if ev.request_command_id == CommandId.SUBMIT_SM:
                    if ev.pdu.command_status:
                        self.errors += 1
                    else:
                        self.acked += 1
                else:  # the bind
                    self.bound += 1
            elif kind is Request and ev.pdu.command_id == CommandId.DELIVER_SM:
                conn.send(DeliverSmResp(sequence_number=ev.pdu.sequence_number))
                self.receipts += 1
        if self.bound:
            self.pump(conn)
        if self.acked + self.errors >= self.count:
            if not self.responses_done_at:
                self.responses_done_at = time.perf_counter()
            if not self.receipts_wanted or self.receipts >= self.acked:
                self.done.set()

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        self.done.set()


async def run(*, count: int, window: int, binds: int, receipts: bool, carrier: str = "docomo", dlr_delay_ms: float = 100.0) -> dict[str, Any]:
    import aiohttp

    proc, ready = await start_simulator(carrier, "--dlr-delay-ms", str(dlr_delay_ms), "--window", str(window))
    loop = asyncio.get_running_loop()
    load = _Load(count, receipts)
    conns = []
    try:
        for _ in range(binds):
            session = Session(Role.ESME, window=window, response_timeout=60.0, enquire_link_interval=None)
            _t, conn = await loop.create_connection(lambda s=session: SmppConnection(s, load), "127.0.0.1", ready["port"])
            conn.send(BindTransceiver(system_id="bench", password="bench"))
            conns.append(conn)
        while load.bound < binds:
            await asyncio.sleep(0.01)
        sim_before = process_usage(proc.pid)
        me_before = self_usage()
        start = time.perf_counter()
        for conn in conns:
            load.pump(conn)
        await asyncio.wait_for(load.done.wait(), timeout=max(60.0, count / 1000))
        seconds = time.perf_counter() - start
        submit_seconds = load.responses_done_at - start
        sim_after = process_usage(proc.pid)
        me_after = self_usage()
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{ready['control_port']}/stats") as resp:
                stats = await resp.json()
    finally:
        for conn in conns:
            conn.abort()
        proc.terminate()
        await proc.wait()
    sim_cpu = sim_after["cpu_s"] - sim_before["cpu_s"]
    return {
        "carrier": carrier,
        "count": count,
        "window": window,
        "binds": binds,
        "receipts_requested": receipts,
        "dlr_delay_ms": dlr_delay_ms,
        "sent": count,
        "acked": load.acked,
        "errors": load.errors,
        "receipts": load.receipts,
        "seconds": round(seconds, 3),
        "submit_per_s": round(count / submit_seconds),
        "receipts_per_s": round(load.receipts / seconds) if receipts else 0,
        "sim_submits_seen": stats.get("submit_sm"),
        "sim_cpu_s": round(sim_cpu, 2),
        "sim_cpu_share": round(sim_cpu / seconds, 2),
        "sim_rss_mb": sim_after["rss_mb"],
        "client_cpu_s": round(me_after["cpu_s"] - me_before["cpu_s"], 2),
        "client_rss_mb": me_after["rss_mb"],
        "processes": {"simulator": sim_after, "client": me_after},
    }


# --- in process --------------------------------------------------------------------


class _CapturingTransport:
    """Just enough of a transport for an SmppConnection: keeps what is written."""

    def __init__(self) -> None:
        self.out: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.out.append(data)

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


_HEADER = struct.Struct(">IIII")


async def run_in_process(*, count: int = 50_000, carrier: str = "docomo", batch: int = 50, binds: int = 2) -> dict[str, Any]:
    """The simulator's CPU per message in this thread, as bench e2e loads it
    (distinct numbers, ``--track-numbers 1000000``, no partial failures).

    A real SmscSimulator, SmppConnection and Session on a capturing transport:
    ``batch`` pre-encoded submit_sm per read, receipts due at once
    (``dlr_delay_ms=0``, the same code path as 100 ms) and acknowledged in one
    read.  The machine is shared, so next to the µs the figure is also given
    as ``ratio``: the simulator's CPU over that of decoding the same submits
    with the engine's PduDecoder, measured interleaved (it moves less with the
    neighbours' load than the µs do)."""
    from carriers.smsc import SmscSimulator
    from engine.ops.config import simulator_settings
    from engine.smpp.codec import PduDecoder, encode

    settings = simulator_settings(
        carrier=carrier, port=0, seed=0, dlr_delay_ms=0, partial_failure_rate=0, track_numbers=1_000_000, window=100
    )
    sim = SmscSimulator(settings)
    await sim.start()
    conns = []
    for _ in range(binds):
        conn = sim._new_connection()
        transport = _CapturingTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(encode(BindTransceiver(sequence_number=1, system_id="bench", password="bench")))
        transport.out.clear()
        conns.append((conn, transport))
    submit = SubmitSm(
        source_addr_ton=2, source_addr_npi=1, source_addr="0120000000", dest_addr_ton=1, dest_addr_npi=1,
        data_coding=8, registered_delivery=1, short_message="ベンチマーク: お客様のご注文を承りました。".encode("utf-16-be"),
    )
    reads = []
    for start in range(0, count, batch):
        frames = []
        for i in range(start, min(count, start + batch)):
            submit.destination_addr = f"8190{i:08d}"
            submit.sequence_number = i + 2
            frames.append(encode(submit))
        reads.append(b"".join(frames))
    reference = client = 0.0
    receipts = 0
    began = time.thread_time()
    for k, data in enumerate(reads):
        t0 = time.thread_time()
        decoder = PduDecoder()
        decoder.feed(data)
        while decoder.next_pdu() is not None:
            pass
        reference += time.thread_time() - t0
        conns[k % binds][0].data_received(data)
        for _ in range(3):  # the receipt timer, then the flush
            await asyncio.sleep(0)
        for conn, transport in conns:
            if transport.out:
                t0 = time.thread_time()
                out = b"".join(transport.out)
                transport.out.clear()
                pos = 0
                acks = []
                while pos < len(out):
                    length, command_id, _status, seq = _HEADER.unpack_from(out, pos)
                    if command_id == CommandId.DELIVER_SM:
                        acks.append(_HEADER.pack(17, CommandId.DELIVER_SM_RESP, 0, seq) + b"\x00")
                    pos += length
                receipts += len(acks)
                client += time.thread_time() - t0
                if acks:
                    conn.data_received(b"".join(acks))
    for _ in range(3):
        await asyncio.sleep(0)
    sim_cpu = time.thread_time() - began - reference - client
    stats = sim.stats()
    await sim.stop()
    return {
        "carrier": carrier,
        "count": count,
        "batch": batch,
        "accepted": stats["accepted"],
        "receipts": receipts,
        "receipts_acked": stats["receipts_acked"],
        "sim_cpu_us_per_message": round(sim_cpu / count * 1e6, 2),
        "reference_us_per_message": round(reference / count * 1e6, 2),
        "ratio": round(sim_cpu / reference, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=run_in_process.__doc__.splitlines()[0])  # type: ignore[union-attr]
    parser.add_argument("--count", type=int, default=50_000)
    parser.add_argument("--carrier", default="docomo")
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(run_in_process(count=args.count, carrier=args.carrier, batch=args.batch))))


if __name__ == "__main__":
    main()
