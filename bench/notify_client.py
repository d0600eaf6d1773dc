"""Which HTTP client should carry notifications?  Measured, not guessed.

    .venv/bin/python -m bench.notify_client [--seconds 2] [--rounds 3] [--connections 1,50]

A receiver process (``bench.http_bench.Receiver``: a lean keep-alive server
answering 200 at once) and, in this process, each candidate client in turn,
alternating (A, B, A, B, ...) so drift on a shared machine cancels:

* ``aiohttp``  ``aiohttp.ClientSession`` with a pooled ``TCPConnector`` (what
  the notifier used before),
* ``lean``     ``engine.notify.client.HttpClient`` (what it uses now).

Each phase posts a signed-size result event (~300 bytes of JSON, the payload
a result notification carries) for ``--seconds`` from ``C`` concurrent
coroutines (``--connections``; one request in flight on each), then reports
requests/s and this process's CPU µs per request (the client's own cost —
the receiver runs elsewhere).  Also a ``GET`` phase (a Kannel ``dlr-url``
callback: no body, query string).  Prints one JSON object last; medians over
rounds, ratios per round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps(
    {
        "event_id": 123456, "id": 987654, "client_ref": "order-42", "status": "delivered", "carrier": "docomo",
        "to": "+819012345678", "parts": 1, "billable_units": 1, "error": None,
        "submitted_at": "2026-11-22T06:00:00.000Z", "done_at": "2026-11-22T06:00:00.100Z",
    }
).encode()


async def _receiver_main() -> None:
    from bench.http_bench import Receiver

    receiver = await Receiver().start()
    print(receiver.port, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)  # until the parent closes stdin


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


async def _phase(post: Any, url: str, method: str, connections: int, seconds: float) -> dict[str, float]:
    done = 0
    failed = 0
    stop = time.perf_counter() + seconds
    headers = {"Content-Type": "application/json"} if method == "POST" else {}
    body = BODY if method == "POST" else b""

    async def worker() -> None:
        nonlocal done, failed
        while time.perf_counter() < stop:
            status = await post(method, url, body, headers, 0.5)
            if status == 200:
                done += 1
            else:
                failed += 1

    for _ in range(3):  # warm the connections
        await post(method, url, body, headers, 0.5)
    cpu0, t0 = _cpu(), time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    cpu, wall = _cpu() - cpu0, time.perf_counter() - t0
    return {"per_s": round(done / wall), "cpu_us_per_request": round(cpu / max(done, 1) * 1e6, 1), "failed": failed}


async def _candidates() -> dict[str, tuple[Any, Any]]:
    import aiohttp

    from engine.notify.client import HttpClient

    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), headers={"User-Agent": "denpo-notify"})

    async def aiohttp_post(method: str, url: str, body: bytes, headers: dict[str, str], timeout: float) -> int:
        async with session.request(
            method, url, data=body if method == "POST" else None, headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout), allow_redirects=False,
        ) as response:
            await response.read()
            return response.status

    lean = HttpClient()
    return {"aiohttp": (aiohttp_post, session.close), "lean": (lean.request, lean.close)}


async def run(seconds: float, rounds: int, connections: list[int]) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.notify_client", "receiver"], cwd=str(ROOT), stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        urls = {"POST": f"{base}/results", "GET": f"{base}/dlr?id=987654&status=1&to=%2B819012345678&t=2026-11-22+06%3A00%3A00"}
        candidates = await _candidates()
        figures: dict[str, dict[str, list[dict[str, float]]]] = {}
        for _ in range(rounds):
            for c in connections:
                for method in ("POST", "GET"):
                    for name, (post, _close) in candidates.items():
                        key = f"{method.lower()}_c{c}"
                        figures.setdefault(key, {}).setdefault(name, []).append(await _phase(post, urls[method], method, c, seconds))
        for _post, close in candidates.values():
            await close()
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(timeout=10)
    out: dict[str, Any] = {}
    for key, by_name in figures.items():
        row: dict[str, Any] = {}
        for name, runs in by_name.items():
            row[name] = {
                "per_s": statistics.median(r["per_s"] for r in runs),
                "cpu_us_per_request": statistics.median(r["cpu_us_per_request"] for r in runs),
                "failed": sum(r["failed"] for r in runs),
            }
        ratios = [a["cpu_us_per_request"] / b["cpu_us_per_request"] for a, b in zip(by_name["aiohttp"], by_name["lean"])]
        row["cpu_ratio_aiohttp_over_lean"] = round(statistics.median(ratios), 2)
        out[key] = row
    return out


def main() -> int:
    if sys.argv[1:2] == ["receiver"]:
        import uvloop

        uvloop.run(_receiver_main())
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", default="1,50")
    args = parser.parse_args()
    import uvloop

    from bench._harness import machine

    figures = uvloop.run(run(args.seconds, args.rounds, [int(c) for c in args.connections.split(",")]))
    figures["command"] = "python -m bench.notify_client " + " ".join(sys.argv[1:])
    figures["machine"] = machine()
    figures["date"] = time.strftime("%Y-%m-%d")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
