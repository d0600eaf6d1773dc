"""End to end through the embedded API: submit → store → pools → simulators → receipts → final status.

    denpo bench e2e [--count 200000] [--au-repeat K] [--batch 500] [--callers 4]

The engine runs in this process (uvloop) on a fresh store; one ``denpo sim``
process per carrier.  Messages go to all four carriers round robin, to
distinct numbers, ``--callers`` submit_many calls of ``--batch`` messages
in flight at once (a front end's concurrent requests).  With ``--au-repeat K`` a set of au numbers gets K
messages each on top (paced 12 s apart by the engine), and the au
simulator's violation count is reported; ``unpaced_final_per_s`` is then the
other messages' rate on its own (the paced ones take (K−1) × 12 s by rule,
``paced_seconds``).  ``lost`` = accepted − final.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from typing import Any

from bench._harness import process_usage, self_usage
from bench.sim_bench import start_simulator
from engine.api import StatusEvent, SubmitRequest
from engine.engine import Engine
from engine.ops.config import CARRIERS, parse_config

__all__ = ["run", "start_simulators", "engine_config"]


async def start_simulators(dlr_delay_ms: float = 100.0, extra: tuple[str, ...] = ()) -> dict[str, tuple[Any, dict[str, Any]]]:
    sims = {}
    for carrier in CARRIERS:
        sims[carrier] = await start_simulator(
            carrier, "--dlr-delay-ms", str(dlr_delay_ms), "--partial-failure-rate", "0", "--track-numbers", "1000000", *extra
        )
    return sims


def engine_config(sims: dict[str, tuple[Any, dict[str, Any]]], store_path: str, *, binds: int = 2, window: int = 100, **engine: Any) -> Any:
    return parse_config(
        {
            "store": {"path": store_path},
            "engine": engine,
            "smpp": {"window": window, "response_timeout_s": 30.0},
            "accounts": {"bench": {"senders": {c: ["0120000000"] for c in CARRIERS}}},
            "carriers": {
                c: {
                    "endpoints": [{"host": "127.0.0.1", "port": ready["port"], "system_id": "bench", "password": "bench"}],
                    "binds": binds,
                }
                for c, (_proc, ready) in sims.items()
            },
        }
    )


async def run(*, count: int, au_repeat: int = 0, batch: int = 500, callers: int = 4, binds: int = 2, window: int = 100) -> dict[str, Any]:
    import aiohttp

    sims = await start_simulators()
    folder = tempfile.mkdtemp(prefix="denpo-e2e-")
    au_numbers = max(1, min(1000, count // 20)) if au_repeat else 0
    def requests(start: int, stop: int) -> list[SubmitRequest]:
        # made batch by batch, as a front end would: holding all of them up front
        # would make the benchmark's own objects part of what the GC scans
        return [
            SubmitRequest(account="bench", to=f"+8190{i:08d}", text="ベンチマーク: お客様のご注文を承りました。", carrier=CARRIERS[i % 4])
            for i in range(start, stop)
        ]

    paced = [
        SubmitRequest(account="bench", to=f"+8170{n:08d}", text=f"au pacing {k}", carrier="au")
        for k in range(au_repeat)
        for n in range(au_numbers)
    ]
    total = count + len(paced)
    try:
        config = engine_config(sims, f"{folder}/denpo.db", binds=binds, window=window, backlog_limit=max(1_000_000, total), working_set=50_000)
        async with Engine(config) as engine:
            while any(c.pool.binds_up < binds for c in engine.carriers.values()):  # type: ignore[union-attr]
                await asyncio.sleep(0.01)
            before = {c: process_usage(p.pid) for c, (p, _r) in sims.items()}
            me_before = self_usage()
            loop_cpu_before = time.thread_time()  # the event loop's thread: the engine's critical resource
            start = time.perf_counter()
            final = 0
            statuses: dict[str, int] = {}
            accept_errors = 0
            last_final = start

            async def consume() -> None:
                nonlocal final, last_final, last_unpaced
                async for event in engine.events():
                    if isinstance(event, StatusEvent) and event.final and not event.late:
                        final += 1
                        statuses[event.status] = statuses.get(event.status, 0) + 1
                        if event.id not in paced_ids:
                            unpaced[0] += 1
                            last_unpaced = time.perf_counter()
                        if final >= accepted_total[0] and submitting_done.is_set():
                            last_final = time.perf_counter()
                            return

            accepted_total = [0]
            unpaced = [0]
            last_unpaced = start
            paced_ids: set[str] = set()
            submitting_done = asyncio.Event()
            consumer = asyncio.create_task(consume())
            # the paced ones first: they take longest.  ``callers`` submit_many calls
            # are in flight at once, as a front end's concurrent requests would be
            # (each awaits its commit; one caller alone would measure commit latency)
            chunks = iter(range(0, total, batch))

            async def caller() -> None:
                nonlocal accept_errors
                for k in chunks:
                    chunk = paced[k : k + batch]
                    if len(chunk) < batch:
                        first = max(0, k - len(paced))
                        chunk = chunk + requests(first, min(count, first + batch - len(chunk)))
                    results = await engine.submit_many(chunk)
                    if k < len(paced):
                        paced_ids.update(r.id for r in results[: len(paced) - k] if not isinstance(r, Exception))
                    ok = sum(1 for r in results if not isinstance(r, Exception))
                    accepted_total[0] += ok
                    accept_errors += len(results) - ok

            async with asyncio.TaskGroup() as callers_group:
                for _ in range(callers):
                    callers_group.create_task(caller())
            accepted_seconds = time.perf_counter() - start
            submitting_done.set()
            if final >= accepted_total[0]:
                consumer.cancel()
                last_final = time.perf_counter()
            else:
                await asyncio.wait_for(consumer, timeout=max(600.0, total / 100))
            seconds = last_final - start
            me_after = self_usage()
            loop_cpu = time.thread_time() - loop_cpu_before
            after = {c: process_usage(p.pid) for c, (p, _r) in sims.items()}
            engine_stats = engine.stats()
        violations = 0
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{sims['au'][1]['control_port']}/stats") as resp:
                violations = (await resp.json())["violations"]
    finally:
        for proc, _ready in sims.values():
            proc.terminate()
        for proc, _ready in sims.values():
            await proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
    accepted = accepted_total[0]
    return {
        "count": count,
        "batch": batch,
        "callers": callers,
        "au_repeat": au_repeat,
        "au_numbers": au_numbers,
        "accepted": accepted,
        "accept_errors": accept_errors,
        "final": final,
        "lost": accepted - final,
        "statuses": statuses,
        "seconds": round(seconds, 3),
        "accept_seconds": round(accepted_seconds, 3),
        "final_per_s": round(final / seconds) if seconds > 0 else None,
        # with --au-repeat: the other messages' figure on its own (the paced ones take
        # (K-1) x 12 s by rule), and how long the paced ones took
        "unpaced_final": unpaced[0],
        "unpaced_final_per_s": round(unpaced[0] / (last_unpaced - start)) if last_unpaced > start else None,
        "paced": len(paced_ids),
        "paced_seconds": round(seconds, 3) if paced_ids else None,
        "accepted_per_s": round(accepted / accepted_seconds) if accepted_seconds > 0 else None,
        "au_pacing_violations": violations,
        "engine_cpu_s": round(me_after["cpu_s"] - me_before["cpu_s"], 2),
        # the figure to watch between changes: less noisy than the rate on a shared machine
        "engine_cpu_us_per_message": round(1e6 * (me_after["cpu_s"] - me_before["cpu_s"]) / final, 1) if final else None,
        "loop_thread_cpu_us_per_message": round(1e6 * loop_cpu / final, 1) if final else None,
        "loop_lag_ms": {k: v for k, v in engine_stats["loop_lag"].items() if k != "histogram"},
        "store": engine_stats["store"],
        "engine_counters": {k: v for k, v in engine_stats["counters"].items() if not k.startswith("final_")},
        "processes": {
            "engine": me_after,
            **{f"sim_{c}": {**after[c], "cpu_s": round(after[c]["cpu_s"] - before[c]["cpu_s"], 2)} for c in after},
        },
        "rss_mb": me_after["rss_mb"],
        "cpu_s": round(me_after["cpu_s"] - me_before["cpu_s"], 2),
    }
