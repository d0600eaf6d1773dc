"""The durable store's interface: what the lifecycle layer needs, nothing SQLite-specific.

A message is *accepted* once :meth:`Store.accept` returned for it: its row is
committed.  Later transitions (:meth:`Store.record`) are queued and committed
in batches — within a few milliseconds — so the dispatch path never waits on
the disk; :meth:`Store.flush` waits for everything queued so far.

A distributed backend replaces this by implementing the same methods.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import Any, Protocol

import msgspec

__all__ = ["NewMessage", "StoredMessage", "PartRecord", "Store", "IdGenerator", "Update", "format_id", "parse_id"]


class NewMessage(msgspec.Struct, kw_only=True):
    """A message to accept: validated and planned already."""

    account: str
    client_ref: str | None = None
    carrier: str
    number: str  # E.164
    sender: str
    text: str
    priority: str = "normal"
    send_at: float | None = None  # wall clock (epoch seconds)
    expires_at: float | None = None  # wall clock; past it → expired without sending
    parts: int = 1
    billing_units: int = 1
    ref: int = 0  # concatenation reference number
    status: str = "queued"  # or "accepted" when it may not be queued yet (send_at in the future)
    id: int = 0  # assigned by accept()


class PartRecord(msgspec.Struct, kw_only=True):
    seq: int  # 1-based part number
    carrier_id: str | None = None  # as the carrier wrote it in submit_sm_resp
    key: str | None = None  # its normalised form, the receipt lookup key
    state: str | None = None  # "delivered" | "failed" | "expired" | None (no final receipt)
    stat: str | None = None
    err: str | None = None
    at: float | None = None


class StoredMessage(msgspec.Struct, kw_only=True):
    id: int
    account: str
    client_ref: str | None
    carrier: str
    number: str
    sender: str
    text: str
    priority: str
    status: str
    parts: int
    billing_units: int
    billable_units: int = 0
    delivered_parts: int = 0
    ref: int = 0
    created_at: float = 0.0
    send_at: float | None = None
    expires_at: float | None = None
    submitted_at: float | None = None
    done_at: float | None = None
    error: dict[str, Any] | None = None
    part_records: list[PartRecord] = []
    history: list[tuple[str, float]] = []


class Update(msgspec.Struct, kw_only=True, array_like=True):
    """One queued transition (see :meth:`Store.record`).

    The usual path (accepted → queued → submitted → final) is recorded by the
    row's own timestamps (created_at, submitted_at, done_at); ``history=True``
    also keeps this transition as a history row — for the unusual ones (a
    late receipt changing a final status, a re-queue, a cancel)."""

    id: int
    status: str | None = None
    at: float = 0.0
    fields: dict[str, Any] | None = None  # other columns: submitted_at, done_at, billable_units, error, …
    part: PartRecord | None = None
    history: bool = False


class Store(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def accept(self, messages: list[NewMessage]) -> list[tuple[int, bool]]:
        """Commit new messages; returns ``(id, created)`` per message in order.
        A message whose (account, client_ref) exists already is not stored
        again: its existing id comes back with ``created=False``."""
        ...

    def accept_then(
        self,
        messages: list[NewMessage],
        callbacks: list[tuple[str, int] | None] | None,
        then: Callable[[list[tuple[int, bool]] | None, BaseException | None], None],
    ) -> None:
        """As :meth:`accept` (``callbacks``: a (url, mask) stored with each new message),
        reporting by ``then(results, None)`` or ``then(None, error)`` in the event
        loop as soon as the commit is known; raises at once if the store stopped."""
        ...

    def record(self, update: Update) -> None:
        """Queue a transition; it is committed with the next batch.  The hot
        transitions have their own narrower methods below (fewer bytes per
        message through the writer)."""
        ...

    def submitted(self, message_id: int, at: float, carrier_id: str | None = None, key: str | None = None) -> None:
        """Queue: every part is accepted by the carrier.  A single-part message
        passes its carrier id and receipt key here (no part record)."""
        ...

    def part(self, message_id: int, carrier: str, part: PartRecord) -> None:
        """Queue a part's record of a multi-part message: its carrier id when
        submitted, its receipt's state later (fields left None are kept)."""
        ...

    def finished(
        self, message_id: int, status: str, at: float, *, billable_units: int, delivered_parts: int,
        error: dict[str, Any] | None = None, history: bool = False,
    ) -> None:
        """Queue a final status (or a late receipt's change of one); ``history``
        keeps it as a history row too."""
        ...

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        ...

    def on_commit(self, callback: Any) -> None:
        """Call ``callback`` in the event loop once everything queued so far is committed."""
        ...

    @property
    def queued_ops(self) -> int:
        """Transitions queued and not yet committed (the engine slows down when this grows)."""
        ...

    async def get(self, message_id: int) -> StoredMessage | None: ...

    async def load(self, *, statuses: tuple[str, ...], carrier: str | None = None, after_id: int = 0, limit: int = 1000) -> list[StoredMessage]:
        """Messages in ``statuses``, ordered by id, after ``after_id``."""
        ...

    async def load_parts(self, message_ids: list[int]) -> dict[int, list[PartRecord]]:
        """The part records of these messages (single-part ones included), by message id."""
        ...

    async def find_refs(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
        """``(account, client_ref)`` → ``(id, status)`` of the messages already stored under them."""
        ...

    async def counts(self) -> dict[str, int]:
        """Messages per status."""
        ...

    def save_pacing(self, entries: list[tuple[str, float | None, bool]]) -> None:
        """Queue the au pacing clock: (number, not-before wall time or None, in flight)."""
        ...

    async def load_pacing(self) -> list[tuple[str, float | None, bool]]: ...

    def suppress(self, number: str, carrier: str, reason: str, at: float) -> None: ...

    async def unsuppress(self, number: str) -> bool: ...

    async def suppressed(self) -> list[tuple[str, str, str, float]]: ...


class IdGenerator:
    """Message ids: 63-bit integers, increasing, unique across restarts of one store.

    The high bits are milliseconds since the epoch, the low 16 a counter;
    when more than 65,536 ids are taken in one millisecond the ids run ahead
    of the clock (still increasing).  Shown to users as 16 hex digits
    (:func:`format_id`)."""

    def __init__(self, clock: Any = time.time) -> None:
        self._clock = clock
        self._last = 0

    def __call__(self) -> int:
        value = max(self._last + 1, int(self._clock() * 1000) << 16)
        self._last = value
        return value

    def take(self, n: int) -> range:
        """``n`` ids at once (what ``n`` calls would give, with the clock read once)."""
        if n <= 0:
            return range(0)
        first = max(self._last + 1, int(self._clock() * 1000) << 16)
        self._last = first + n - 1
        return range(first, first + n)

    def continue_after(self, highest: int) -> None:
        """Never issue an id at or below ``highest`` (the store's largest: ids stay
        unique when the clock went back across a restart)."""
        self._last = max(self._last, highest)

    def batch(self, n: int) -> list[int]:
        return [self() for _ in itertools.repeat(None, n)]


def format_id(message_id: int) -> str:
    return f"{message_id:016x}"


_HEX = frozenset("0123456789abcdefABCDEF")


def parse_id(text: str) -> int | None:
    """The integer of a public id, or None when it is not one."""
    # exactly 16 hex digits: int() alone would also take a sign, "0x", "_",
    # blanks and other scripts' digits ("-000000000000001" → -1)
    if len(text) != 16 or not _HEX.issuperset(text):
        return None
    value = int(text, 16)
    return value if value < 2**63 else None  # SQLite integers are signed 64-bit
