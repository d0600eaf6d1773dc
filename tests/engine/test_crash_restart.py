"""Crash test: the engine is killed with SIGKILL mid-run, restarted, and finishes.

Every accepted message reaches a final status; messages the simulators saw
twice stay within the in-flight windows; the au simulator sees no pacing
violation across the restart.  Real processes, real time (bounded).
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
from pathlib import Path

import aiohttp
import msgspec

from bench.e2e_bench import engine_config, start_simulators

ROOT = Path(__file__).resolve().parents[2]
N = 50_000
BINDS = 2
WINDOW = 50


async def _stats(port: int) -> dict:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{port}/stats?numbers=1") as resp:
            return await resp.json()


def _finished(path: Path) -> int:
    with sqlite3.connect(path, timeout=5) as db:
        (n,) = db.execute("SELECT count(*) FROM messages WHERE status NOT IN ('accepted', 'queued', 'submitted')").fetchone()
    return n


async def _worker(config_file: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.engine._crash_worker", str(config_file), str(N),
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )


async def test_kill_9_mid_run_then_restart_finishes_everything(tmp_path: Path) -> None:
    sims = await start_simulators(dlr_delay_ms=200)
    workers: list[asyncio.subprocess.Process] = []
    try:
        # a receipt acknowledged just before the kill but not yet stored is gone:
        # its message ends indefinite at the receipt timeout (kept short here)
        config = engine_config(sims, str(tmp_path / "denpo.db"), binds=BINDS, window=WINDOW, receipt_timeout_s=15.0)
        data = msgspec.to_builtins(config)
        data["accounts"] = {"crash": {"senders": {c: ["0120000000"] for c in sims}}}
        config_file = tmp_path / "config.json"
        config_file.write_text(json.dumps(data))

        first = await _worker(config_file)
        workers.append(first)
        assert first.stdout is not None
        line = json.loads(await asyncio.wait_for(first.stdout.readline(), 120))
        assert line == {"phase": "submitted", "accepted": N}
        # kill it without warning once a random share of the messages is final
        target = int(N * random.uniform(0.1, 0.6))
        async with asyncio.timeout(120):
            while _finished(tmp_path / "denpo.db") < target:
                await asyncio.sleep(0.05)
        done_early = first.returncode is not None
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()

        with sqlite3.connect(tmp_path / "denpo.db") as db:
            before = dict(db.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())
        print("at the kill:", before)
        assert sum(before.values()) == N  # every accepted message was durable

        second = await _worker(config_file)
        workers.append(second)
        assert second.stdout is not None
        line = json.loads(await asyncio.wait_for(second.stdout.readline(), 120))
        assert line == {"phase": "submitted", "accepted": N}  # idempotent: nothing stored twice
        line = json.loads(await asyncio.wait_for(second.stdout.readline(), 300))
        assert line["phase"] == "done"
        await asyncio.wait_for(second.wait(), 60)
        assert second.returncode == 0

        with sqlite3.connect(tmp_path / "denpo.db") as db:
            after = dict(db.execute("SELECT status, count(*) FROM messages GROUP BY status").fetchall())
        print("after the restart:", after)
        assert sum(after.values()) == N
        assert set(after) <= {"delivered", "indefinite", "partially_failed", "undeliverable"}

        seen_twice = 0
        violations = 0
        for carrier, (_proc, ready) in sims.items():
            stats = await _stats(ready["control_port"])
            violations += stats["violations"]
            if carrier == "au":
                continue  # au numbers repeat on purpose
            seen_twice += sum(1 for times in stats["submit_times"].values() if len(times) > 1)
        window = BINDS * WINDOW * len(sims)
        print(f"seen twice: {seen_twice} (in-flight window {window}); au violations: {violations}; killed early: {done_early}")
        assert seen_twice <= window
        assert violations == 0
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
        for proc, _ready in sims.values():
            proc.terminate()
        for proc, _ready in sims.values():
            await proc.wait()
