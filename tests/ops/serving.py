"""`denpo serve` as a subprocess for the ops tests: start it on the embedded
default (free ports, a data dir under tmp), read its JSON lines, end it by PID."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

TOKEN = "ops-test-token-0123456789"
ROOT = Path(__file__).resolve().parents[2]


class Serve:
    def __init__(self, proc: asyncio.subprocess.Process, ready: dict[str, Any]) -> None:
        self.proc, self.ready = proc, ready
        self.url: str = ready.get("http", "")

    async def line(self, timeout: float = 60.0) -> dict[str, Any]:
        """The next JSON line on stdout (ValueError at EOF)."""
        assert self.proc.stdout is not None
        raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        if not raw:
            raise ValueError("serve closed its stdout")
        return json.loads(raw)

    async def event(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                line = await self.line(timeout)
                if line.get("event") == name:
                    return line

    def client(self, **kw: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30, **kw)

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)

    async def wait(self, timeout: float = 60.0) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)


@contextlib.asynccontextmanager
async def serving(data_dir: Path, *args: str, env: dict[str, str] | None = None) -> AsyncIterator[Serve]:
    environ = {**os.environ, "DENPO_DEMO_TOKEN": TOKEN, **(env or {})}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "serve", "--http", "127.0.0.1:0", "--data-dir", str(data_dir), *args,
        stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, env=environ, cwd=ROOT,
    )
    try:
        serve = Serve(proc, {})
        ready = await serve.event("ready", 90)
        serve.ready, serve.url = ready, ready["http"]
        yield serve
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 60)
            except TimeoutError:
                children = _children(proc.pid)  # its simulators: ended by PID too
                proc.kill()
                await proc.wait()
                for pid in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            out += [int(p) for p in (task / "children").read_text().split()]
    return out


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 30.0, what: str = "", detail: Callable[[], str] = str) -> None:
    """Poll ``check`` (an HTTP request, as a client would) until true; bounded."""
    try:
        async with asyncio.timeout(timeout):
            while not await check():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"not within {timeout} s: {what}{detail()}") from None
