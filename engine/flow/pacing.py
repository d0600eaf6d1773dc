"""The au per-number pacing gate, on an injected clock (shared/SPEC.md, "au pacing clock").

Pure: every method that needs the time takes ``now`` (seconds, any monotonic
origin); nothing reads a clock, sleeps or runs a task.  One scheduler drives
it: ``offer`` when a message reaches the gate, ``ended`` when it ends,
``release`` at :meth:`Pacer.next_due`.

Rule, per number: the next message may be submitted no earlier than
``interval`` (12 s for au) after the previous message to that number
*ended*, and never while one is in flight (submitted, not ended).  A message
ends — and the caller calls :meth:`Pacer.ended` — at its final receipt (for a
multi-part message the last part's: the parts are one message here), when
its receipt timeout fires, or when its fate became unknown (connection lost
before the submit response), whichever the caller sees first.  A receipt
that arrives when nothing is in flight for its number (late or orphan) calls
:meth:`Pacer.push`, which moves the number's clock to
``max(old, now + interval)`` and never frees an in-flight number; ``ended``
on a number with nothing in flight does the same.

Use::

    pacer = Pacer(12.0)
    if pacer.offer(number, msg, now):      # True: send now; number is in flight
        send(msg)                          # False: parked, FIFO behind the number
    ...
    pacer.ended(number, now)               # final receipt / receipt timeout / loss
    for msg in pacer.release(now):         # at most one item per number, each
        send(msg)                          #   now in flight; call at next_due()

A paced number never blocks another: parked numbers sit in a min-heap of
``(not_before, seq, key)`` with lazy deletion (an entry is stale when its
number is in flight, has nothing parked, or has a later not-before), so
``offer`` and ``release`` for other numbers are O(1) / O(log n) whatever
waits.  The heap holds only numbers that have something parked (each of
which carries an item anyway); exact times, so tests assert exact send
times.

Memory, written down (``python -m bench.pacing_bench``, 1,000,000 numbers,
tracemalloc): a number's state is a float in one dict plus a reference in a
coarse expiry wheel (slots of ``tick`` seconds); once its not-before has
passed and nothing is parked or in flight the state is dropped (swept by
``ended``, ``release`` and :meth:`Pacer.expire`).  So the pacer holds
≈ 125 bytes × (numbers whose message ended in the last ``interval + tick``
seconds) — 1,000,000 numbers in their wait: 119 MB, the number strings
included — plus ≈ 260 bytes per number with something parked (its list, a
heap entry, a dict slot; the items are the caller's).  Measured against the
alternatives: a heap of ``(not_before, key)`` for expiry costs 88 bytes per
number against the wheel's 8.5; int keys (``compact_keys=True``: "+8190…"
kept as an int) hold 106 bytes per number instead of 125 but make ``offer``
2.2× slower (0.9M/s against 2.0M/s), so strings are the default.

Persistence: :meth:`Pacer.snapshot` returns ``(number, seconds_left)`` for
every number still in its wait — offsets, because ``now`` is monotonic and
means nothing after a restart.  The caller stores them as wall-clock
deadlines (``wall_now + seconds_left``) and, after a restart, passes
``(number, deadline - wall_now)`` to :meth:`Pacer.restore`.  Numbers that
had a message in flight at crash time (submitted, no final receipt, per the
message store — the store, not a snapshot, knows them) go in ``restore``'s
``in_flight``: they stay blocked until the caller calls ``ended`` for them
(receipt, or the receipt timeout counted from the stored submit time).
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable, Sequence
from typing import Any, Generic, TypeVar

__all__ = ["Pacer"]

T = TypeVar("T")

def _key(number: str) -> Hashable:
    """``+819012345678`` → 819012345678 (E.164 has no leading zero, so this is
    one-to-one); anything else is kept as it is."""
    if number[:1] == "+" and number[1:2] != "0" and number.isascii() and number[1:].isdigit():
        return int(number[1:])
    return number


def _number(key: Hashable) -> str:
    return "+" + str(key) if type(key) is int else key  # type: ignore[return-value]


class Pacer(Generic[T]):
    """Per-number gate: at most one item in flight per number, and the next
    one no earlier than ``interval`` seconds after the previous one ended.

    ``interval`` None or 0 disables pacing: every offer is sent at once and
    nothing is kept.  ``tick`` is the granularity of state expiry (not of
    release times, which are exact).  ``compact_keys`` keeps E.164 numbers
    as ints (15 % less memory, slower; module doc).  Numbers are expected
    normalised (engine.numbers.normalize): "+81 90…" and "+8190…" are two
    numbers here.
    """

    __slots__ = (
        "interval", "tick", "_compact", "_nb", "_in_flight", "_queues", "_parked",
        "_heap", "_seq", "_wheel", "_slots", "_counters",
    )

    def __init__(self, interval: float | None = 12.0, *, tick: float = 1.0, compact_keys: bool = False) -> None:
        if interval is not None and interval < 0:
            raise ValueError("interval must be >= 0 (or None to disable pacing)")
        if tick <= 0:
            raise ValueError("tick must be positive")
        self.interval = float(interval) if interval else 0.0
        self.tick = float(tick)
        self._compact = compact_keys
        self._nb: dict[Hashable, float] = {}  # not-before per number still in (or past, unswept) its wait
        self._in_flight: set[Hashable] = set()
        # parked items, FIFO per number; no empty lists.  A list, not a deque: a deque
        # is 760 bytes even for one item, a list 64, and a number's backlog is short
        # (each item waits its 12 s), so pop(0) on it is cheap.
        self._queues: dict[Hashable, list[T]] = {}
        self._parked = 0
        self._heap: list[tuple[float, int, Hashable]] = []  # numbers with parked items, by not-before
        self._seq = 0
        self._wheel: dict[int, list[Hashable]] = {}  # expiry slot → numbers whose not-before falls in it
        self._slots: list[int] = []  # min-heap of the wheel's slot numbers
        self._counters = dict.fromkeys(
            ("offered", "sent_at_once", "parked_total", "released", "ended", "ended_not_in_flight",
             "pushes", "cancelled", "expired"),
            0,
        )

    # -- introspection --------------------------------------------------------------------

    @property
    def enabled(self) -> bool:
        return self.interval > 0

    @property
    def numbers_waiting(self) -> int:
        """Numbers with at least one parked item."""
        return len(self._queues)

    @property
    def parked(self) -> int:
        """Items parked, all numbers together."""
        return self._parked

    @property
    def in_flight(self) -> int:
        """Numbers with a message in flight."""
        return len(self._in_flight)

    @property
    def tracked(self) -> int:
        """Numbers with a not-before held (in their wait, or past it and not yet swept)."""
        return len(self._nb)

    def not_before(self, number: str) -> float | None:
        """The number's not-before (None: none held); an in-flight number is blocked regardless."""
        return self._nb.get(self._k(number))

    def is_in_flight(self, number: str) -> bool:
        return self._k(number) in self._in_flight

    def stats(self) -> dict[str, int]:
        return {
            **self._counters,
            "numbers_waiting": len(self._queues),
            "parked": self._parked,
            "in_flight": len(self._in_flight),
            "tracked": len(self._nb),
            "heap": len(self._heap),
            "expiry_refs": sum(len(v) for v in self._wheel.values()),
        }

    # -- the gate -------------------------------------------------------------------------

    def _k(self, number: str) -> Hashable:
        return _key(number) if self._compact else number

    def offer(self, number: str, item: T, now: float) -> bool:
        """True: send ``item`` now (the number is in flight from here on).
        False: parked behind the number, FIFO; :meth:`release` hands it out."""
        c = self._counters
        c["offered"] += 1
        if not self.interval:
            c["sent_at_once"] += 1
            return True
        k = _key(number) if self._compact else number
        queue = self._queues.get(k)
        if queue is not None:  # others are already waiting for this number: behind them
            queue.append(item)
        elif k in self._in_flight:
            self._queues[k] = [item]
        else:
            nb = self._nb.get(k)
            if nb is None or nb <= now:
                if nb is not None:
                    del self._nb[k]
                self._in_flight.add(k)
                c["sent_at_once"] += 1
                return True
            self._queues[k] = [item]
            self._seq += 1
            heapq.heappush(self._heap, (nb, self._seq, k))
        self._parked += 1
        c["parked_total"] += 1
        return False

    def ended(self, number: str, now: float) -> None:
        """The number's in-flight message ended (final receipt, receipt timeout or
        loss): the number is free from ``now + interval``.  With nothing in
        flight this is :meth:`push`."""
        if not self.interval:
            return
        k = _key(number) if self._compact else number
        if k in self._in_flight:
            self._in_flight.discard(k)
            self._counters["ended"] += 1
            self._set(k, now + self.interval, now, freed=True)
        else:
            self._counters["ended_not_in_flight"] += 1
            self._set(k, now + self.interval, now)

    def push(self, number: str, now: float) -> None:
        """A receipt for a message not (or no longer) tracked — late, orphan, or
        after its timeout: not-before becomes ``max(old, now + interval)``.
        An in-flight number stays in flight."""
        if not self.interval:
            return
        self._counters["pushes"] += 1
        self._set(_key(number) if self._compact else number, now + self.interval, now)

    def _set(self, k: Hashable, nb: float, now: float, freed: bool = False) -> None:
        old = self._nb.get(k)
        if old is None or old < nb:
            self._nb[k] = nb
            self._ref(k, nb)
        elif not freed:
            return
        else:
            nb = old
        if k in self._queues and k not in self._in_flight:
            self._seq += 1
            heapq.heappush(self._heap, (nb, self._seq, k))
        if self._slots and self._slots[0] < now // self.tick:
            self.expire(now)

    def _ref(self, k: Hashable, nb: float, slot: int | None = None) -> None:
        """Remember to look at ``k`` once ``nb`` has passed (expiry)."""
        if slot is None:
            slot = int(nb // self.tick)
        refs = self._wheel.get(slot)
        if refs is None:
            self._wheel[slot] = [k]
            heapq.heappush(self._slots, slot)
        else:
            refs.append(k)

    def release(self, now: float, limit: int | None = None) -> list[T]:
        """Items whose number is free at ``now``, earliest not-before first, at
        most one per number (and at most ``limit``); each number is in flight
        from here on — the caller sends every item returned."""
        out: list[T] = []
        heap = self._heap
        nbs = self._nb
        while heap and heap[0][0] <= now and (limit is None or len(out) < limit):
            t, _, k = heapq.heappop(heap)
            queue = self._queues.get(k)
            if queue is None or k in self._in_flight or nbs.get(k, t) != t:
                continue  # stale
            out.append(queue.pop(0))
            if not queue:
                del self._queues[k]
            nbs.pop(k, None)
            self._in_flight.add(k)
        self._parked -= len(out)
        self._counters["released"] += len(out)
        if self._slots and self._slots[0] < now // self.tick:
            self.expire(now)
        return out

    def next_due(self) -> float | None:
        """When :meth:`release` next has something (may be in the past: call it now);
        None when nothing parked can become free by time alone."""
        heap = self._heap
        while heap:
            t, _, k = heap[0]
            if k in self._queues and k not in self._in_flight and self._nb.get(k, t) == t:
                return t
            heapq.heappop(heap)
        return None

    def cancel(self, number: str, item: T) -> bool:
        """Drop a parked item (cancelled or expired by the caller); True if it was parked.
        Items are compared by identity."""
        k = self._k(number)
        queue = self._queues.get(k)
        if queue is None:
            return False
        for i, other in enumerate(queue):
            if other is item:
                del queue[i]
                break
        else:
            return False
        if not queue:
            del self._queues[k]  # its heap entry is now stale
            nb = self._nb.get(k)
            if nb is not None and k not in self._in_flight:
                self._ref(k, nb)  # expiry may have skipped it while it had items
        self._parked -= 1
        self._counters["cancelled"] += 1
        return True

    def expire(self, now: float) -> int:
        """Drop the state of numbers whose wait has passed with nothing parked or
        in flight; returns how many.  Runs by itself from ``ended``/``release``."""
        tick = self.tick
        current = now // tick
        slots, wheel, nbs = self._slots, self._wheel, self._nb
        dropped = 0
        while slots and slots[0] < current:  # a whole slot before now: its not-befores have passed
            for k in wheel.pop(heapq.heappop(slots)):
                nb = nbs.get(k)
                if nb is None:
                    continue
                if nb > now:  # a later not-before (another reference holds it), or float rounding
                    if nb // tick < current:
                        self._ref(k, nb, int(current))
                    continue
                if k in self._queues:
                    continue  # due: release() takes it (cancel() re-references it)
                del nbs[k]  # passed; an in-flight number stays blocked by being in flight
                if k not in self._in_flight:
                    dropped += 1
        self._counters["expired"] += dropped
        return dropped

    # -- persistence ----------------------------------------------------------------------

    def snapshot(self, now: float) -> list[tuple[str, float]]:
        """``(number, seconds_left)`` for every number whose not-before is after
        ``now``.  Offsets, not times: the caller stores ``wall_now + seconds_left``."""
        return [(_number(k), nb - now) for k, nb in self._nb.items() if nb > now]

    def restore(self, entries: Iterable[Sequence[Any]], now: float, in_flight: Iterable[str] = ()) -> None:
        """Load a snapshot: each ``(number, seconds_left)`` (a tuple, or a list read back from JSON) becomes a not-before of
        ``now + seconds_left`` (kept if later than what is held; ≤ 0 is ignored).
        ``in_flight`` numbers are blocked until the caller calls :meth:`ended`
        for them."""
        if not self.interval:
            return
        for number in in_flight:
            self._in_flight.add(self._k(number))
        for number, left in entries:
            if left > 0:
                self._set(self._k(number), now + left, now)

    def __repr__(self) -> str:
        return (
            f"Pacer(interval={self.interval}, tracked={len(self._nb)}, in_flight={len(self._in_flight)}, "
            f"parked={self._parked})"
        )
