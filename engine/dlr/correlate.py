"""The in-memory index between carrier message ids (one per part) and our references.

Pure and single-threaded: the caller passes ``now`` (any monotonic clock in
seconds) and owns the one instance shared by every bind of a carrier
(receipts arrive on the receiver bind, responses on the transmitter bind —
DOMAIN.md §1.10).

Life of an id::

    register(carrier, resp_id, ref, now)   submit_sm_resp arrived → returns receipts that came first
    match(carrier, receipt, now) -> ref    a receipt arrived      → None = held as pending
    forget(carrier, resp_id, now)          the part got its final receipt
    expire(now) -> [Orphan]                housekeeping          → orphans (carrier, receipt, reason)

Decisions:

* **Receipt before response** (DOMAIN.md §2.3 pitfall 2): an unmatched
  receipt is held under each of its keys for ``pending_ttl`` seconds;
  :meth:`register` hands it back when the response lands.  Past the TTL it
  is an **orphan**: returned once by :meth:`expire`, counted, and kept in a
  bounded ring (:meth:`orphans`) for inspection.  A receipt pushed out by
  the ``max_pending`` bound is an orphan too (reason ``evicted``), as is a
  receipt without any id (``no_id``).  Nothing is dropped uncounted.
* **Late-receipt window**: a registered id stays matchable for
  ``registered_ttl`` seconds (default 3 days, beyond any validity period)
  unless forgotten, so a receipt for a part whose message went
  ``indefinite`` still finds its reference (SPEC "Late receipts").  The
  caller does *not* forget ids at the receipt timeout.
* **After the final receipt**: ``forget(..., now)`` moves the id to a short
  *linger* list (``linger`` seconds, default 600) where duplicates — an
  SMSC re-sends a receipt whose deliver_sm_resp was lost — still match
  (counted as ``matched_lingering``; applying the same final part result
  again changes nothing).  ``forget(carrier, resp_id)`` without ``now``
  deletes at once.
* **Bounds**: per carrier at most ``max_registered`` registered and
  ``max_lingering`` lingering ids (oldest evicted first, counted); in all
  at most ``max_pending`` held receipts and ``orphan_ring`` kept orphans.
  Memory (CPython 3.11, 16-character ids, int refs; measured with
  tracemalloc by bench/dlr_bench.py at 50,000 entries and checked in
  tests/dlr/test_correlate.py): **≈ 170 B per registered id** plus the id
  string itself (≈ 70 B) — budget 250 B; **≈ 210 B per held receipt**
  (one key; ≈ +150 B per extra key of an ``auto`` text id) plus the
  Receipt (≈ 800 B with every text field) — budget 1.2 KB.  At the default
  bounds: 200,000 ids ≈ 50 MB per carrier, 20,000 held receipts ≈ 24 MB,
  1,000 orphans ≈ 1 MB.
* **Restart**: the index is memory only; the composition root must
  re-register the carrier ids of parts still awaiting a receipt (or
  indefinite within the window) from the store at start-up, else their
  receipts become orphans.
* ``now`` is assumed non-decreasing: expiry walks each list from its
  oldest end.  Refs must not be ``None`` (``None`` means "held").
"""

from __future__ import annotations

import collections
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal

from engine.dlr._records import CorrelatorConfig, Orphan, Receipt
from engine.dlr.ids import IdScheme

__all__ = ["Correlator", "CorrelatorConfig", "Orphan"]


class _Reg:
    __slots__ = ("at", "ref")

    def __init__(self, ref: Any, at: float) -> None:
        self.ref = ref
        self.at = at


class _Pending:
    __slots__ = ("carrier", "done", "expires", "keys", "receipt")

    def __init__(self, carrier: _Carrier, receipt: Receipt, keys: tuple[str, ...], expires: float) -> None:
        self.carrier = carrier
        self.receipt = receipt
        self.keys = keys
        self.expires = expires
        self.done = False


class _Carrier:
    __slots__ = ("lingering", "name", "pending", "registered", "scheme")

    def __init__(self, name: str, scheme: IdScheme) -> None:
        self.name = name
        self.scheme = scheme
        self.registered: OrderedDict[str, _Reg] = OrderedDict()
        self.lingering: OrderedDict[str, _Reg] = OrderedDict()
        self.pending: dict[str, list[_Pending]] = {}


_COUNTERS = (
    "registered_total",
    "replaced",
    "empty_ids",
    "matched",
    "matched_lingering",
    "held",
    "released",
    "orphans",
    "orphans_expired",
    "orphans_evicted",
    "orphans_no_id",
    "orphans_unreported",
    "registered_evicted",
    "registered_expired",
    "lingering_evicted",
)


