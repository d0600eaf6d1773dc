"""Delivers committed outbox entries over HTTP, per account, in order per message.

* **Isolation**: every account has its own lane (queue, retry heap, at most
  ``concurrency`` requests in flight); a slow or dead receiver holds back only
  its own account's notifications, never dispatch or other accounts.
* **Order**: events of one message go out in the order they were made: an
  entry waits while an earlier entry of its message is in flight or waiting to
  be retried.
* **At least once**: an entry leaves the outbox only once its receiver answered
  2xx within the timeout (500 ms by default, as the seeds require); otherwise
  it is retried with exponential backoff and jitter until ``max_age``, then it
  is *dead* (kept, visible through the API).
* **Batching** (per account, optional): up to ``batch`` result or MO events in
  one POST, as a JSON array.
* **Signature**: ``X-Denpo-Timestamp`` (epoch seconds) and ``X-Denpo-Signature``
  = hex HMAC-SHA256 of ``timestamp + "." + body`` with the account's secret.

The notifier never touches the store: :meth:`push` takes entries that are
committed, and every outcome is handed to ``record`` (the engine stages it in
the store).  The HTTP call is injectable (``post``) so tests drive failures.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import heapq
import hmac
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple

import msgspec

from engine.flow.backoff import Backoff, Histogram

__all__ = ["Entry", "Delivery", "Notifier", "sign", "Post"]

log = logging.getLogger("denpo.notify")


class Entry(msgspec.Struct, kw_only=True, gc=False):
    """One notification in the outbox."""

    seq: int  # outbox sequence: the payload's event_id, and creation order
    account: str
    kind: str  # "result" | "mo" | "dlr" (a Kannel dlr-url: GET, no body)
    message_id: int | None  # events of one message go out in order
    url: str
    body: bytes
    created_at: float  # wall clock
    attempts: int = 0


class Delivery(NamedTuple):
    """What became of an entry: ``sent``, ``retry`` (again at ``next_at``) or ``dead``."""

    seq: int
    outcome: str
    attempts: int
    next_at: float | None
    error: str


# (method, url, body, headers, timeout seconds) → HTTP status; raises on no answer
Post = Callable[[str, str, bytes, dict[str, str], float], Awaitable[int]]


def sign(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


class _Lane:
    __slots__ = ("name", "queue", "retry", "busy", "in_flight", "wake", "task", "batch", "concurrency", "secret", "max_age")

    def __init__(self, name: str, batch: int, concurrency: int, secret: str | None, max_age: float) -> None:
        self.name = name
        self.queue: collections.deque[Entry] = collections.deque()
        self.retry: list[tuple[float, int, Entry]] = []  # (due wall time, seq, entry)
        self.busy: dict[int, int] = {}  # message id → its entries in flight or awaiting a retry
        self.in_flight = 0  # requests
        self.wake = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        self.batch = batch
        self.concurrency = concurrency
        self.secret = secret
        self.max_age = max_age


class Notifier:
    """``await start()``, :meth:`push` committed entries, ``await close()``."""

    def __init__(
        self,
        accounts: Mapping[str, Any],
        *,
        record: Callable[[list[Delivery]], None],
        timeout_s: float = 0.5,
        retry_base_s: float = 1.0,
        retry_cap_s: float = 300.0,
        wall: Callable[[], float] = time.time,
        post: Post | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._record = record
        self._timeout = timeout_s
        self._backoff = Backoff(retry_base_s, 2.0, max(retry_cap_s, retry_base_s), rng=rng)
        self._wall = wall
        self._post = post
        self._client: Any = None
        self._lanes: dict[str, _Lane] = {}
        for name, account in accounts.items():
            self._lanes[name] = _Lane(
                name,
                getattr(account, "notify_batch", 1),
                getattr(account, "notify_concurrency", 8),
                getattr(account, "signing_secret", None),
                getattr(account, "notify_max_age_s", 86400.0),
            )
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = False
        self.pending = 0  # entries held (queued, in flight, waiting to retry): the caller bounds it
        self.latency = Histogram()
        self.counters: collections.Counter[str] = collections.Counter()

    def set_timing(self, timeout_s: float, retry_base_s: float, retry_cap_s: float) -> None:
        self._timeout = timeout_s
        self._backoff = Backoff(retry_base_s, 2.0, max(retry_cap_s, retry_base_s), rng=self._backoff._rng)

    def reconfigure(self, accounts: Mapping[str, Any]) -> None:
        """New URLs are taken by entries made from now on; batching, concurrency,
        secret and max age apply to what is queued too.  A removed account's lane
        keeps sending what it holds."""
        for name, account in accounts.items():
            lane = self._lanes.get(name)
            if lane is None:
                lane = self._lanes[name] = _Lane(name, 1, 8, None, 86400.0)
                if self._post is not None:  # running: give it its task
                    lane.task = asyncio.get_running_loop().create_task(self._run(lane), name=f"notify-{name}")
            lane.batch = getattr(account, "notify_batch", 1)
            lane.concurrency = getattr(account, "notify_concurrency", 8)
            lane.secret = getattr(account, "signing_secret", None)
            lane.max_age = getattr(account, "notify_max_age_s", 86400.0)
            lane.wake.set()

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        if self._post is None:
            from engine.notify.client import HttpClient

            # one pool of keep-alive connections for every receiver (the lean
            # client: aiohttp's costs 5-6x the CPU per request, bench.notify_client);
            # the lanes bound how many requests each account has in flight
            self._client = HttpClient()
            self._post = self._client.request
        for lane in self._lanes.values():
            lane.task = asyncio.get_running_loop().create_task(self._run(lane), name=f"notify-{lane.name}")

    async def close(self, grace_s: float = 2.0) -> None:
        """Stop; requests in flight get ``grace_s`` to finish (what is not sent stays in the outbox)."""
        self._closing = True
        for lane in self._lanes.values():
            lane.wake.set()
        lanes = [lane.task for lane in self._lanes.values() if lane.task is not None]
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=grace_s)
        for task in [*lanes, *self._tasks]:
            task.cancel()
        await asyncio.gather(*lanes, *self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
            self._client = None

    # --- input ------------------------------------------------------------------------

    def push(self, entries: list[Entry]) -> None:
        """Entries now committed to the outbox (in seq order)."""
        for entry in entries:
            lane = self._lanes.get(entry.account)
            if lane is None:
                self.counters["no_account"] += 1
                continue
            self.pending += 1
            if entry.attempts:
                # recovered from the store with attempts made: it waits its backoff again
                due = self._wall() + self._backoff.delay(entry.attempts - 1)
                heapq.heappush(lane.retry, (due, entry.seq, entry))
                if entry.message_id is not None:
                    lane.busy[entry.message_id] = lane.busy.get(entry.message_id, 0) + 1
            else:
                lane.queue.append(entry)
            lane.wake.set()

    def stats(self) -> dict[str, Any]:
        return {
            **self.counters,
            "pending": self.pending,
            "queued": sum(len(lane.queue) for lane in self._lanes.values()),
            "retrying": sum(len(lane.retry) for lane in self._lanes.values()),
            "in_flight": sum(lane.in_flight for lane in self._lanes.values()),
            "latency": self.latency.as_dict(),
        }

    # --- a lane -----------------------------------------------------------------------

    def _due_retries(self, lane: _Lane, now: float) -> None:
        """Retries whose time has come go back to the front, in seq order."""
        due: list[Entry] = []
        while lane.retry and lane.retry[0][0] <= now:
            due.append(heapq.heappop(lane.retry)[2])
        for entry in sorted(due, key=lambda e: e.seq, reverse=True):
            if entry.message_id is not None:
                self._unbusy(lane, entry.message_id)
            lane.queue.appendleft(entry)

    @staticmethod
    def _unbusy(lane: _Lane, message_id: int) -> None:
        n = lane.busy.get(message_id, 0) - 1
        if n > 0:
            lane.busy[message_id] = n
        else:
            lane.busy.pop(message_id, None)

    def _take(self, lane: _Lane) -> list[Entry]:
        """The next request's entries: in queue order, skipping (and keeping in
        place) entries whose message has an earlier entry in flight or waiting."""
        taken: list[Entry] = []
        kept: list[Entry] = []
        queue = lane.queue
        blocked: set[int] = set()
        while queue and len(taken) < lane.batch:
            entry = queue.popleft()
            mid = entry.message_id
            if mid is not None and (mid in lane.busy or mid in blocked):
                kept.append(entry)
                blocked.add(mid)
                if len(kept) > 10_000:
                    break  # do not scan a huge backlog of one blocked message on every pass
                continue
            if taken and (entry.kind == "dlr" or taken[0].kind == "dlr" or entry.url != taken[0].url):
                queue.appendleft(entry)  # a batch goes to one URL, and dlr-url callbacks one by one
                break
            taken.append(entry)
            if mid is not None:
                lane.busy[mid] = lane.busy.get(mid, 0) + 1
        queue.extendleft(reversed(kept))
        return taken

    async def _run(self, lane: _Lane) -> None:
        while not self._closing:
            now = self._wall()
            self._due_retries(lane, now)
            started = False
            while lane.in_flight < lane.concurrency and lane.queue and not self._closing:
                entries = self._take(lane)
                if not entries:
                    break
                lane.in_flight += 1
                task = asyncio.get_running_loop().create_task(self._send(lane, entries))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                started = True
            if started:
                continue
            lane.wake.clear()
            timeout = max(0.0, lane.retry[0][0] - now) if lane.retry else None
            try:
                await asyncio.wait_for(lane.wake.wait(), timeout)
            except asyncio.TimeoutError:
                pass

    async def _send(self, lane: _Lane, entries: list[Entry]) -> None:
        first = entries[0]
        if first.kind == "dlr":
            method, body, headers = "GET", b"", {}
        else:
            method = "POST"
            body = first.body if len(entries) == 1 and lane.batch == 1 else b"[" + b",".join(e.body for e in entries) + b"]"
            headers = {"Content-Type": "application/json"}
            if lane.secret:
                ts = str(int(self._wall()))
                headers["X-Denpo-Timestamp"] = ts
                headers["X-Denpo-Signature"] = sign(lane.secret, ts, body)
        started = time.perf_counter()
        error = ""
        try:
            assert self._post is not None
            status = await self._post(method, first.url, body, headers, self._timeout)
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer is a retry
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.latency.observe(time.perf_counter() - started)
        now = self._wall()
        outcomes: list[Delivery] = []
        for entry in entries:
            entry.attempts += 1
            if not error:
                outcomes.append(Delivery(entry.seq, "sent", entry.attempts, None, ""))
                if entry.message_id is not None:
                    self._unbusy(lane, entry.message_id)
                continue
            delay = self._backoff.delay(entry.attempts - 1)
            if now + delay - entry.created_at > lane.max_age:
                outcomes.append(Delivery(entry.seq, "dead", entry.attempts, None, error))
                if entry.message_id is not None:
                    self._unbusy(lane, entry.message_id)
                continue
            outcomes.append(Delivery(entry.seq, "retry", entry.attempts, now + delay, error))
            heapq.heappush(lane.retry, (now + delay, entry.seq, entry))  # stays busy until then
        for d in outcomes:
            self.counters[d.outcome] += 1
            if d.outcome != "retry":
                self.pending -= 1
        if error:
            log.info("notify %s: %s (%d event(s))", lane.name, error, len(entries))
        lane.in_flight -= 1
        lane.wake.set()
        self._record(outcomes)
