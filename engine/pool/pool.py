"""One carrier's pool of SMPP binds: windows, rate limits, throttle feedback, reconnects.

The pool keeps as many submissions in flight as the windows allow, never
above the carrier's configured rate, slows down when the carrier answers
ESME_RTHROTTLED or ESME_RMSGQFUL, and survives the carrier vanishing.

Its seams (the lifecycle layer sits on both sides):

* **source** — ``take(n, now) -> list[Submission]`` is asked for at most
  ``n`` submissions whenever window slots and tokens allow; ``pool.wake()``
  says new ones are waiting.  :class:`DequeSource` is the simple FIFO one.
* **sink** — :class:`PoolSink` hears, for each submission, exactly one of:
  ``submitted`` (the carrier accepted it: it is never sent again),
  ``failed`` (refused for good, SMPP status kept), ``fate_unknown`` (the
  connection was lost or the response never came — handed back in send
  order; the caller applies SPEC's re-sending rule) or ``returned`` (still
  unsent when the pool closed).  Transient errors and throttling are retried
  inside the pool.  ``delivered`` hands over every inbound deliver_sm /
  data_sm (receipts and MO), already acknowledged, in arrival order per bind
  — in the same pass as a submit_sm_resp read with it.

No task or future per message: a submission is a plain object keyed by its
sequence number in the session window; one task per bind runs its
connect/bind/reconnect loop; sends are written once per loop pass.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import heapq
import itertools
import logging
import math
import random
from typing import Any, Callable, Final, Iterable, Protocol, cast

import msgspec

from engine.flow.backoff import Backoff, Histogram
from engine.flow.bucket import ThrottleFeedback, TokenBucket
from engine.ops.config import CarrierSettings, Endpoint, SmppSettings
from engine.pool.status import Outcome, classify
from engine.smpp.codec import encode
from engine.smpp.constants import RESPONSE_BIT, CommandId, Status, status_name
from engine.smpp.pdu import (
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    Pdu,
    SubmitSm,
    SubmitSmResp,
    Unbind,
)
from engine.smpp.session import ProtocolError, Request, Response, Role, Session, Timeout, Unbound
from engine.transport import SmppConnection

__all__ = ["Submission", "PoolSink", "DequeSource", "CarrierPool", "BindState"]

log = logging.getLogger("denpo.pool")

_SUBMIT_SM = int(CommandId.SUBMIT_SM)
_DELIVER_SM = int(CommandId.DELIVER_SM)
_DATA_SM = int(CommandId.DATA_SM)
_SUBMIT_SM_RESP = int(CommandId.SUBMIT_SM_RESP)
_CREDENTIAL_ERRORS = frozenset({int(Status.ESME_RINVPASWD), int(Status.ESME_RINVSYSID), int(Status.ESME_RINVSYSTYP)})
_BIND_MARK = object()  # the context of a bind request in the session window


class Submission:
    """One submit_sm on its way: the encoded body (all but the header) and
    whatever the caller wants back in the sink's callbacks."""

    __slots__ = ("body", "context", "attempts", "sent_at")

    def __init__(self, body: bytes, context: Any = None) -> None:
        self.body = body
        self.context = context
        self.attempts = 0  # transient failures so far
        self.sent_at = 0.0

    @classmethod
    def of(cls, pdu: SubmitSm, context: Any = None) -> "Submission":
        return cls(encode(pdu)[16:], context)

    def __repr__(self) -> str:
        return f"Submission(context={self.context!r}, attempts={self.attempts})"


class PoolSink(Protocol):
    def submitted(self, sub: Submission, message_id: str, bind: str, now: float) -> None: ...

    def failed(self, sub: Submission, status: int, now: float) -> None: ...

    def fate_unknown(self, subs: list[Submission], reason: str, now: float) -> None: ...

    def returned(self, subs: list[Submission], now: float) -> None: ...

    def delivered(self, pdu: Pdu, bind: str, now: float, ack: Callable[..., None]) -> bool | None:
        """An inbound deliver_sm/data_sm.  Return True to answer it later by
        calling ``ack()`` (e.g. once it is stored); otherwise it is answered now."""
        ...


