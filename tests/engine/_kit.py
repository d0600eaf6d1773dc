"""Helpers for the engine tests: configs around running simulators, an event log.

Engine and simulators share one event loop (and so, under looptime, one
virtual clock); wall time for the engine follows the loop clock so that
``send_at``/``validity`` (wall) and receipt timeouts (loop) agree.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import threading
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator, Callable

from carriers.smsc import SmscSimulator
from engine.api import MoEvent, StatusEvent
from engine.engine import Engine
from engine.ops.config import Config, parse_config, simulator_settings

WALL0 = 1_800_000_000

SENDERS = {"au": ["0120000001"], "docomo": ["0120000002"], "softbank": ["251000"], "rakuten": ["0120000004"]}


def au_number(i: int) -> str:
    """Distinct national mobile numbers; wire form is ``81`` + number without the trunk 0."""
    return f"090{i:08d}"


def wire(national: str) -> str:
    return "81" + national.replace("-", "")[1:]


def e164(national: str) -> str:
    return "+" + wire(national)


@asynccontextmanager
async def simulator(carrier: str, **knobs: Any) -> AsyncIterator[SmscSimulator]:
    knobs.setdefault("seed", 1)
    loop = asyncio.get_running_loop()
    sim = SmscSimulator(simulator_settings(carrier=carrier, port=knobs.pop("port", 0), **knobs), wallclock=lambda: WALL0 + loop.time())
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


def config(
    tmp_path: Path,
    sims: dict[str, SmscSimulator | int],
    *,
    engine: dict[str, Any] | None = None,
    accounts: dict[str, Any] | None = None,
    carriers: dict[str, dict[str, Any]] | None = None,
    lookup: dict[str, Any] | None = None,
    smpp: dict[str, Any] | None = None,
) -> Config:
    """A config with one endpoint per simulator (or port), account ``demo`` with senders for all carriers."""
    data: dict[str, Any] = {
        "store": {"path": str(tmp_path / "denpo.db")},
        "accounts": accounts if accounts is not None else {"demo": {"senders": SENDERS}},
        "carriers": {},
    }
    for name, sim in sims.items():
        port = sim if isinstance(sim, int) else sim.port
        c = {"endpoints": [{"host": "127.0.0.1", "port": port, "system_id": "denpo"}], "reconnect_base_s": 0.2, "reconnect_cap_s": 1.0}
        c.update((carriers or {}).get(name, {}))
        data["carriers"][name] = c
    if engine:
        data["engine"] = engine
    if lookup:
        data["lookup"] = lookup
    if smpp:
        data["smpp"] = smpp
    return parse_config(data)


async def settle(awaitable: Any) -> Any:
    """Await something that waits on the store's writer thread, with the loop clock
    following real time meanwhile.

    looptime fast-forwards to the next timer when the loop has nothing ready; a
    future resolved from a plain thread (the store's ``accept``/``flush``) is
    invisible to it, so without this the virtual clock would leap ahead by many
    timer intervals (seconds to minutes) while a commit runs.  A pending
    ``run_in_executor`` future makes looptime step in real time instead.
    """
    loop = asyncio.get_running_loop()
    gate = threading.Event()
    holder = loop.run_in_executor(None, gate.wait)
    try:
        return await awaitable
    finally:
        gate.set()
        await holder


class _StoreWatch:
    """Keeps looptime from fast-forwarding while the store's writer thread has work.

    The engine waits on commits (accepts, flushes, receipts acknowledged once
    stored, sending paused while the store lags); the writer thread reports
    back with ``call_soon_threadsafe``, which looptime cannot foresee, so it
    would jump the virtual clock to the next timer meanwhile.  While anything
    put into the store's queue is not committed yet, an executor future is
    pending, and looptime then lets the clock follow real time instead.
    """

    _executor = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="kit-store-watch")

    def __init__(self, store: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.store = store
        self.loop = loop
        self.inner = store._queue
        self.puts = 0
        self.cond = threading.Condition()
        self.holder: asyncio.Future[None] | None = None
        original = store._commit

        def commit(*args: Any) -> None:
            try:
                original(*args)
            finally:
                with self.cond:
                    self.cond.notify_all()

        store._commit = commit
        store._queue = self

    # the queue interface the store uses
    def put(self, item: Any) -> None:
        if isinstance(item, tuple):
            self.puts += 1
            if threading.current_thread() is threading.main_thread() and (self.holder is None or self.holder.done()):
                self.holder = self.loop.run_in_executor(self._executor, self._drained)
        self.inner.put(item)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get(*args, **kwargs)

    def get_nowait(self) -> Any:
        return self.inner.get_nowait()

    def qsize(self) -> int:
        return self.inner.qsize()

    def _drained(self) -> None:
        with self.cond:
            while self.store.committed_ops < self.puts and self.store._writer is not None:
                self.cond.wait(0.05)


def make_engine(cfg: Config, **kwargs: Any) -> Engine:
    loop = asyncio.get_running_loop()
    engine = Engine(cfg, wallclock=kwargs.pop("wallclock", lambda: WALL0 + loop.time()), **kwargs)
    _StoreWatch(engine.store, loop)
    return engine


class EventLog:
    """Consumes ``engine.events()`` in the background; tests wait on predicates over what came."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.events: list[StatusEvent | MoEvent] = []
        self.finals: dict[str, StatusEvent] = {}  # first final event per id
        self.late: list[StatusEvent] = []
        self.finals_by_id: dict[str, list[StatusEvent]] = collections.defaultdict(list)
        self.submitted: dict[str, StatusEvent] = {}
        self.mo: list[MoEvent] = []
        self._changed = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        async for event in self.engine.events():
            self.events.append(event)
            if isinstance(event, MoEvent):
                self.mo.append(event)
            elif event.final:
                self.finals_by_id[event.id].append(event)
                self.finals.setdefault(event.id, event)
                if event.late:
                    self.late.append(event)
            elif event.status == "submitted":
                self.submitted.setdefault(event.id, event)
            self._changed.set()

    async def wait(self, predicate: Callable[[], bool], timeout: float) -> None:
        """Wait (virtual seconds) until ``predicate()``; TimeoutError with context otherwise."""
        try:
            async with asyncio.timeout(timeout):
                while not predicate():
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            raise AssertionError(
                f"condition not met within {timeout} s; finals={len(self.finals)} events={len(self.events)} "
                f"stats={ {k: v for k, v in self.engine.stats().items() if k in ('backlog', 'live', 'awaiting_receipts', 'counters')} }"
            ) from None

    async def wait_finals(self, ids: Any, timeout: float) -> None:
        ids = set(ids)
        await self.wait(lambda: ids <= self.finals.keys(), timeout)

    async def stop(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass


@asynccontextmanager
async def running(cfg: Config, **kwargs: Any) -> AsyncIterator[tuple[Engine, EventLog]]:
    engine = make_engine(cfg, **kwargs)
    await settle(engine.start())
    log = EventLog(engine)
    try:
        yield engine, log
    finally:
        await engine.close()  # not settled: nothing is measured after it, and a drain wait stays virtual
        await log.stop()
