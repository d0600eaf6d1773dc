"""The engine: accepted messages become carrier submissions, receipts become final statuses.

::

    async with Engine(config) as engine:
        accepted = await engine.submit(SubmitRequest(account="demo", to="090-1234-5678", text="こんにちは"))
        async for event in engine.events(): ...

The path of one message (shared/ARCHITECTURE.md):

    submit → validate + plan (text layer) → durable store (accepted) → per-carrier lanes
      → priority, then deficit round robin across accounts → validity / cancel check
      → au pacing gate → the carrier pool (rate, windows) → submit_sm_resp → store
    receipt → correlate (ids, held until the response) → multi-part outcome → store → events

State in memory is bounded: per carrier at most ``engine.working_set`` queued
messages; the rest wait in the store and are loaded lane by lane.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import heapq
import random
import logging
import math
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import msgspec

from engine.api import Accepted, MessageView, MoEvent, StatusEvent, SubmitError, SubmitRequest
from engine._events import event_stream
from engine.dlr import Correlator, CorrelatorConfig, IdScheme, PartResult, message_outcome, parse_receipt, part_result
from engine.flow.backoff import Histogram
from engine.flow.pacing import Pacer
from engine.model import FINAL, MessageStatus, PRIORITIES
from engine.notify import Delivery, Entry, Notifier
from engine.notify.kannel import dlr_value, fill_dlr_url
from engine.numbers import CarrierLookup, NumberError, from_smpp, normalize, to_smpp
from engine.ops.config import CARRIERS, CarrierSettings, Config
from engine.pool import CarrierPool, Submission
from engine.smpp.codec import submit_sm_body
from engine.smpp.constants import Status, Tag, status_name
from engine.store import NewMessage, PartRecord, SqliteStore, StoredMessage, Update
from engine.store.base import format_id, parse_id
from engine.text import TextError, decode_wire, plan

__all__ = ["Engine"]

log = logging.getLogger("denpo.engine")

S = MessageStatus
_PRIORITY_NAMES = tuple(p.value for p in PRIORITIES)
_PACING_DEFAULTS = {"au": 12.0}
_SUPPRESSING = frozenset({int(Status.ESME_RINVDSTADR)})
_OPEN = ("accepted", "queued")


class _Msg:
    """One message while the engine works on it (queued, in flight, awaiting receipts)."""

    __slots__ = (
        "id", "account", "client_ref", "carrier", "number", "sender", "text", "priority", "ref",
        "parts", "billing_units", "expires_at", "send_at", "bodies", "pending", "part_ids", "results",
        "submitted", "status", "submitted_at", "deadline", "cancelled", "in_pacer", "final_status",
        "billable_parts", "in_backlog", "public_id", "plan", "failure", "refused", "callback", "accepted_at",
    )

    def __init__(self, row: NewMessage | StoredMessage) -> None:
        self.id: int = row.id
        self.account = row.account
        self.client_ref = row.client_ref
        self.carrier = row.carrier
        self.number = row.number
        self.sender = row.sender
        self.text = row.text
        self.priority = row.priority
        self.ref = row.ref
        self.parts = row.parts
        self.billing_units = row.billing_units
        self.expires_at = row.expires_at
        self.send_at = row.send_at
        self.bodies: list[bytes] | None = None
        self.pending: list[int] = list(range(row.parts))  # parts still to send, in order
        self.part_ids: list[str | None] = [None] * row.parts  # the receipt key of each part submitted
        self.results: list[PartResult | None] = [None] * row.parts
        self.submitted = 0  # parts the carrier accepted
        self.status = row.status
        self.submitted_at: float | None = None
        self.deadline = 0.0  # receipt timeout (engine clock)
        self.cancelled = False
        self.in_pacer = False  # released by (or in flight at) the pacer
        self.final_status: str | None = None
        self.billable_parts = 0
        self.in_backlog = True  # counted in Engine.backlog until submitted or final
        self.public_id = format_id(row.id)
        self.plan: Any = None  # the text plan made at accept, until the bodies are encoded
        self.failure: dict[str, Any] | None = None  # the first failed part's receipt stat/err
        self.refused = 0  # parts the carrier refused (or not sent after a refusal) once others were accepted
        self.callback: tuple[str, int] | None = None  # Kannel dlr-url and dlr-mask
        self.accepted_at = 0.0  # engine clock, for the accept → submit histogram (0: recovered)


class _Lane:
    """The queued messages of one account at one priority on one carrier."""

    __slots__ = ("queue", "spilled", "after_id", "deficit", "loading", "arrived")

    def __init__(self) -> None:
        self.queue: collections.deque[_Msg] = collections.deque()
        self.spilled = False  # more of this lane waits in the store, after ``after_id``
        self.after_id = 0
        self.deficit = 0
        self.loading = False
        self.arrived = False  # a message went to the store for this lane since its last load began


class _Carrier:
    """One carrier: its lanes (the pool's source), its pacing gate, the pool's sink."""

    def __init__(self, engine: "Engine", name: str, settings: CarrierSettings) -> None:
        self.engine = engine
        self.name = name
        self.settings = settings
        interval = settings.pacing_interval_s if settings.pacing_interval_s is not None else _PACING_DEFAULTS.get(name)
        self.pacer: Pacer[_Msg] | None = Pacer(interval) if interval else None
        self.lanes: dict[str, dict[str, _Lane]] = {p: {} for p in _PRIORITY_NAMES}
        self.active: dict[str, collections.deque[str]] = {p: collections.deque() for p in _PRIORITY_NAMES}
        self.front: collections.deque[_Msg] = collections.deque()  # admitted already: resends, partly sent
        self.in_ram = 0  # queued messages held in memory: in lanes or parked at the pacing gate
        self.in_ram_peak = 0  # the most in_ram has been (high-water mark)
        self.front_peak = 0  # the most admitted-but-unsent messages a take() left in front (high-water mark)
        self.pool: CarrierPool | None = None
        self.quantum = 10  # parts per DRR round per unit of account weight
        self.uncommitted = 0  # accepted by the carrier, not yet committed as such
        self._pacer_timer: asyncio.TimerHandle | None = None
        self._pacer_at = math.inf
        self._pacer_reached = -math.inf  # the due time of the last pacer timer that fired
        self.ids = engine.correlator.scheme(name)  # how this carrier writes message ids
        self.receipts: collections.Counter[str] = collections.Counter()  # final part receipts by result
        self.to_submit = Histogram()  # accept → every part with the carrier (seconds)
        self.to_final = Histogram()  # submitted → final status from receipts (seconds)

    # --- the pool's source ------------------------------------------------------------

    def take(self, n: int, now: float) -> list[Submission]:
        out = self._take(n, now)
        if len(self.front) > self.front_peak:
            self.front_peak = len(self.front)
        return out

    def _take(self, n: int, now: float) -> list[Submission]:
        engine = self.engine
        out: list[Submission] = []
        if engine.store.queued_ops > engine.store_lag_limit:
            # the store is behind: what a crash now would lose grows with every
            # submit; wait until it caught up
            if not engine._store_waiting:
                engine._store_waiting = True
                engine.store.on_commit(engine._store_caught_up)
            engine.counters["store_lag_pauses"] += 1
            return out
        n -= self.uncommitted
        if n <= 0:
            return out
        wall = engine.wall()
        pacer = self.pacer
        if pacer is not None and pacer.parked:
            # a fired timer means its due time has come, even if ``now`` reads a
            # hair earlier (clock rounding): without this it would re-arm forever
            for msg in pacer.release(max(now, self._pacer_reached)):
                self.in_ram -= 1  # counted while parked
                self._mark_in_flight(msg)
        if pacer is not None and pacer.parked:
            self._arm_pacer(now)
        front = self.front
        while front and len(out) < n:
            msg = front.popleft()
            if not self._emit(msg, out, n, now, wall):
                front.appendleft(msg)
                break
        if len(out) < n:
            parked = pacer.parked if pacer is not None else 0
            for priority in _PRIORITY_NAMES:
                if self._drain_priority(priority, out, n, now, wall) or len(out) >= n:
                    break
            if pacer is not None and pacer.parked > parked:
                # parked just now, behind a busy number: a timer must wake the pool when it
                # is free (with no other traffic nothing else would call take() again)
                self._arm_pacer(now)
        if self.in_ram < engine.settings.engine.working_set // 2:
            engine._schedule_load(self)
        return out

    def _drain_priority(self, priority: str, out: list[Submission], n: int, now: float, wall: float) -> bool:
        """Deficit round robin over this priority's accounts (cost = parts); True when out is full.

        A message admitted at the pacing gate but waiting for its in-flight mark
        to be committed counts as sent here (it is on its way), so one call
        never admits more than ``n`` parts' worth."""
        active = self.active[priority]
        lanes = self.lanes[priority]
        accounts = self.engine.accounts
        budget = n - len(out)
        while active and budget > 0:
            account = active[0]
            lane = lanes[account]
            if lane.deficit <= 0:
                weight = accounts[account].weight if account in accounts else 1
                lane.deficit += self.quantum * weight
            queue = lane.queue
            while queue and lane.deficit > 0 and budget > 0:
                msg = queue.popleft()
                verdict = self._admit(msg, now, wall)
                if verdict == "parked":
                    continue  # still held in memory, by the pacer
                self.in_ram -= 1
                if verdict == "skip":
                    continue  # expired or cancelled
                if verdict == "marking":
                    cost = len(msg.pending)
                else:
                    before = len(out)
                    if not self._emit(msg, out, n, now, wall):
                        self.front.appendleft(msg)  # the rest of its parts next time
                    cost = len(out) - before
                lane.deficit -= cost
                budget -= cost
            if not queue:
                active.popleft()
                lane.deficit = 0
                if lane.spilled:
                    self.engine._schedule_load(self)
            elif lane.deficit <= 0:
                active.rotate(-1)  # its quantum is spent: the next account's turn
        return len(out) >= n or budget <= 0

    def _admit(self, msg: _Msg, now: float, wall: float) -> str:
        """``send``, ``skip`` (expired, cancelled), ``parked`` (its number is busy)
        or ``marking`` (admitted; goes once its in-flight mark is committed)."""
        if msg.cancelled:
            return "skip"
        if msg.expires_at is not None and wall >= msg.expires_at:
            self.engine._finalise(msg, S.EXPIRED, now, error={"reason": "validity passed before sending"})
            return "skip"
        if self.pacer is not None and not msg.in_pacer:
            if self.pacer.offer(msg.number, msg, now):
                self._mark_in_flight(msg)
                return "marking"
            return "parked"
        return "send"

    def _arm_pacer(self, now: float) -> None:
        """Wake the pool when the pacer's next parked message may go."""
        assert self.pacer is not None
        due = self.pacer.next_due()
        if due is None or (self._pacer_timer is not None and self._pacer_at <= due):
            return
        if self._pacer_timer is not None:
            self._pacer_timer.cancel()
        loop = self.engine._loop
        assert loop is not None
        self._pacer_at = due
        self._pacer_timer = loop.call_at(loop.time() + max(0.0, due - now), self._pacer_fired)

    def _pacer_fired(self) -> None:
        self._pacer_timer = None
        self._pacer_reached = self._pacer_at
        self._pacer_at = math.inf
        self.wake()

    def _mark_in_flight(self, msg: _Msg) -> None:
        """A paced number goes in flight.  That fact is committed before the
        message is sent: after a crash the number is known to be busy (its
        message's fate unknown, ending at the restart) and is not sent to again
        too early."""
        msg.in_pacer = True
        engine = self.engine
        engine.store.save_pacing([(msg.number, None, True)])
        engine.store.on_commit(lambda: self._marked(msg))

    def _marked(self, msg: _Msg) -> None:
        if msg.final_status is None and not msg.cancelled:
            self.front.append(msg)
            self.wake()

    def paced_end(self, msg: _Msg, now: float) -> None:
        """The message to a paced number ended: the wait starts, and is stored."""
        assert self.pacer is not None
        self.pacer.ended(msg.number, now)
        msg.in_pacer = False
        self.engine.store.save_pacing([(msg.number, self.engine.wall() + self.pacer.interval, False)])
        if self.pacer.parked:
            self._arm_pacer(now)

    def _emit(self, msg: _Msg, out: list[Submission], n: int, now: float, wall: float) -> bool:
        """Add the message's pending parts; False when only some fitted."""
        if msg.cancelled or msg.final_status is not None:
            return True
        if msg.expires_at is not None and wall >= msg.expires_at and msg.submitted == 0 and len(msg.pending) == msg.parts:
            if self.pacer is not None and msg.in_pacer:
                # admitted but never sent: the number was not really busy
                self.pacer.ended(msg.number, now - self.pacer.interval)
                msg.in_pacer = False
                self.engine.store.save_pacing([(msg.number, None, False)])
                self.wake()  # a message parked behind it may go now
            self.engine._finalise(msg, S.EXPIRED, now, error={"reason": "validity passed before sending"})
            return True
        bodies = msg.bodies or self.engine._bodies(msg)
        pending = msg.pending
        while pending and len(out) < n:
            i = pending.pop(0)
            out.append(Submission(bodies[i], (msg, i)))
        return not pending

    def add(self, msg: _Msg) -> bool:
        """Queue a message in memory; False when its lane is spilled (it stays in the store)."""
        lanes = self.lanes[msg.priority]
        lane = lanes.get(msg.account)
        if lane is None:
            lane = lanes[msg.account] = _Lane()
        if lane.spilled or self.in_ram >= self.engine.settings.engine.working_set:
            if not lane.spilled:
                lane.spilled = True
                lane.after_id = lane.queue[-1].id if lane.queue else msg.id - 1
            lane.arrived = True  # a load reading the store right now may not see it: it keeps the lane spilled
            return False
        self._append(lane, msg)
        return True

    def _append(self, lane: _Lane, msg: _Msg) -> None:
        if not lane.queue:
            active = self.active[msg.priority]
            if msg.account not in active:
                active.append(msg.account)
        lane.queue.append(msg)
        self.in_ram += 1
        if self.in_ram > self.in_ram_peak:
            self.in_ram_peak = self.in_ram

    def wake(self) -> None:
        if self.pool is not None:
            self.pool.wake()

    def _committed(self) -> None:
        self.uncommitted -= 1
        if self.uncommitted == 0:
            self.wake()

    # --- the pool's sink --------------------------------------------------------------

    def submitted(self, sub: Submission, message_id: str, bind: str, now: float) -> None:
        engine = self.engine
        msg, i = sub.context
        # Until this is committed the message would be sent again after a crash:
        # it keeps occupying a window slot (take() counts it), so what a crash
        # can duplicate stays within the windows.
        self.uncommitted += 1
        engine.store.on_commit(self._committed)
        msg.submitted += 1
        key = self.ids.response_key(message_id)
        msg.part_ids[i] = key
        single = msg.parts == 1
        if not single:
            engine.store.part(msg.id, self.name, PartRecord(seq=i + 1, carrier_id=message_id, key=key))
        held = engine.correlator.register(self.name, message_id, (msg, i), now, key)
        if msg.submitted + msg.refused == msg.parts and msg.final_status is None:
            self._all_parts_in(msg, now, message_id if single else None, key if single else None)
        elif single:  # submitted again after its first fate was unknown, or after it ended
            engine.store.submitted(msg.id, msg.submitted_at or engine.wall(), message_id, key)
        for receipt in held:
            engine._apply_receipt(self, msg, i, receipt, now)

    def _all_parts_in(self, msg: _Msg, now: float, carrier_id: str | None, key: str | None) -> None:
        """Every part is with the carrier (or refused): the message is submitted, its receipts awaited."""
        engine = self.engine
        wall = engine.wall()
        msg.status = _SUBMITTED
        msg.submitted_at = wall
        if msg.accepted_at:
            self.to_submit.observe(now - msg.accepted_at)
        msg.deadline = now + engine.settings.engine.receipt_timeout_s
        engine._left_backlog(msg)
        engine._awaiting.append((msg.deadline, msg))
        engine.store.submitted(msg.id, wall, carrier_id, key)
        if msg.callback is not None:
            engine._notify_status(msg, _SUBMITTED, wall, None, 0)
        engine._emit_event(msg, _SUBMITTED, wall)

    def failed(self, sub: Submission, status: int, now: float) -> None:
        msg, i = sub.context
        engine = self.engine
        if msg.final_status is not None:
            return
        if status in _SUPPRESSING:
            engine._suppress(msg.number, self.name, status_name(status))
        error = {"smpp_status": status, "smpp_status_name": status_name(status)}
        if msg.submitted == 0:
            engine._finalise(msg, S.REJECTED, now, error=error)
            return
        # Parts of it are with the carrier already and may reach the handset: this
        # part (and any not sent yet, useless without it) count as failed parts,
        # and the receipts of the others decide by SPEC's multi-part table.
        if msg.failure is None:
            msg.failure = error
        refused = [i, *msg.pending]
        msg.pending = []
        for j in refused:
            if msg.results[j] is None:
                msg.results[j] = PartResult.FAILED
        msg.refused += len(refused)
        engine.counters["parts_refused"] += len(refused)
        if msg.submitted + msg.refused >= msg.parts and msg.status != _SUBMITTED:
            self._all_parts_in(msg, now, None, None)
        outcome = message_outcome(msg.results, timed_out=False)
        if outcome.status is not None:
            engine._finalise(msg, outcome.status, now, error=msg.failure if outcome.status is not S.DELIVERED else None, outcome=outcome)

    def fate_unknown(self, subs: list[Submission], reason: str, now: float) -> None:
        engine = self.engine
        by_msg: dict[int, tuple[_Msg, list[int]]] = {}
        for sub in subs:
            msg, i = sub.context
            by_msg.setdefault(msg.id, (msg, []))[1].append(i)
        for msg, parts in by_msg.values():
            if msg.final_status is not None:
                continue
            if self.pacer is not None and msg.in_pacer:
                # SPEC: a message whose fate is unknown ends when the loss is noticed
                self.paced_end(msg, now)
            if self.settings.resend_fate_unknown:
                msg.pending = sorted(set(msg.pending) | set(parts))
                engine.counters["resent_fate_unknown"] += len(parts)
                if self.pacer is not None:
                    self._requeue_paced(msg)
                else:
                    self.front.append(msg)
            else:
                engine._finalise(msg, S.INDEFINITE, now, error={"reason": reason})
        self.wake()

    def _requeue_paced(self, msg: _Msg) -> None:
        lane = self.lanes[msg.priority].setdefault(msg.account, _Lane())
        if not lane.queue:
            active = self.active[msg.priority]
            if msg.account not in active:
                active.appendleft(msg.account)
        lane.queue.appendleft(msg)
        self.in_ram += 1
        if self.in_ram > self.in_ram_peak:
            self.in_ram_peak = self.in_ram

    def returned(self, subs: list[Submission], now: float) -> None:
        pass  # still queued in the store: recovered on the next start

    def delivered(self, pdu: Any, bind: str, now: float, ack: Callable[..., None]) -> bool:
        """Receipts are answered once what they changed is committed: a crash
        before that makes the carrier deliver them again, not lose them.
        (``pdu``: a deliver_sm or data_sm, read by field name.)"""
        engine = self.engine
        receipt = parse_receipt(pdu)
        if receipt is None:
            return engine._mo(self, pdu, ack)
        ref = engine.correlator.match(self.name, receipt, now)
        if ref is None:
            engine.counters["receipts_held"] += 1
            if self.pacer is not None and receipt.final:
                # a receipt for a message we lost track of still ends something at the carrier
                try:
                    number = from_smpp(pdu.source_addr)
                except NumberError:
                    number = None  # not a handset number: nothing to pace
                if number is not None:
                    self.pacer.push(number, now)
                    engine.store.save_pacing([(number, engine.wall() + self.pacer.interval, False)])
            return False
        if ref is _LINGERING:  # a duplicate of a final receipt (its answer was lost): nothing changes
            engine.counters["receipts_duplicate"] += 1
        else:
            msg, i = ref
            engine._apply_receipt(self, msg, i, receipt, now)
        engine.store.on_commit(ack)
        return True


class Engine:
    """The embedded engine.  See the module docstring."""

    def __init__(
        self,
        config: Config,
        *,
        data_dir: str | Path | None = None,
        clock: Callable[[], float] | None = None,
        wallclock: Callable[[], float] | None = None,
        lookup: CarrierLookup | None = None,
        events: bool = True,
    ) -> None:
        self.settings = config
        # events=False: nothing will read events() (denpo serve), so none are made or kept
        self._events_on = events
        self.accounts = config.accounts
        self._clock = clock
        self._wallclock = wallclock
        # wall-clock seconds: an attribute rather than a method (called several times per message)
        self.wall: Callable[[], float] = wallclock if wallclock is not None else time.time
        path = Path(config.store.path)
        if data_dir is not None and not path.is_absolute():
            path = Path(data_dir) / path.name
        self.store = SqliteStore(path, synchronous=config.store.synchronous, wallclock=self.wall)
        self._lookup = lookup
        schemes: dict[str, IdScheme] = {
            name: IdScheme(response=c.id_response, receipt_text=c.id_receipt_text) for name, c in config.carriers.items()
        }
        self.correlator = Correlator(CorrelatorConfig(linger=config.engine.receipt_linger_s), schemes=schemes)
        self.carriers: dict[str, _Carrier] = {name: _Carrier(self, name, c) for name, c in config.carriers.items()}
        self.backlog = 0  # accepted, not yet submitted (memory and store)
        self.backlog_by_priority: dict[str, int] = {p: 0 for p in _PRIORITY_NAMES}
        self.counters: collections.Counter[str] = collections.Counter()
        self._live: dict[int, _Msg] = {}  # every message the engine is working on, by id
        self._awaiting: collections.deque[tuple[float, _Msg]] = collections.deque()
        self._scheduled: list[tuple[float, int, _Msg]] = []  # send_at (wall) heap
        self._events: collections.deque[StatusEvent | MoEvent] = collections.deque(maxlen=config.engine.events_buffer)
        self._event_signal: asyncio.Event | None = None
        self._tasks: asyncio.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loading: set[str] = set()
        self._closing = False
        self._ticker: asyncio.TimerHandle | None = None
        self._suppressed: set[str] = set()
        self._mo_parts: dict[tuple[str, str, int], dict[int, str]] = {}
        self.store_lag_limit = 1000  # transitions queued for the store before sending pauses
        self._store_waiting = False
        self._gc_before: tuple[int, int, int] | None = None
        self._refs: dict[str, int] = {}  # the last concatenation reference per carrier
        self._accepts: list[tuple[list[NewMessage], Any, asyncio.Future[Any]]] = []  # this loop pass's (see _accept)
        self.loop_lag = Histogram()  # how late timers run (see _lag_probe)
        self.loop_lag_max = 0.0
        self._lag_due = 0.0
        self._lag_timer: asyncio.TimerHandle | None = None
        # notifications: written to the store's outbox with what they report, sent once committed
        self.notifier = Notifier(
            config.accounts, record=self._notified, timeout_s=config.notify.timeout_ms / 1000,
            retry_base_s=config.notify.retry_base_s, retry_cap_s=config.notify.retry_cap_s, wall=self.wall,
        )
        self.store.on_outbox_committed = self._outbox_committed
        self._outbox_seq = 0  # the last outbox seq handed out
        self._outbox_pushed = 0  # every committed entry up to this seq is with the notifier (or sent)
        self._outbox_spilled = False  # committed entries wait in the store (the notifier held enough)
        self._outbox_loading = False
        self._notify_limit = config.engine.notify_buffer
        self._mo_routes: dict[tuple[str, str], str] = {
            (carrier, sender): name
            for name, account in config.accounts.items()
            for carrier, senders in account.senders.items()
            for sender in senders
        }

    # --- clocks -----------------------------------------------------------------------

    def now(self) -> float:
        return self._clock() if self._clock is not None else self._loop.time()  # type: ignore[union-attr]

    # --- lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> "Engine":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        threshold = self.settings.engine.gc_threshold
        if threshold:
            self._gc_before = gc.get_threshold()
            # older generations collected rarely too: with (50000, 10, 10) the collector
            # still took ~10 % of the engine's CPU, with (50000, 100, 1000) as little as
            # with no collector at all (RSS the same: the engine makes no cyclic garbage)
            gc.set_threshold(threshold, 100, 1000)
            gc.freeze()  # what exists now (modules, config, …) is never garbage: not scanned again
        self._event_signal = asyncio.Event()
        if self._lookup is None:
            lk = self.settings.lookup
            fallback = dict(lk.prefixes) if lk.prefix_fallback else None
            self._lookup = CarrierLookup.from_file(lk.file, fallback=fallback) if lk.file else CarrierLookup(fallback=fallback)
        await self.store.open()
        await self._recover()
        self._outbox_seq = await self.store.max_outbox_seq()  # event_ids go on after every one handed out
        await self._load_outbox(0)  # what was pending at the last stop or crash (_outbox_pushed is 0 until then)
        await self.notifier.start()
        self._tasks = asyncio.TaskGroup()
        await self._tasks.__aenter__()
        for carrier in self.carriers.values():
            pool = CarrierPool(carrier.name, carrier.settings, carrier, source=carrier, smpp=self.settings.smpp, clock=self._clock)
            carrier.pool = pool
            await pool.start()
        self._ticker = self._loop.call_later(1.0, self._tick)
        self._lag_due = self._loop.time() + _LAG_PROBE_S
        self._lag_timer = self._loop.call_at(self._lag_due, self._lag_probe)

    async def close(self) -> None:
        """Stop sending, drain the pools, persist everything."""
        if self._closing:
            return
        self._closing = True
        if self._ticker is not None:
            self._ticker.cancel()
        if self._lag_timer is not None:
            self._lag_timer.cancel()
        for carrier in self.carriers.values():
            if carrier.pool is not None:
                await carrier.pool.close()
        self._save_pacing()
        if self._tasks is not None:
            await self._tasks.__aexit__(None, None, None)
        await self.store.flush()  # the last notifications committed (and handed to the notifier)
        await self.notifier.close()  # what it has not sent stays in the outbox for the next start
        await self.store.close()
        if self._gc_before is not None:
            gc.set_threshold(*self._gc_before)
            gc.unfreeze()
            self._gc_before = None
        if self._event_signal is not None:
            self._event_signal.set()  # an events() iterator ends once it has read what is left

    async def _recover(self) -> None:
        """Unfinished messages from the store: backlog lanes, messages awaiting receipts, the pacing clock."""
        now = self.now()
        wall = self.wall()
        for carrier_name, priority, account, count in await self.store.lanes():
            carrier = self.carriers.get(carrier_name)
            if carrier is None:
                log.warning("%d queued messages for carrier %s, which is not configured", count, carrier_name)
                continue
            lane = carrier.lanes[priority].setdefault(account, _Lane())
            lane.spilled = True
            lane.after_id = 0
            self.backlog += count
            self.backlog_by_priority[priority] += count
        after = 0
        in_flight: dict[str, set[str]] = {}
        while True:
            rows = await self.store.load(statuses=("submitted",), after_id=after, limit=2000)
            if not rows:
                break
            after = rows[-1].id
            parts = await self.store.load_parts([r.id for r in rows])
            callbacks = await self.store.load_callbacks([r.id for r in rows])
            for row in rows:
                carrier = self.carriers.get(row.carrier)
                if carrier is None:
                    continue
                msg = self._revive(row, parts.get(row.id, []), now)
                msg.callback = callbacks.get(row.id)
                age = wall - (row.submitted_at or wall)
                msg.deadline = now + max(0.0, self.settings.engine.receipt_timeout_s - age)
                self._live[msg.id] = msg
                self._awaiting.append((msg.deadline, msg))
                if carrier.pacer is not None:
                    in_flight.setdefault(carrier.name, set()).add(msg.number)
                    msg.in_pacer = True
        self._awaiting = collections.deque(sorted(self._awaiting, key=lambda e: e[0]))
        await self._recover_indefinite(now, wall)
        entries = await self.store.load_pacing()
        for carrier in self.carriers.values():
            if carrier.pacer is None:
                continue
            awaiting = in_flight.get(carrier.name, set())
            waiting = []
            for number, not_before, was_in_flight in entries:
                if number in awaiting:
                    continue  # a message to it awaits its receipt: in flight until then
                if was_in_flight:
                    # in flight at the crash with no message we know awaits a receipt:
                    # its fate is unknown, and that loss is noticed now
                    waiting.append((number, carrier.pacer.interval))
                elif not_before is not None and not_before > wall:
                    waiting.append((number, not_before - wall))
            carrier.pacer.restore(waiting, now, in_flight=sorted(awaiting))
        self._suppressed = {number for number, _c, _r, _at in await self.store.suppressed()}
        if self.backlog or self._awaiting:
            log.info("recovered %d queued and %d submitted messages", self.backlog, len(self._awaiting))

    async def _recover_indefinite(self, now: float, wall: float) -> None:
        """Indefinite messages may still get a late receipt (SPEC): those that ended
        within the correlator's ``registered_ttl`` are registered again, as they
        were before the restart."""
        horizon = wall - self.correlator.config.registered_ttl
        after = 0
        count = 0
        while True:
            rows = await self.store.load(statuses=(S.INDEFINITE.value,), after_id=after, limit=2000)
            if not rows:
                break
            after = rows[-1].id
            rows = [r for r in rows if r.carrier in self.carriers and (r.done_at or wall) >= horizon]
            parts = await self.store.load_parts([r.id for r in rows]) if rows else {}
            callbacks = await self.store.load_callbacks([r.id for r in rows])
            for row in rows:
                msg = self._revive(row, parts.get(row.id, []), now)
                msg.final_status = row.status
                msg.callback = callbacks.get(row.id)
                count += 1
        if count:
            log.info("%d indefinite messages await late receipts", count)

    def _revive(self, row: StoredMessage, parts: list[PartRecord], now: float) -> _Msg:
        """A submitted message from the store, its parts' results restored and the
        parts still without a final receipt registered for their receipts."""
        msg = _Msg(row)
        msg.in_backlog = False
        msg.pending = []
        msg.submitted = row.parts
        msg.submitted_at = row.submitted_at
        scheme = self.correlator.scheme(row.carrier)
        for part in parts:
            i = part.seq - 1
            if not 0 <= i < msg.parts:
                continue
            if part.carrier_id:
                msg.part_ids[i] = part.key or scheme.response_key(part.carrier_id)
            if part.state:
                msg.results[i] = PartResult(part.state)
            elif part.carrier_id:
                self.correlator.register(row.carrier, part.carrier_id, (msg, i), now, msg.part_ids[i])
        return msg

    # --- accepting ------------------------------------------------------------------------

    async def submit(self, request: SubmitRequest) -> Accepted:
        """Accept one message (raises :class:`SubmitError`)."""
        (result,) = await self.submit_many([request])
        if isinstance(result, SubmitError):
            raise result
        return result

    async def submit_many(self, requests: list[SubmitRequest]) -> list[Accepted | SubmitError]:
        """Accept many messages in one store transaction; a result per request, in order."""
        if self._closing:
            return [SubmitError("", "shutting_down", "the engine is shutting down", temporary=True) for _ in requests]
        results: list[Accepted | SubmitError | None] = [None] * len(requests)
        rows: list[NewMessage] = []
        plans: list[Any] = []
        index: list[int] = []
        wall = self.wall()
        for k, request in enumerate(requests):
            try:
                row, text_plan = self._prepare(request, wall)
            except SubmitError as exc:
                results[k] = exc
                continue
            rows.append(row)
            plans.append(text_plan)
            index.append(k)
        refused: list[tuple[NewMessage, int, SubmitError]] = []
        if rows and self._suppressed:
            keep = []
            for j, (row, k) in enumerate(zip(rows, index)):
                if row.number in self._suppressed:
                    error = SubmitError("to", "suppressed", f"{row.number} was reported as not existing by {row.carrier}")
                    refused.append((row, k, error))
                else:
                    keep.append(j)
            rows, plans, index = [rows[j] for j in keep], [plans[j] for j in keep], [index[j] for j in keep]
        room = max(0, self.settings.engine.backlog_limit - self.backlog)
        if len(rows) > room:
            # what fits is accepted; the rest is refused as temporary, in request order
            error = SubmitError(
                "", "backlog_full", f"{self.backlog} messages are waiting; try again shortly", temporary=True, retry_after=1
            )
            refused.extend((row, k, error) for row, k in zip(rows[room:], index[room:]))
            rows, plans, index = rows[:room], plans[:room], index[:room]
        if refused:
            # a retry of a message accepted before is its duplicate, never refused
            known = await self.store.find_refs([(r.account, r.client_ref) for r, _k, _e in refused if r.client_ref is not None])
            for row, k, error in refused:
                found = known.get((row.account, row.client_ref)) if row.client_ref is not None else None
                results[k] = error if found is None else self._duplicate(row, *found)
        if rows:
            callbacks: list[tuple[str, int] | None] | None = None
            if any(requests[k].dlr_url for k in index):
                callbacks = []
                for k in index:
                    url = requests[k].dlr_url
                    callbacks.append((url, requests[k].dlr_mask) if url else None)
            pending = self._accept(rows, callbacks)
            try:
                stored = await asyncio.shield(pending)
            except asyncio.CancelledError:
                # the caller gave up, the store did not: what it commits is queued all the same
                pending.add_done_callback(
                    lambda f: None if f.cancelled() or f.exception() is not None else self._queue_stored(rows, plans, callbacks, f.result())
                )
                raise
            accepted = self._queue_stored(rows, plans, callbacks, stored)
            gone: list[tuple[NewMessage, int, int]] = []
            for row, k, (mid, created), result in zip(rows, index, stored, accepted):
                if created:
                    results[k] = result
                    continue
                live = self._live.get(mid)
                if live is not None:
                    results[k] = self._duplicate(row, mid, live.status)
                else:
                    gone.append((row, k, mid))
            if gone:  # finished (or not loaded yet): its status is in the store
                await self.store.flush()
                known = await self.store.find_refs([(r.account, r.client_ref) for r, _k, _m in gone])  # type: ignore[misc]
                for row, k, mid in gone:
                    results[k] = self._duplicate(row, mid, known.get((row.account, row.client_ref), (mid, "accepted"))[1])  # type: ignore[arg-type]
        return results  # type: ignore[return-value]

    def _queue_stored(
        self, rows: list[NewMessage], plans: list[Any], callbacks: list[tuple[str, int] | None] | None,
        stored: list[tuple[int, bool]],
    ) -> list[Accepted | None]:
        """The messages the store created go to their queues; their answers (None for duplicates)."""
        now = self.now()
        out: list[Accepted | None] = []
        for j, (row, text_plan, (_mid, created)) in enumerate(zip(rows, plans, stored)):
            if not created:
                out.append(None)
                continue
            self.backlog += 1
            self.backlog_by_priority[row.priority] += 1
            msg = _Msg(row)
            msg.accepted_at = now
            msg.plan = text_plan
            if callbacks is not None:
                msg.callback = callbacks[j]
            self._enqueue(msg, now)
            out.append(
                Accepted(
                    id=msg.public_id, status=row.status, carrier=row.carrier, to=row.number, parts=row.parts,
                    billing_units=row.billing_units, client_ref=row.client_ref, duplicate=False,
                )
            )
        self.counters["accepted"] += len(out) - out.count(None)
        return out

    def _accept(self, rows: list[NewMessage], callbacks: list[tuple[str, int] | None] | None) -> asyncio.Future[list[tuple[int, bool]]]:
        """Store new messages; the submit calls of one loop pass share one store
        accept (one insert, one commit wait), as concurrent single-message HTTP
        requests would otherwise cost a store round trip each."""
        assert self._loop is not None
        future: asyncio.Future[list[tuple[int, bool]]] = self._loop.create_future()
        self._accepts.append((rows, callbacks, future))
        if len(self._accepts) == 1:
            self._loop.call_soon(self._accept_pass)
        return future

    def _accept_pass(self) -> None:
        batch, self._accepts = self._accepts, []
        merged: list[NewMessage] = [row for rows, _cb, _f in batch for row in rows]
        merged_callbacks = None
        if any(cb is not None for _r, cb, _f in batch):
            merged_callbacks = [c for rows, cb, _f in batch for c in (cb if cb is not None else [None] * len(rows))]

        def split(results: list[tuple[int, bool]] | None, exc: BaseException | None) -> None:
            """Each caller gets its own rows' results (or the store's error)."""
            start = 0
            for rows, _cb, future in batch:
                end = start + len(rows)
                if not future.done():  # (a caller that gave up: see submit_many)
                    if exc is not None:
                        future.set_exception(exc)
                    else:
                        assert results is not None
                        future.set_result(results[start:end])
                start = end

        try:
            # called in the pass that hears of the commit: the callers' futures are
            # set there, not a pass later
            self.store.accept_then(merged, merged_callbacks, split)  # type: ignore[union-attr]
        except Exception as exc:  # noqa: BLE001 - the store refused (it stopped): every caller hears it
            split(None, exc)

    @staticmethod
    def _duplicate(row: NewMessage, mid: int, status: str) -> Accepted:
        return Accepted(
            id=format_id(mid), status=status, carrier=row.carrier, to=row.number, parts=row.parts,
            billing_units=row.billing_units, client_ref=row.client_ref, duplicate=True,
        )

    def _prepare(self, request: SubmitRequest, wall: float) -> tuple[NewMessage, Any]:
        account = self.accounts.get(request.account)
        if account is None:
            raise SubmitError("account", "unknown_account", f"no account {request.account!r}")
        try:
            number = normalize(request.to)
        except NumberError as bad_number:  # (one name per exception type: see codec._decode_frame)
            raise SubmitError("to", bad_number.reason, f"{request.to!r}: {bad_number.reason.replace('_', ' ')}") from None
        carrier = request.carrier
        if carrier is None:
            assert self._lookup is not None
            carrier = self._lookup.lookup(number)
            if carrier is None:
                raise SubmitError("carrier", "unresolvable_carrier", f"no carrier known for {number}; give carrier explicitly")
        elif carrier not in CARRIERS:
            raise SubmitError("carrier", "unknown_carrier", f"{carrier!r} is not one of {', '.join(CARRIERS)}")
        if carrier not in self.carriers:
            raise SubmitError("carrier", "carrier_not_configured", f"carrier {carrier} has no SMSC configured")
        registered = account.senders.get(carrier, [])  # type: ignore[call-overload]
        sender = request.sender
        if sender is None:
            if not registered:
                raise SubmitError("sender", "no_sender", f"account {request.account} has no sender registered for {carrier}")
            sender = registered[0]
        elif sender not in registered:
            raise SubmitError("sender", "sender_not_registered", f"{sender!r} is not registered for {carrier} on this account")
        if request.priority not in _PRIORITY_NAMES:
            raise SubmitError("priority", "bad_priority", f"one of {', '.join(_PRIORITY_NAMES)}")
        try:
            text_plan = plan(request.text, carrier)
        except TextError as bad_text:
            raise SubmitError("text", bad_text.reason, str(bad_text), limit=bad_text.limit, count=bad_text.count) from None
        ref = 0
        if len(text_plan.segments) > 1:
            # concatenation reference: a counter per carrier (stored with the
            # message, so a re-send after a restart carries the same one)
            ref = self._refs[carrier] = ((self._refs.get(carrier) or random.getrandbits(16)) + 1) % (1 << self._ref_bits(carrier))
            text_plan = plan(request.text, carrier, ref=ref)
        if request.dlr_url is not None and not request.dlr_url.startswith(("http://", "https://")):
            raise SubmitError("dlr_url", "bad_url", "dlr-url must be an http:// or https:// URL")
        if not 0 <= request.dlr_mask <= 31:
            raise SubmitError("dlr_mask", "bad_value", "dlr-mask is a sum of 1, 2, 4, 8 and 16")
        validity = request.validity if request.validity is not None else self.settings.engine.default_validity_s
        if validity is not None and validity <= 0:
            raise SubmitError("validity", "bad_validity", "validity must be positive seconds")
        send_at = request.send_at
        start = send_at if send_at is not None and send_at > wall else wall
        return NewMessage(
            account=request.account,
            client_ref=request.client_ref,
            carrier=carrier,
            number=number,
            sender=sender,
            text=request.text,
            priority=request.priority,
            send_at=send_at,
            expires_at=start + validity if validity is not None else None,
            parts=len(text_plan.segments),
            billing_units=text_plan.billing_units,
            ref=ref,
            status="accepted" if send_at is not None and send_at > wall else "queued",
        ), text_plan

    def _enqueue(self, msg: _Msg, now: float) -> None:
        carrier = self.carriers[msg.carrier]
        if msg.status == "accepted":
            if msg.send_at is not None and msg.send_at > self.wall():
                self._live[msg.id] = msg
                heapq.heappush(self._scheduled, (msg.send_at, msg.id, msg))
                return
            msg.status = "queued"
            self.store.record(Update(id=msg.id, status="queued", at=self.wall()))
        if carrier.add(msg):
            self._live[msg.id] = msg
            carrier.wake()

    def _bodies(self, msg: _Msg) -> list[bytes]:
        """Encode the message's submit_sm bodies (all parts), once."""
        text_plan = msg.plan or plan(msg.text, msg.carrier, ref=msg.ref)
        msg.plan = None
        sender = msg.sender
        ton, npi = (5, 0) if not sender.isdigit() else ((2, 1) if sender.startswith("0") else (1, 1))
        bodies = []
        destination = to_smpp(msg.number)
        for i, segment in enumerate(text_plan.segments):
            tlvs: dict[int, Any] = {}
            short = segment
            if text_plan.use_message_payload:
                tlvs[Tag.MESSAGE_PAYLOAD] = segment
                short = b""
            elif text_plan.concatenation == "sar":
                ref, total, seq = text_plan.sar[i]
                tlvs = {Tag.SAR_MSG_REF_NUM: ref, Tag.SAR_TOTAL_SEGMENTS: total, Tag.SAR_SEGMENT_SEQNUM: seq}
            bodies.append(
                submit_sm_body(
                    ton, npi, sender, destination, esm_class=text_plan.esm_class, registered_delivery=1,
                    data_coding=text_plan.data_coding, short_message=short, tlvs=tlvs,
                )
            )
        if len(bodies) != msg.parts:  # a profile change between accept and send
            msg.parts = len(bodies)
            msg.pending = list(range(msg.parts))
            msg.part_ids = [None] * msg.parts
            msg.results = [None] * msg.parts
        msg.bodies = bodies
        return bodies

    @staticmethod
    def _ref_bits(carrier: str) -> int:
        from engine.text import PROFILES

        profile = PROFILES[carrier]
        if profile.concatenation == "udh16" or (profile.concatenation == "sar" and profile.sar_ref_bits == 16):
            return 16
        return 8

    # --- loading the backlog from the store ------------------------------------------------

    def _schedule_load(self, carrier: _Carrier) -> None:
        if carrier.name in self._loading or self._tasks is None or self._closing:
            return
        if not any(l.spilled for lanes in carrier.lanes.values() for l in lanes.values()):
            return
        self._loading.add(carrier.name)
        self._tasks.create_task(self._load(carrier))

    async def _load(self, carrier: _Carrier) -> None:
        try:
            budget = self.settings.engine.working_set - carrier.in_ram
            for priority in _PRIORITY_NAMES:
                for account, lane in list(carrier.lanes[priority].items()):
                    if budget <= 0:
                        return
                    if not lane.spilled:
                        continue
                    limit = min(budget, 5000)
                    lane.arrived = False
                    rows = await self.store.load_lane(carrier.name, priority, account, after_id=lane.after_id, limit=limit)
                    callbacks = await self.store.load_callbacks([r.id for r in rows])
                    wall = self.wall()
                    for row in rows:
                        lane.after_id = row.id
                        if row.id in self._live:
                            continue
                        msg = _Msg(row)
                        msg.callback = callbacks.get(row.id)
                        if row.status == "accepted" and row.send_at is not None and row.send_at > wall:
                            self._live[msg.id] = msg
                            heapq.heappush(self._scheduled, (row.send_at, msg.id, msg))
                            continue
                        if row.status == "accepted":
                            msg.status = "queued"
                            self.store.record(Update(id=msg.id, status="queued", at=wall))
                        self._live[msg.id] = msg
                        carrier._append(lane, msg)
                        budget -= 1
                    if len(rows) < limit and not lane.arrived:
                        # the store holds no more of this lane (one accepted while the rows
                        # were read may be missing from them: then the lane stays spilled)
                        lane.spilled = False
        finally:
            self._loading.discard(carrier.name)
            carrier.wake()

    # --- receipts and final statuses ---------------------------------------------------------

    def _apply_receipt(self, carrier: _Carrier, msg: _Msg, i: int, receipt: Any, now: float) -> None:
        result = part_result(receipt)
        if result is None:
            return  # ENROUTE, ACCEPTD, UNKNOWN: not final
        if msg.results[i] is not None:
            return  # the first final result of a part stands
        msg.results[i] = result
        carrier.receipts[result.value] += 1
        wall = self.wall()
        if msg.parts > 1:  # a single part's result is its message's final status
            self.store.part(msg.id, carrier.name, PartRecord(seq=i + 1, state=result.value, stat=receipt.stat, err=receipt.err, at=wall))
        self.counters["receipts"] += 1
        error = None
        if result is not PartResult.DELIVERED:
            error = {"stat": receipt.stat, "err": receipt.err}
            if msg.failure is None:
                msg.failure = error
        if msg.final_status is not None:
            if carrier.pacer is not None:
                # the carrier just delivered (or failed) it: that is when it ended there
                carrier.pacer.push(msg.number, now)
                self.store.save_pacing([(msg.number, wall + carrier.pacer.interval, False)])
            if msg.final_status == S.INDEFINITE.value:
                outcome = message_outcome(msg.results, timed_out=True)
                if outcome.status is not None and outcome.status.value != msg.final_status:
                    if outcome.status is not S.DELIVERED:
                        error = error or msg.failure
                    self._finalise(msg, outcome.status, now, error=error, outcome=outcome, late=True)
            return
        # a single part's result decides at once (the table's rows for one part)
        outcome = _SINGLE_PART_OUTCOME[result] if msg.parts == 1 else message_outcome(msg.results, timed_out=False)
        if outcome.status is not None:
            if msg.submitted_at is not None:
                carrier.to_final.observe(max(0.0, wall - msg.submitted_at))
            if outcome.status is not S.DELIVERED:
                error = error or msg.failure  # the last receipt may be a delivered part's
            self._finalise(msg, outcome.status, now, error=error, outcome=outcome)

    def _finalise(
        self, msg: _Msg, status: MessageStatus, now: float, *, error: dict[str, Any] | None = None,
        outcome: Any = None, late: bool = False,
    ) -> None:
        wall = self.wall()
        carrier = self.carriers.get(msg.carrier)
        first = msg.final_status is None
        self._left_backlog(msg)
        value = _VALUE[status]  # (an Enum's .value is a Python-level property: this runs per message)
        msg.final_status = value
        msg.status = value
        delivered = outcome.delivered_parts if outcome is not None else 0
        billable_parts = outcome.billable_parts if outcome is not None else 0
        if billable_parts >= msg.parts:
            billable_units = msg.billing_units
        else:
            billable_units = min(billable_parts, msg.billing_units)
        msg.billable_parts = billable_units
        keep = late or not first or status is S.INDEFINITE  # an indefinite may be overwritten later
        self.store.finished(
            msg.id, value, wall, billable_units=billable_units, delivered_parts=delivered, error=error, history=keep
        )
        if first and carrier is not None and carrier.pacer is not None and msg.in_pacer:
            carrier.paced_end(msg, now)
        if status is not S.INDEFINITE:
            for key in msg.part_ids:
                if key:  # a duplicate receipt within the linger matches the marker, not the message
                    self.correlator.forget(msg.carrier, "", now, key, linger_ref=_LINGERING)
        # an indefinite one stays registered with the correlator (bounded, expiring)
        # for a late receipt; the engine itself is done with it
        self._live.pop(msg.id, None)
        self.counters[_FINAL_COUNTER[value]] += 1
        self._notify_status(msg, value, wall, error, billable_units)
        self._emit_event(msg, value, wall, error=error, billable_units=billable_units, late=late)

    def _store_caught_up(self) -> None:
        self._store_waiting = False
        for carrier in self.carriers.values():
            carrier.wake()

    def _left_backlog(self, msg: _Msg) -> None:
        if msg.in_backlog:
            msg.in_backlog = False
            self.backlog -= 1
            self.backlog_by_priority[msg.priority] -= 1

    def _emit_event(self, msg: _Msg, status: str, wall: float, *, error: dict[str, Any] | None = None, billable_units: int = 0, late: bool = False) -> None:
        if not self._events_on:
            return
        final = status in _FINAL_VALUES
        event = StatusEvent(
            id=msg.public_id, account=msg.account, client_ref=msg.client_ref, status=status, carrier=msg.carrier,
            to=msg.number, parts=msg.parts, billable_units=billable_units, error=error, submitted_at=msg.submitted_at,
            done_at=wall if final else None, at=wall, final=final, late=late,
        )
        if len(self._events) == self._events.maxlen:
            self.counters["events_dropped"] += 1
        self._events.append(event)
        if self._event_signal is not None:
            self._event_signal.set()

    # --- notifications ---------------------------------------------------------------------------

    def _outbox(self, account: str, kind: str, message_id: int | None, url: str, body: bytes, wall: float) -> None:
        """Stage a notification: committed with what it reports (same loop pass, same transaction)."""
        self._outbox_seq += 1
        self.store.notify([(self._outbox_seq, account, kind, message_id, url, body, wall)])

    def _notify_status(self, msg: _Msg, status: str, wall: float, error: dict[str, Any] | None, billable_units: int) -> None:
        """The result notification (and Kannel dlr-url callback) of a status, if anyone asked for it."""
        account = self.accounts.get(msg.account)
        if account is not None and account.result_url is not None and status in _FINAL_VALUES:
            self._outbox_seq += 1
            body = _encode(
                {
                    "event_id": self._outbox_seq, "id": msg.public_id, "client_ref": msg.client_ref, "status": status,
                    "carrier": msg.carrier, "to": msg.number, "parts": msg.parts, "billable_units": billable_units,
                    "error": error, "submitted_at": msg.submitted_at, "done_at": wall,
                }
            )
            self.store.notify([(self._outbox_seq, msg.account, "result", msg.id, account.result_url, body, wall)])
        if msg.callback is not None:
            template, mask = msg.callback
            value = dlr_value(status, mask)
            if value is not None:
                reply = (error or {}).get("stat") or (error or {}).get("smpp_status_name") or _KANNEL_REPLY.get(status, status)
                url = fill_dlr_url(
                    template, value=value, message_id=msg.public_id, carrier_id=msg.part_ids[0] if msg.part_ids else None,
                    to=msg.number, sender=msg.sender, at=wall, reply=str(reply),
                )
                self._outbox(msg.account, "dlr", msg.id, url, b"", wall)

    def _outbox_committed(self, rows: list[tuple[Any, ...]]) -> None:
        """Committed outbox entries (in seq order, no gaps between commits): to the
        notifier, unless it holds enough already — then they wait in the store and
        are loaded as it drains (memory stays bounded however long a receiver is down)."""
        if self._outbox_spilled or rows[0][0] != self._outbox_pushed + 1 or self.notifier.pending >= self._notify_limit:
            self._outbox_spilled = True
            return
        self.notifier.push([_entry(r) for r in rows])
        self._outbox_pushed = rows[-1][0]

    def _notified(self, deliveries: list[Delivery]) -> None:
        self.store.notified(deliveries)
        if self._outbox_spilled and not self._outbox_loading and self.notifier.pending < self._notify_limit // 2:
            if self._tasks is not None and not self._closing:
                self._outbox_loading = True
                self._tasks.create_task(self._load_outbox(self._notify_limit // 2))

    async def _load_outbox(self, limit: int) -> None:
        """Pending entries after the last one handed to the notifier (all of them at
        start, up to the limit; later ``limit`` at a time)."""
        try:
            budget = limit or self._notify_limit
            await self.store.flush()  # every staged entry is committed: none is missed below
            rows, top = await self.store.load_outbox(after_seq=self._outbox_pushed, limit=budget)
            if rows:
                self.notifier.push([_entry(r) for r in rows])
                self._outbox_pushed = rows[-1][0]
            if len(rows) < budget:
                # caught up with what was committed when the rows were read; a commit
                # listened to meanwhile starts after ``top`` and is contiguous again
                self._outbox_pushed = max(self._outbox_pushed, top)
                self._outbox_spilled = False
            else:
                self._outbox_spilled = True
        finally:
            self._outbox_loading = False

    async def dead_notifications(self, account: str, limit: int = 100) -> list[dict[str, Any]]:
        """The account's dead notifications (not answered 2xx within their max age), newest first."""
        await self.store.flush()
        return [
            {
                "event_id": seq, "kind": kind, "message_id": format_id(mid) if mid is not None else None, "url": url,
                "body": body.decode("utf-8", "replace") if body else None, "created_at": created, "attempts": attempts,
                "last_error": error,
            }
            for seq, kind, mid, url, body, created, attempts, error in await self.store.dead_notifications(account, limit=limit)
        ]

    def _mo(self, carrier: _Carrier, pdu: Any, ack: Callable[..., None] | None = None) -> bool:
        """A mobile-originated message; concatenated parts are joined before it is reported.
        True when its answer waits for the MO notification to be committed."""
        # (data_sm carries its text only in message_payload)
        raw = getattr(pdu, "short_message", b"") or pdu.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")
        short: bytes = bytes(raw) if isinstance(raw, (bytes, bytearray)) else b""
        udh = bool(pdu.esm_class & 0x40)
        try:
            text = decode_wire(short, pdu.data_coding, carrier.name, udh=udh)
            text = text.replace("\r\n", "\n")  # SPEC: text read back equals the original after CR LF -> LF
        except Exception:  # noqa: BLE001 - an undecodable MO is still reported
            text = short.hex()
        parts = 1
        if udh:
            from engine.text import parse_concat_udh

            try:
                info = parse_concat_udh(short)
            except TextError:
                info = None  # a malformed UDH: reported as one message, as it came
            if info is not None and info.total > 1:
                key = (pdu.source_addr, pdu.destination_addr, info.ref)
                got = self._mo_parts.setdefault(key, {})
                got[info.seq] = text
                if len(got) < info.total:
                    return False
                del self._mo_parts[key]
                text = "".join(got[k] for k in sorted(got))
                parts = info.total
        # UCS-2 parts may each end in half of a surrogate pair (an emoji cut at a part
        # boundary): join the halves, and make any lone one U+FFFD, so the text is valid
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        try:
            from_ = from_smpp(pdu.source_addr)
        except NumberError:
            from_ = pdu.source_addr  # an alphanumeric (or otherwise not E.164) originator, as given
        self.counters["mo"] += 1
        wall = self.wall()
        if self._events_on:
            event = MoEvent(carrier=carrier.name, from_=from_, to=pdu.destination_addr, text=text, received_at=wall, parts=parts)
            self._events.append(event)
            if self._event_signal is not None:
                self._event_signal.set()
        name = self._mo_routes.get((carrier.name, pdu.destination_addr))
        account = self.accounts.get(name) if name is not None else None
        if account is None:
            self.counters["mo_unrouted"] += 1  # no account has that sender for the carrier
            return False
        if account.mo_url is None:
            return False
        self._outbox_seq += 1
        body = _encode(
            {"event_id": self._outbox_seq, "from": from_, "to": pdu.destination_addr, "carrier": carrier.name, "text": text, "received_at": wall}
        )
        self.store.notify([(self._outbox_seq, name, "mo", None, account.mo_url, body, wall)])
        if ack is not None:
            self.store.on_commit(ack)  # answered once the notification is stored: a crash before makes the carrier re-send
            return True
        return False

    def _suppress(self, number: str, carrier: str, reason: str) -> None:
        self._suppressed.add(number)
        self.store.suppress(number, carrier, reason, self.wall())

    # --- timers ---------------------------------------------------------------------------------

    def _lag_probe(self) -> None:
        """How late the event loop runs a timer (every 0.1 s): a stuck or
        overloaded loop shows here first (also what systemd's watchdog would see)."""
        assert self._loop is not None
        now = self._loop.time()
        lag = max(0.0, now - self._lag_due)
        self.loop_lag.observe(lag)
        if lag > self.loop_lag_max:
            self.loop_lag_max = lag
        if self._closing:
            return
        self._lag_due = now + _LAG_PROBE_S
        self._lag_timer = self._loop.call_at(self._lag_due, self._lag_probe)

    def _tick(self) -> None:
        """Once a second: receipt timeouts, scheduled sends, pacing persistence, orphan receipts."""
        assert self._loop is not None
        now = self.now()
        wall = self.wall()
        awaiting = self._awaiting
        while awaiting and awaiting[0][0] <= now:
            _deadline, msg = awaiting.popleft()
            if msg.final_status is None:
                outcome = message_outcome(msg.results, timed_out=True)
                status = outcome.status or S.INDEFINITE
                self._finalise(msg, status, now, outcome=outcome, error={"reason": "no receipt by the timeout"} if status is S.INDEFINITE else None)
        scheduled = self._scheduled
        while scheduled and scheduled[0][0] <= wall:
            _t, _id, msg = heapq.heappop(scheduled)
            if msg.cancelled or msg.final_status is not None:
                continue
            msg.status = "queued"
            self.store.record(Update(id=msg.id, status="queued", at=wall))
            carrier = self.carriers[msg.carrier]
            # its lane may have spilled past its id: it goes into memory regardless
            carrier._append(carrier.lanes[msg.priority].setdefault(msg.account, _Lane()), msg)
            carrier.wake()
        for _orphan in self.correlator.expire(now):
            self.counters["orphan_receipts"] += 1
        for carrier in self.carriers.values():
            if carrier.pacer is not None:
                carrier.pacer.expire(now)
            if carrier.in_ram < self.settings.engine.working_set // 2:
                self._schedule_load(carrier)
        if not self._closing:
            self._ticker = self._loop.call_later(1.0, self._tick)

    def _save_pacing(self) -> None:
        wall = self.wall()
        now = self.now() if self._loop is not None else 0.0
        entries: list[tuple[str, float | None, bool]] = []
        for carrier in self.carriers.values():
            pacer = carrier.pacer
            if pacer is None:
                continue
            for number, left in pacer.snapshot(now):
                entries.append((number, wall + left, pacer.is_in_flight(number)))
        if entries:
            self.store.save_pacing(entries)

    # --- reload ---------------------------------------------------------------------------------

    def reload(self, config: Config) -> tuple[list[str], list[str]]:
        """Take what can change while running (SIGHUP): accounts (senders, tokens,
        allowlists, rate limits, weights, notification URLs and settings), carriers'
        rates, retries, reconnects and status overrides, the engine's limits, the
        notifier's timeouts.  Returns (applied, refused): each a list of
        "key: reason" lines; refused keys keep their running values until a restart."""
        old = self.settings
        applied: list[str] = []
        refused: list[str] = []
        for section in ("store", "smpp", "lookup", "simulators"):
            if getattr(config, section) != getattr(old, section):
                refused.append(f"{section}: needs a restart")
        if set(config.carriers) != set(old.carriers):
            refused.append("carriers: adding or removing a carrier needs a restart")
        carriers = dict(old.carriers)
        for name, settings in config.carriers.items():
            carrier = self.carriers.get(name)
            if carrier is None or settings == old.carriers.get(name):
                continue
            fixed = carrier.pool.reconfigure(settings) if carrier.pool is not None else []
            refused.extend(f"carriers.{name}.{f}: needs a restart" for f in fixed)
            carriers[name] = carrier.pool.settings if carrier.pool is not None else settings
            carrier.settings = carriers[name]
            applied.append(f"carriers.{name}")
        if config.engine.gc_threshold != old.engine.gc_threshold:
            refused.append("engine.gc_threshold: needs a restart")
        engine_settings = msgspec.structs.replace(config.engine, gc_threshold=old.engine.gc_threshold)
        if engine_settings != old.engine:
            applied.append("engine")
            self.correlator.config = msgspec.structs.replace(self.correlator.config, linger=config.engine.receipt_linger_s)
        if config.accounts != old.accounts:
            applied.append("accounts")
            self.accounts = config.accounts
            self.notifier.reconfigure(config.accounts)
            self._mo_routes = {
                (carrier, sender): name
                for name, account in config.accounts.items()
                for carrier, senders in account.senders.items()
                for sender in senders
            }
        if config.notify != old.notify:
            applied.append("notify")
            self.notifier.set_timing(config.notify.timeout_ms / 1000, config.notify.retry_base_s, config.notify.retry_cap_s)
        if config.http != old.http:
            applied.append("http")  # (the HTTP front takes it: HttpApi.reload)
        self.settings = msgspec.structs.replace(
            config, store=old.store, smpp=old.smpp, lookup=old.lookup, simulators=old.simulators,
            carriers=carriers, engine=engine_settings,
        )
        return applied, refused

    # --- queries and cancel ------------------------------------------------------------------

    async def status(self, message_id: str) -> MessageView | None:
        mid = parse_id(message_id)
        if mid is None:
            return None
        await self.store.flush()
        row = await self.store.get(mid)
        if row is None:
            return None
        return MessageView(
            id=format_id(row.id), account=row.account, status=row.status, carrier=row.carrier, to=row.number,
            sender=row.sender, client_ref=row.client_ref, priority=row.priority, parts=row.parts,
            billing_units=row.billing_units, billable_units=row.billable_units, error=row.error,
            history=[{"status": s, "at": at} for s, at in row.history],
            submitted_at=row.submitted_at, done_at=row.done_at,
        )

    async def cancel(self, message_id: str) -> bool:
        """Cancel a message not yet submitted; False when it is unknown or already (partly) sent."""
        mid = parse_id(message_id)
        if mid is None:
            return False
        msg = self._live.get(mid)
        now = self.now()
        if msg is not None:
            if msg.final_status is not None or msg.submitted or len(msg.pending) < msg.parts or msg.in_pacer and msg.pending != list(range(msg.parts)):
                return False
            if msg.in_pacer:
                carrier = self.carriers[msg.carrier]
                if carrier.pacer is not None and carrier.pacer.cancel(msg.number, msg):
                    msg.in_pacer = False
                else:
                    return False  # released to the pool already
            msg.cancelled = True
            self._finalise(msg, S.CANCELLED, now)
            return True
        await self.store.flush()
        row = await self.store.get(mid)
        if row is None or row.status not in _OPEN:
            return False
        msg = _Msg(row)
        msg.cancelled = True
        self._finalise(msg, S.CANCELLED, now)
        return True

    async def suppressed(self) -> list[dict[str, Any]]:
        """Destinations refused as not existing: number, carrier, reason (the SMPP status), at (epoch s)."""
        await self.store.flush()
        return [
            {"number": number, "carrier": carrier, "reason": reason, "at": at}
            for number, carrier, reason, at in await self.store.suppressed()
        ]

    async def unsuppress(self, number: str) -> bool:
        """Allow sending to ``number`` again; False when it was not suppressed."""
        try:
            e164 = normalize(number)
        except NumberError:
            e164 = number
        self._suppressed.discard(e164)
        return await self.store.unsuppress(e164)

    def orphan_receipts(self) -> list[dict[str, Any]]:
        """The most recent receipts no message claimed (``orphan_ring`` of them, oldest
        first): carrier, why (``expired``: no response id met it in time;
        ``evicted``; ``no_id``), the receipt's id, stat and err, and when (engine clock)."""
        return [
            {
                "carrier": o.carrier, "reason": o.reason, "message_id": o.receipt.message_id,
                "stat": o.receipt.stat, "err": o.receipt.err, "at": o.at,
            }
            for o in self.correlator.orphans()
        ]

    def events(self) -> AsyncIterator[StatusEvent | MoEvent]:
        """Status events (and MO messages) as they happen.  Best effort: a consumer
        that falls more than ``engine.events_buffer`` behind loses the oldest."""
        if not self._events_on:
            raise RuntimeError("this engine was made with events=False: it keeps no status events")
        return event_stream(self)

    def stats(self) -> dict[str, Any]:
        return {
            "backlog": self.backlog,
            "backlog_by_priority": dict(self.backlog_by_priority),
            "live": len(self._live),
            "awaiting_receipts": len(self._awaiting),
            "scheduled": len(self._scheduled),
            "counters": dict(self.counters),
            "loop_lag": {"max_ms": round(self.loop_lag_max * 1000, 1), "p99_ms": round(self.loop_lag.quantile(0.99) * 1000, 1), "histogram": self.loop_lag.as_dict()},
            "notify": self.notifier.stats(),
            "store": self.store.stats(),
            "correlator": self.correlator.stats(),
            "carriers": {
                name: {
                    "in_memory": c.in_ram,
                    "in_memory_peak": c.in_ram_peak,
                    "receipts": dict(c.receipts),
                    "accept_to_submit_s": c.to_submit.as_dict(),
                    "submit_to_final_s": c.to_final.as_dict(),
                    "pacing": c.pacer.stats() if c.pacer else None,
                    "pool": c.pool.stats() if c.pool else None,
                }
                for name, c in self.carriers.items()
            },
        }


_encode = msgspec.json.Encoder().encode
_LAG_PROBE_S = 0.1

# Kannel's %A (the SMSC's reply) when the receipt's own stat is not at hand
_KANNEL_REPLY = {"submitted": "ACK", "delivered": "DELIVRD", "expired": "EXPIRED", "undeliverable": "UNDELIV", "partially_failed": "UNDELIV", "rejected": "REJECTD"}


def _entry(row: tuple[Any, ...]) -> Entry:
    seq, account, kind, message_id, url, body, created_at, *rest = row
    return Entry(
        seq=seq, account=account, kind=kind, message_id=message_id, url=url, body=bytes(body), created_at=created_at,
        attempts=rest[0] if rest else 0,
    )


_FINAL_VALUES = frozenset(s.value for s in FINAL)
_VALUE = {s: s.value for s in MessageStatus}
# what the correlator returns for a part of a finished message during its linger:
# a marker, not the message (a _Msg is ~1.7 KB; up to 100,000 linger per carrier)
# (typed object: mypyc would hold a tuple unboxed and box a new one at each use,
# and identity is what marks it)
_LINGERING: object = ("lingering",)
_SINGLE_PART_OUTCOME = {r: message_outcome([r]) for r in PartResult}
_FINAL_COUNTER = {s.value: f"final_{s.value}" for s in MessageStatus}
_SUBMITTED = MessageStatus.SUBMITTED.value