class DequeSource:
    """A FIFO of submissions for :class:`CarrierPool`; ``put`` wakes the pool."""

    def __init__(self) -> None:
        self._queue: collections.deque[Submission] = collections.deque()
        self.pool: CarrierPool | None = None

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, sub: Submission) -> None:
        self._queue.append(sub)
        if self.pool is not None:
            self.pool.wake()

    def put_many(self, subs: Iterable[Submission]) -> None:
        self._queue.extend(subs)
        if self.pool is not None:
            self.pool.wake()

    def put_front(self, subs: Iterable[Submission]) -> None:
        self._queue.extendleft(reversed(list(subs)))
        if self.pool is not None:
            self.pool.wake()

    def take(self, n: int, now: float) -> list[Submission]:
        queue = self._queue
        if n >= len(queue):
            items = list(queue)
            queue.clear()
            return items
        return [queue.popleft() for _ in range(n)]


class _Ack:
    """Answers one inbound deliver_sm / data_sm — now, or once the consumer has
    made it durable (the carrier re-sends what was never answered)."""

    __slots__ = ("conn", "sequence_number", "resp")

    def __init__(self, conn: SmppConnection, pdu: Pdu) -> None:
        self.conn = conn
        self.sequence_number = pdu.sequence_number
        self.resp = pdu.command_id | RESPONSE_BIT  # deliver_sm_resp / data_sm_resp

    def __call__(self, status: int = 0) -> None:
        conn = self.conn
        if conn.transport is None or not conn.session.is_bound and conn.session.state.value != "unbinding":
            return  # the connection is gone: the carrier delivers it again
        # both responses carry only an empty message_id: encoded by hand (this runs per receipt)
        conn.respond(self.resp, self.sequence_number, status, b"\x00")


class BindState:
    DOWN: Final = "down"
    CONNECTING: Final = "connecting"
    BINDING: Final = "binding"
    UP: Final = "up"
    CLOSED: Final = "closed"


class _Bind:
    """One SMPP connection of the pool and its counters; the connection's handler."""

    def __init__(self, pool: "CarrierPool", name: str, kind: str, index: int) -> None:
        self.pool = pool
        self.name = name
        self.kind = kind  # "transceiver" | "transmitter" | "receiver"
        self.sends = kind != "receiver"
        self.endpoint_index = index  # spread binds over endpoints, then fail over
        self.state = BindState.DOWN
        self.conn: SmppConnection | None = None
        self.endpoint: Endpoint | None = None
        self.bucket: TokenBucket | None = None
        self.waiter: asyncio.Future[int] | None = None
        self.last_error = ""
        self.counters: collections.Counter[str] = collections.Counter()
        self.responses: collections.Counter[str] = collections.Counter()  # submit_sm responses by status
        self.latency = Histogram()
        self.attempts: collections.deque[float] = collections.deque(maxlen=32)  # recent connect times
        self.timed_out: list[Submission] = []  # submits whose deadline passed, until the drop hands them back

    # --- capacity ----------------------------------------------------------------

    @property
    def free(self) -> int:
        conn = self.conn
        if self.state != BindState.UP or conn is None or conn.write_paused:
            return 0
        return conn.session.free_slots

    @property
    def outstanding(self) -> int:
        """Submits awaiting their response (keep-alive probes not counted)."""
        conn = self.conn
        if conn is None:
            return 0
        session = conn.session
        return session.outstanding - (1 if session.probing else 0)

    # --- SmppHandler ---------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        pass

    def handle_events(self, conn: SmppConnection, events: list[Any]) -> None:
        pool = self.pool
        now = pool.clock()
        counters = self.counters
        for ev in events:
            kind = type(ev)
            if kind is Response:
                if ev.request_command_id == _SUBMIT_SM:
                    pool._on_submit_response(self, ev.context, ev.pdu, ev.sent_at, now)
                elif ev.context is _BIND_MARK and self.waiter is not None and not self.waiter.done():
                    self.waiter.set_result(ev.pdu.command_status)
            elif kind is Request:
                pdu = ev.pdu
                cmd = pdu.command_id
                if cmd != _DELIVER_SM and cmd != _DATA_SM:
                    counters["requests_ignored"] += 1
                    continue
                ack = _Ack(conn, pdu)
                try:
                    deferred = pool.sink.delivered(pdu, self.name, now, ack)
                    counters["delivered"] += 1
                except Exception:  # noqa: BLE001 - never lose a receipt to our own bug
                    # The carrier keeps it and delivers it again (Kannel does the same).
                    log.exception("carrier %s bind %s: the consumer refused a deliver_sm; answering ESME_RX_T_APPN", pool.name, self.name, extra={"carrier": pool.name, "bind": self.name})
                    counters["delivered_refused"] += 1
                    ack(Status.ESME_RX_T_APPN)
                    continue
                if not deferred:
                    ack()
            elif kind is Timeout:
                # A missed deadline means the link is dead: the timed-out submits
                # and every other outstanding one go back as fate unknown, in send
                # order, when the connection drops.
                counters["timeouts"] += 1
                timed_out = [e.context for e in events if type(e) is Timeout and e.command_id == _SUBMIT_SM]
                self.timed_out.extend(timed_out)
                self.last_error = f"no response to {CommandId(ev.command_id).name.lower()} within the deadline"
                log.warning("carrier %s bind %s: %s; dropping the connection", pool.name, self.name, self.last_error, extra={"carrier": pool.name, "bind": self.name})
                conn.abort()
                return
            elif kind is Unbound:
                counters["unbound_by_peer" if ev.by_peer else "unbound"] += 1
            elif kind is ProtocolError:
                counters["protocol_errors"] += 1
                log.warning("carrier %s bind %s: %s", pool.name, self.name, ev.error, extra={"carrier": pool.name, "bind": self.name})
        pool._schedule_pump()

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        pool = self.pool
        now = pool.clock()
        was_up = self.state == BindState.UP
        self.state = BindState.DOWN
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection lost while binding"))
        lost = self.timed_out + [ctx for _seq, cmd, ctx, _t in conn.session.abandon_outstanding() if cmd == _SUBMIT_SM]
        self.timed_out = []
        if was_up:
            self.counters["disconnects"] += 1
            if not pool._closing:
                log.warning("carrier %s bind %s lost its connection%s", pool.name, self.name, f": {exc}" if exc else "", extra={"carrier": pool.name, "bind": self.name})
        if lost:
            pool._fate_unknown(self, lost, "connection lost before the submit response", now)
        pool._schedule_pump()