class Correlator:
    """Carrier message id ↔ our reference, per carrier, with receipts held until their response."""

    def __init__(
        self,
        config: CorrelatorConfig | None = None,
        *,
        schemes: Mapping[str, IdScheme] | None = None,
        default_scheme: IdScheme | None = None,
    ) -> None:
        self.config = config or CorrelatorConfig()
        self._schemes = dict(schemes or {})
        self._default_scheme = default_scheme or IdScheme()
        self._carriers: dict[str, _Carrier] = {}
        self._queue: collections.deque[_Pending] = collections.deque()  # held receipts, oldest first
        self._pending_count = 0
        self._due: list[Orphan] = []  # orphans not yet returned by expire()
        self._ring: collections.deque[Orphan] = collections.deque(maxlen=self.config.orphan_ring)
        self._n_registered_total = 0
        self._n_replaced = 0
        self._n_empty_ids = 0
        self._n_matched = 0
        self._n_matched_lingering = 0
        self._n_held = 0
        self._n_released = 0
        self._n_orphans = 0
        self._n_orphans_expired = 0
        self._n_orphans_evicted = 0
        self._n_orphans_no_id = 0
        self._n_orphans_unreported = 0
        self._n_registered_evicted = 0
        self._n_registered_expired = 0
        self._n_lingering_evicted = 0

    # --- public --------------------------------------------------------------------

    def scheme(self, carrier: str) -> IdScheme:
        return self._carrier(carrier).scheme

    def register(self, carrier: str, resp_id: str, ref: Any, now: float, key: str | None = None) -> list[Receipt]:
        """Index a submit_sm_resp's ``message_id`` for ``ref`` (one part).

        Returns the receipts for this id that arrived before it (oldest
        first) — usually none — so the caller applies them now.  An empty id
        cannot be correlated: it is counted (``empty_ids``) and ignored."""
        if ref is None:
            raise ValueError("ref must not be None")
        c = self._carriers.get(carrier) or self._carrier(carrier)
        if key is None:  # (the caller may have it already: ``scheme(carrier).response_key(resp_id)``)
            key = c.scheme.response_key(resp_id)
        if not key:
            self._n_empty_ids += 1
            return []
        reg = c.registered
        old = reg.pop(key, None)
        if old is not None:
            self._n_replaced += 1  # the SMSC reused an id: the newer message owns it
        elif c.lingering:
            c.lingering.pop(key, None)
        reg[key] = _Reg(ref, now)
        self._n_registered_total += 1
        if len(reg) > self.config.max_registered:
            reg.popitem(last=False)
            self._n_registered_evicted += 1
        if not self._pending_count:
            return []
        held = c.pending.pop(key, None)
        if held is None:
            return []
        out = []
        for p in held:
            if not p.done:
                self._unhold(p, key)
                out.append(p.receipt)
        self._n_released += len(out)
        return out

    def match(self, carrier: str, receipt: Receipt, now: float) -> Any:
        """The ref registered for this receipt's id, or None: then the receipt is held
        (``pending_ttl``) and handed back by :meth:`register`, or becomes an orphan."""
        c = self._carriers.get(carrier) or self._carrier(carrier)
        keys = c.scheme.receipt_keys(receipt)
        reg = c.registered
        for k in keys:
            e = reg.get(k)
            if e is not None:
                self._n_matched += 1
                return e.ref
        if c.lingering:
            for k in keys:
                e = c.lingering.get(k)
                if e is not None:
                    self._n_matched_lingering += 1
                    return e.ref
        if not keys:
            self._orphan(c.name, receipt, "no_id", now)
            return None
        p = _Pending(c, receipt, keys, now + self.config.pending_ttl)
        self._queue.append(p)
        pending = c.pending
        for k in keys:
            lst = pending.get(k)
            if lst is None:
                pending[k] = [p]
            else:
                lst.append(p)
        self._pending_count += 1
        self._n_held += 1
        if self._pending_count > self.config.max_pending:
            self._evict_pending(now)
        if len(self._queue) > 2 * self.config.max_pending + 64:
            self._queue = collections.deque(q for q in self._queue if not q.done)
        return None

    def lookup(self, carrier: str, resp_id: str) -> Any:
        """The ref registered (or lingering) for a response id, or None."""
        c = self._carriers.get(carrier) or self._carrier(carrier)
        key = c.scheme.response_key(resp_id)
        e = c.registered.get(key) or c.lingering.get(key)
        return None if e is None else e.ref

    def forget(
        self, carrier: str, resp_id: str, now: float | None = None, key: str | None = None, linger_ref: Any = None
    ) -> bool:
        """Stop tracking an id (its part got a final receipt).  With ``now`` the id lingers
        ``linger`` seconds so duplicate receipts still match; without, it is gone at once.
        ``linger_ref``: what a lingering match returns instead of the registered ref (a
        small marker, so a finished message's whole state is not kept alive for the
        linger).  False when the id was not registered."""
        c = self._carriers.get(carrier) or self._carrier(carrier)
        if key is None:
            key = c.scheme.response_key(resp_id)
        e = c.registered.pop(key, None)
        if e is None:
            return False
        if now is not None and self.config.linger > 0:
            e.at = now
            if linger_ref is not None:
                e.ref = linger_ref
            lin = c.lingering
            lin[key] = e
            if len(lin) > self.config.max_lingering:
                lin.popitem(last=False)
                self._n_lingering_evicted += 1
        return True

    def expire(self, now: float) -> list[Orphan]:
        """Housekeeping: held receipts past their TTL become orphans; registered ids past
        ``registered_ttl`` and lingering ids past ``linger`` are dropped (counted).
        Returns every orphan not returned before (TTL-expired, evicted, without id), oldest
        first, each with its carrier and receipt."""
        q = self._queue
        while q and (q[0].done or q[0].expires <= now):
            p = q.popleft()
            if p.done:
                continue
            self._drop_pending(p)
            self._orphan(p.carrier.name, p.receipt, "expired", now)
        reg_cut = now - self.config.registered_ttl
        lin_cut = now - self.config.linger
        for c in self._carriers.values():
            reg = c.registered
            while reg:
                key = next(iter(reg))
                if reg[key].at > reg_cut:
                    break
                del reg[key]
                self._n_registered_expired += 1
            lin = c.lingering
            while lin:
                key = next(iter(lin))
                if lin[key].at > lin_cut:
                    break
                del lin[key]
        out, self._due = self._due, []
        return out

    def orphans(self) -> tuple[Orphan, ...]:
        """The newest orphans (at most ``orphan_ring``), oldest first."""
        return tuple(self._ring)

    def stats(self) -> dict[str, int]:
        """Gauges (``registered``, ``lingering``, ``pending``, ``orphan_ring``) and counters."""
        out = {
            "registered": sum(len(c.registered) for c in self._carriers.values()),
            "lingering": sum(len(c.lingering) for c in self._carriers.values()),
            "pending": self._pending_count,
            "orphan_ring": len(self._ring),
        }
        for name in _COUNTERS:
            out[name] = getattr(self, "_n_" + name)
        return out

    # --- internals -----------------------------------------------------------------

    def _carrier(self, carrier: str) -> _Carrier:
        c = self._carriers.get(carrier)
        if c is None:
            c = self._carriers[carrier] = _Carrier(carrier, self._schemes.get(carrier, self._default_scheme))
        return c

    def _unhold(self, p: _Pending, popped_key: str | None = None) -> None:
        """Take a held receipt out of every index (its list under ``popped_key`` is already gone)."""
        p.done = True
        self._pending_count -= 1
        pending = p.carrier.pending
        for k in p.keys:
            if k == popped_key:
                continue
            lst = pending.get(k)
            if lst is not None:
                try:
                    lst.remove(p)
                except ValueError:
                    pass
                if not lst:
                    del pending[k]

    def _drop_pending(self, p: _Pending) -> None:
        self._unhold(p)

    def _evict_pending(self, now: float) -> None:
        q = self._queue
        while self._pending_count > self.config.max_pending and q:
            p = q.popleft()
            if p.done:
                continue
            self._unhold(p)
            self._orphan(p.carrier.name, p.receipt, "evicted", now)

    def _orphan(self, carrier: str, receipt: Receipt, reason: Literal["expired", "evicted", "no_id"], now: float) -> None:
        self._n_orphans += 1
        if reason == "expired":
            self._n_orphans_expired += 1
        elif reason == "evicted":
            self._n_orphans_evicted += 1
        else:
            self._n_orphans_no_id += 1
        orphan = Orphan(carrier, receipt, reason, now)
        self._ring.append(orphan)
        if len(self._due) < self.config.max_pending:
            self._due.append(orphan)
        else:
            self._n_orphans_unreported += 1  # still counted and in the ring; expire() was not called for too long