class CarrierPool:
    """The binds of one carrier.  ``async with CarrierPool(...) as pool:`` runs them."""

    def __init__(
        self,
        name: str,
        settings: CarrierSettings,
        sink: PoolSink,
        *,
        source: Any = None,
        smpp: SmppSettings | None = None,
        clock: Callable[[], float] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.smpp = smpp or SmppSettings()
        self.sink = sink
        self.source = source if source is not None else DequeSource()
        if isinstance(self.source, DequeSource):
            self.source.pool = self
        self._clock = clock
        self._rng = rng or random.Random()
        self.window = settings.window or self.smpp.window
        self._overrides = {int(k, 0): Outcome(v) for k, v in settings.status_overrides.items()}
        self._retry_backoff = Backoff(settings.retry_base_s, 2.0, max(60.0, settings.retry_base_s), rng=self._rng)
        self._binds: list[_Bind] = []
        kinds = ["transceiver"] if settings.bind_mode == "transceiver" else ["transmitter", "receiver"]
        for i in range(settings.binds):
            for kind in kinds:
                suffix = "" if kind == "transceiver" else f"-{kind[:2]}"
                self._binds.append(_Bind(self, f"{name}-{i + 1}{suffix}", kind, i))
        self._senders = [b for b in self._binds if b.sends]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._closing = False
        self._pump_handle: asyncio.Handle | None = None
        self._token_timer: asyncio.TimerHandle | None = None
        self._retry_now: collections.deque[Submission] = collections.deque()
        self._retry_later: list[tuple[float, int, Submission]] = []
        self._retry_seq = itertools.count()
        self._bucket: TokenBucket | None = None
        self._feedback: ThrottleFeedback | None = None
        self._sent_marks: collections.deque[tuple[float, int]] = collections.deque()
        self._sent_in_window = 0
        self._idle = asyncio.Event()
        self._bind_tasks: list[asyncio.Task[None]] = []
        self.counters: collections.Counter[str] = collections.Counter()
        self.responses: collections.Counter[str] = collections.Counter()
        self.latency = Histogram()
        self.throttle_events: collections.deque[tuple[float, float]] = collections.deque(maxlen=100)

    # --- lifecycle -----------------------------------------------------------------

    def clock(self) -> float:
        return self._clock() if self._clock is not None else self._loop.time()  # type: ignore[union-attr]

    async def __aenter__(self) -> "CarrierPool":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        now = self.clock()
        s = self.settings
        self._feedback = ThrottleFeedback(s.rate, now=now)
        if s.rate is not None:
            self._bucket = TokenBucket(s.rate, s.burst, now=now)
        for bind in self._binds:
            if s.bind_rate is not None and bind.sends:
                bind.bucket = TokenBucket(s.bind_rate, s.bind_burst, now=now)
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        self._bind_tasks = [self._tasks.create_task(self._run_bind(b), name=f"bind {b.name}") for b in self._binds]

    # fields of CarrierSettings that change how binds are made or ids read: a
    # running pool cannot take them (the rest apply at once, see reconfigure)
    FIXED = ("endpoints", "bind_mode", "binds", "window", "pacing_interval_s", "id_response", "id_receipt_text")

    def reconfigure(self, settings: CarrierSettings) -> list[str]:
        """Take new rates, retry and reconnect settings and status overrides now;
        returns the fields that could not change (see FIXED), which keep their values."""
        refused = [f for f in self.FIXED if getattr(settings, f) != getattr(self.settings, f)]
        if refused:
            settings = msgspec.structs.replace(settings, **{f: getattr(self.settings, f) for f in refused})
        self.settings = settings
        self._overrides = {int(k, 0): Outcome(v) for k, v in settings.status_overrides.items()}
        self._retry_backoff = Backoff(settings.retry_base_s, 2.0, max(60.0, settings.retry_base_s), rng=self._rng)
        if self._loop is not None:
            now = self.clock()
            # the throttle feedback starts again from the new ceiling
            self._feedback = ThrottleFeedback(settings.rate, now=now)
            self._bucket = TokenBucket(settings.rate, settings.burst, now=now) if settings.rate is not None else None
            for bind in self._binds:
                bind.bucket = TokenBucket(settings.bind_rate, settings.bind_burst, now=now) if settings.bind_rate is not None and bind.sends else None
            self._schedule_pump()
        return refused

    async def close(self, timeout: float | None = None) -> None:
        """Stop sending; wait (up to ``drain_timeout_s``) for outstanding
        responses; unbind; hand back what was never sent."""
        if self._tasks is None:
            return
        self._closing = True
        deadline = self.settings.drain_timeout_s if timeout is None else timeout
        if any(b.outstanding for b in self._senders):
            self._idle.clear()
            try:
                async with asyncio.timeout(deadline):
                    while any(b.outstanding for b in self._senders):
                        await self._idle.wait()
                        self._idle.clear()
            except TimeoutError:
                log.warning("carrier %s: drain deadline passed with submits outstanding", self.name, extra={"carrier": self.name})
        for bind in self._binds:
            conn = bind.conn
            if bind.state == BindState.UP and conn is not None and conn.session.is_bound:
                try:
                    conn.send(Unbind())
                except Exception:  # noqa: BLE001 - a session that cannot unbind is closed below anyway
                    pass
        for bind in self._binds:
            conn = bind.conn
            if conn is not None and bind.state == BindState.UP:
                try:
                    async with asyncio.timeout(2.0):
                        await conn.closed.wait()
                except TimeoutError:
                    conn.abort()
        tasks = self._tasks
        self._tasks = None
        for handle in (self._pump_handle, self._token_timer):
            if handle is not None:
                handle.cancel()
        for task in self._bind_tasks:
            task.cancel()
        await tasks.__aexit__(None, None, None)
        for bind in self._binds:
            if bind.conn is not None and bind.conn.transport is not None:
                bind.conn.abort()
            bind.state = BindState.CLOSED
        unsent = list(self._retry_now) + [sub for _t, _n, sub in sorted(self._retry_later)]
        self._retry_now.clear()
        self._retry_later.clear()
        if unsent:
            self.sink.returned(unsent, self.clock())

    # --- one bind's connect / bind / reconnect loop ---------------------------------

    async def _run_bind(self, bind: _Bind) -> None:
        s = self.settings
        backoff = Backoff(s.reconnect_base_s, 2.0, s.reconnect_cap_s, rng=self._rng)
        slow = Backoff(s.bad_credentials_retry_s, 2.0, max(s.bad_credentials_retry_s, s.reconnect_cap_s * 10), rng=self._rng)
        attempt = 0
        refused = 0
        round_failures = 0
        loop = asyncio.get_running_loop()
        while not self._closing:
            endpoint = s.endpoints[bind.endpoint_index % len(s.endpoints)]
            bind.endpoint = endpoint
            bind.state = BindState.CONNECTING
            bind.counters["connect_attempts"] += 1
            bind.attempts.append(self.clock())
            session = Session(
                Role.ESME,
                window=self.window,
                response_timeout=self.smpp.response_timeout_s,
                enquire_link_interval=self.smpp.enquire_link_interval_s,
                inactivity_timeout=self.smpp.inactivity_timeout_s,
                max_frame=self.smpp.max_frame_bytes,
            )
            status: int | None = None
            retry_in: float | None = None
            try:
                async with asyncio.timeout(s.connect_timeout_s):
                    _t, conn = await loop.create_connection(
                        functools.partial(SmppConnection, session, bind, clock=self._clock), endpoint.host, endpoint.port
                    )
                bind.conn = conn
                bind.state = BindState.BINDING
                bind.waiter = loop.create_future()
                cls = {"transceiver": BindTransceiver, "transmitter": BindTransmitter, "receiver": BindReceiver}[bind.kind]
                conn.send(
                    cls(system_id=endpoint.system_id, password=endpoint.password, system_type=endpoint.system_type),
                    _BIND_MARK,
                )
                async with asyncio.timeout(self.smpp.response_timeout_s):
                    status = await bind.waiter
            except (OSError, TimeoutError, ConnectionError) as exc:
                bind.last_error = f"{endpoint.host}:{endpoint.port}: {exc or type(exc).__name__}"
                bind.counters["connect_failures"] += 1
                if bind.conn is not None:
                    bind.conn.abort()
                bind.state = BindState.DOWN
                round_failures += 1
                if round_failures < len(s.endpoints):
                    delay = 0.0  # fail over to the next SMSC at once
                else:
                    delay = backoff.delay(attempt)  # every endpoint failed: back off
                    attempt += 1
                    round_failures = 0
                bind.endpoint_index += 1
                log.warning("carrier %s bind %s: cannot connect (%s); retry in %.1f s", self.name, bind.name, bind.last_error, delay, extra={"carrier": self.name, "bind": bind.name})
                retry_in = delay
            if retry_in is not None:
                # waited outside the except block: compiled (mypyc), a coroutine suspended inside
                # one leaves its exception as the "current" one for everything else on the loop
                await asyncio.sleep(retry_in)
                continue
            if status not in (Status.ESME_ROK, Status.ESME_RALYBND):
                bind.counters["bind_refused"] += 1
                bind.last_error = f"bind refused by {endpoint.host}:{endpoint.port}: {status_name(status or 0)}"
                conn.abort()
                bind.state = BindState.DOWN
                if status in _CREDENTIAL_ERRORS:
                    delay = slow.delay(refused)
                    refused += 1
                    log.error(
                        "carrier %s bind %s: %s — check system_id/password; retrying only every %.0f s",
                        self.name, bind.name, bind.last_error, delay, extra={"carrier": self.name, "bind": bind.name},
                    )
                else:
                    delay = backoff.delay(attempt)
                    attempt += 1
                    log.warning("carrier %s bind %s: %s; retry in %.1f s", self.name, bind.name, bind.last_error, delay, extra={"carrier": self.name, "bind": bind.name})
                await asyncio.sleep(delay)
                continue
            attempt = refused = round_failures = 0
            bind.state = BindState.UP
            bind.counters["binds"] += 1
            bind.last_error = ""
            log.info("carrier %s bind %s up (%s to %s:%s)", self.name, bind.name, bind.kind, endpoint.host, endpoint.port, extra={"carrier": self.name, "bind": bind.name})
            self._schedule_pump()
            await conn.closed.wait()
            if not self._closing:
                await asyncio.sleep(backoff.delay(0))

    # --- sending -------------------------------------------------------------------

    def wake(self) -> None:
        """New submissions are waiting in the source."""
        self._schedule_pump()

    def _schedule_pump(self) -> None:
        if self._pump_handle is None and self._loop is not None and not self._closing:
            self._pump_handle = self._loop.call_soon(self._pump)
        if self._closing and not any(b.outstanding for b in self._senders):
            self._idle.set()

    def _take(self, n: int, now: float) -> list[Submission]:
        subs: list[Submission] = []
        retry_now = self._retry_now
        while retry_now and len(subs) < n:
            subs.append(retry_now.popleft())
        later = self._retry_later
        while later and later[0][0] <= now and len(subs) < n:
            subs.append(heapq.heappop(later)[2])
        if len(subs) < n:
            subs.extend(self.source.take(n - len(subs), now))
        return subs

    def _pump(self) -> None:
        """Fill free window slots while tokens allow: the only place submits are sent."""
        self._pump_handle = None
        if self._closing:
            return
        now = self.clock()
        feedback = self._feedback
        assert feedback is not None
        if feedback.tick(now):
            self._apply_rate(now)
        senders = [b for b in self._senders if b.free > 0]
        if not senders:
            return
        slots = sum(b.free for b in senders)
        n = sum(min(b.free, b.bucket.available(now)) if b.bucket is not None else b.free for b in senders)
        if self._bucket is not None:
            n = min(n, self._bucket.available(now))
        if n <= 0:
            self._arm_token_timer(now)
            return
        subs = self._take(n, now)
        if subs:
            if self._bucket is not None:
                self._bucket.take(now, len(subs))
            self._send_spread(senders, subs, now)
            self._sent_marks.append((now, len(subs)))
            self._sent_in_window += len(subs)
            self.achieved_rate(now)  # drops marks over a second old: nothing else may read them
        if len(subs) == n and n < slots:
            self._arm_token_timer(now)  # tokens, not windows, held us back: more as they accrue
        elif len(subs) < n and self._retry_later:
            self._arm_timer_at(self._retry_later[0][0])

    def _send_spread(self, senders: list[_Bind], subs: list[Submission], now: float) -> None:
        """Give each submission the least-loaded bind (water filling over free slots)."""
        counters = self.counters
        i = 0
        total = len(subs)
        # heap of (-free, order, bind): the bind with the most free slots first
        heap = [(-b.free, k, b) for k, b in enumerate(senders)]
        heapq.heapify(heap)
        while i < total and heap:
            neg_free, k, bind = heapq.heappop(heap)
            free = -neg_free
            bucket = bind.bucket
            if bucket is not None and not bucket.take(now):
                continue  # this bind is out of tokens for now
            sub = subs[i]
            i += 1
            sub.sent_at = now
            bind.conn.send_encoded(_SUBMIT_SM, sub.body, sub)  # type: ignore[union-attr]
            bind.counters["submitted"] += 1
            if free > 1:
                heapq.heappush(heap, (neg_free + 1, k, bind))
        counters["submitted"] += i
        if i < total:  # bind buckets ran dry: the rest waits at the front
            self._retry_now.extendleft(reversed(subs[i:]))
            self._arm_token_timer(now)

    def _arm_token_timer(self, now: float) -> None:
        waits = []
        if self._bucket is not None:
            waits.append(self._bucket.wait(now))
        for bind in self._senders:
            if bind.bucket is not None and bind.free > 0:
                waits.append(bind.bucket.wait(now))
        wait = max(min(waits) if waits else 0.0, 1e-4)
        self._arm_timer_at(now + wait)

    def _arm_timer_at(self, when: float) -> None:
        assert self._loop is not None
        if self._token_timer is not None:
            self._token_timer.cancel()
        offset = 0.0 if self._clock is None else self._loop.time() - self.clock()
        self._token_timer = self._loop.call_at(when + offset, self._timer_fired)

    def _timer_fired(self) -> None:
        self._token_timer = None
        self._pump()

    def _apply_rate(self, now: float) -> None:
        feedback = self._feedback
        assert feedback is not None
        rate = feedback.rate
        if rate == math.inf:
            return
        if self._bucket is None:
            self._bucket = TokenBucket(rate, self.settings.burst, now=now)
        else:
            self._bucket.set_rate(rate, now)

    def achieved_rate(self, now: float) -> float:
        """Submits per second over the last second."""
        marks = self._sent_marks
        while marks and marks[0][0] < now - 1.0:
            self._sent_in_window -= marks.popleft()[1]
        return float(self._sent_in_window)

    # --- responses -----------------------------------------------------------------

    def _on_submit_response(self, bind: _Bind, sub: Submission, pdu: Pdu, sent_at: float, now: float) -> None:
        status = pdu.command_status
        latency = now - sent_at
        self.latency.observe(latency)
        bind.latency.observe(latency)
        if status == 0 and pdu.command_id == _SUBMIT_SM_RESP:
            self.responses["ESME_ROK"] += 1
            bind.responses["ESME_ROK"] += 1
            self.sink.submitted(sub, cast(SubmitSmResp, pdu).message_id, bind.name, now)
            return
        name = status_name(status) if pdu.command_id == _SUBMIT_SM_RESP else f"generic_nack:{status_name(status)}"
        self.responses[name] += 1
        bind.responses[name] += 1
        outcome = classify(status, self._overrides) if pdu.command_id == _SUBMIT_SM_RESP else Outcome.SESSION
        if outcome is Outcome.OK:  # an override said so, but there is no message id to record
            outcome = Outcome.PERMANENT
        if outcome is Outcome.THROTTLE:
            self.counters["throttled"] += 1
            feedback = self._feedback
            assert feedback is not None
            if feedback.throttled(now, self.achieved_rate(now)):
                self.throttle_events.append((now, feedback.rate))
                log.info("carrier %s throttled (%s): rate now %.1f/s", self.name, name, feedback.rate, extra={"carrier": self.name})
                self._apply_rate(now)
            self._retry_now.append(sub)
        elif outcome is Outcome.TRANSIENT:
            sub.attempts += 1
            if sub.attempts > self.settings.retry_attempts:
                self.counters["failed"] += 1
                self.sink.failed(sub, status, now)
            else:
                self.counters["retried"] += 1
                delay = self._retry_backoff.delay(sub.attempts - 1)
                heapq.heappush(self._retry_later, (now + delay, next(self._retry_seq), sub))
                self._arm_timer_at(self._retry_later[0][0])
        elif outcome is Outcome.SESSION:
            sub.attempts += 1
            self.counters["retried"] += 1
            if sub.attempts > self.settings.retry_attempts:
                self.counters["failed"] += 1
                self.sink.failed(sub, status, now)
            else:
                self._retry_now.append(sub)
        else:
            self.counters["failed"] += 1
            self.sink.failed(sub, status, now)

    def _fate_unknown(self, bind: _Bind, subs: list[Submission], reason: str, now: float) -> None:
        self.counters["fate_unknown"] += len(subs)
        bind.counters["fate_unknown"] += len(subs)
        self.sink.fate_unknown(subs, reason, now)

    # --- observability -------------------------------------------------------------

    @property
    def binds(self) -> list[_Bind]:
        return list(self._binds)

    @property
    def binds_up(self) -> int:
        return sum(1 for b in self._binds if b.state == BindState.UP)

    def stats(self) -> dict[str, Any]:
        """Counters, latency histograms, window occupancy and the effective rate, as plain data."""
        now = self.clock() if self._loop is not None else 0.0
        feedback = self._feedback
        return {
            "carrier": self.name,
            "binds_up": self.binds_up,
            "binds": [
                {
                    "name": b.name,
                    "kind": b.kind,
                    "state": b.state,
                    "endpoint": f"{b.endpoint.host}:{b.endpoint.port}" if b.endpoint else None,
                    "outstanding": b.outstanding,
                    "window": self.window if b.sends else 0,
                    "last_error": b.last_error,
                    "counters": dict(b.counters),
                    "responses": dict(b.responses),
                    "submit_latency_s": b.latency.as_dict(),
                }
                for b in self._binds
            ],
            "outstanding": sum(b.outstanding for b in self._senders),
            "window_total": self.window * len(self._senders),
            "queued_retries": len(self._retry_now) + len(self._retry_later),
            "configured_rate": self.settings.rate,
            "effective_rate": None if feedback is None or feedback.rate == math.inf else round(feedback.rate, 2),
            "achieved_rate": self.achieved_rate(now) if self._loop is not None else 0.0,
            "throttles": feedback.throttles if feedback else 0,
            "rate_cuts": feedback.decreases if feedback else 0,
            "counters": dict(self.counters),
            "responses": dict(self.responses),
            "submit_latency_s": self.latency.as_dict(),
        }
