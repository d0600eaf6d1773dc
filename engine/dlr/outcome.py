"""A message's status from its parts' receipts: SPEC "Multi-part outcome" as one pure function.

``message_outcome(parts, timed_out)`` takes one entry per part —
:class:`PartResult` (``delivered``, ``failed``, ``expired``) or ``None``
for "no final receipt yet" — and says the message status, how many parts
are billable and how many were delivered.  Billable *units* come from the
carrier's billing table (the caller's); this returns parts.

SPEC's table, and the rows it leaves open (d delivered, f failed,
e expired, m without a final receipt, n parts):

| parts                                   | status                       | billable |
|-----------------------------------------|------------------------------|----------|
| all delivered                           | delivered                    | n        |
| d >= 1 and f + e >= 1 (m = 0)           | partially_failed             | d        |
| d = 0, all expired                      | expired                      | 0        |
| d = 0, f >= 1 (rest failed or expired)  | undeliverable [1]            | 0        |
| m >= 1, before the timeout              | None (not final)             | 0        |
| m >= 1 at the timeout, f + e = 0        | indefinite                   | 0 (d recorded) |
| m >= 1 at the timeout, f + e >= 1, d >= 1 | partially_failed [2]       | d        |
| m >= 1 at the timeout, f + e >= 1, d = 0  | undeliverable / expired [2] | 0        |

[1] **failed + expired, none delivered → undeliverable.**  ``expired`` says
    "the carrier gave up waiting for the handset"; it is only true of the
    message when it is true of every part.  A failed part is a definite
    verdict (undeliverable, rejected, deleted) and the message as a whole
    could not be delivered, so the definite, stronger status is reported.

[2] **Missing parts plus a failure, at the timeout.**  SPEC's
    ``indefinite`` row requires "none failed": indefinite means "we do not
    know", and once a part failed we *know* the message did not fully
    arrive, so reporting "unknown" would hide a known failure.  The missing
    parts are therefore left out and the complete-table rows apply to the
    parts that did report: any delivered → ``partially_failed`` (billing
    the delivered parts, as SPEC's billing rule for partially_failed says);
    none delivered → ``undeliverable`` (``expired`` if every reported part
    expired).  A late receipt for a missing part re-evaluates through the
    same function (e.g. undeliverable → partially_failed with one billable
    part; partially_failed with 2 billable → 3).

Before the timeout a message with missing parts is not final even when
its status can no longer be ``delivered``: billing is settled once, when
the last part reports or the timeout fires (also the moment the au pacing
clock counts as the message's end, SPEC "au pacing clock").

A part's first final result stands (receipts are final); see
:func:`merge_part`.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import NamedTuple

from engine.dlr.receipt import Receipt
from engine.model import MessageStatus
from engine.smpp.constants import MessageState

__all__ = ["Outcome", "PartResult", "late_update", "merge_part", "message_outcome", "part_result"]


class PartResult(str, enum.Enum):
    """One part's final fate."""

    DELIVERED = "delivered"
    FAILED = "failed"  # UNDELIV, REJECTD, DELETED
    EXPIRED = "expired"  # EXPIRED

    def __str__(self) -> str:
        return self.value


class Outcome(NamedTuple):
    status: MessageStatus | None  # None: not final yet
    billable_parts: int
    delivered_parts: int


_D = PartResult.DELIVERED
_F = PartResult.FAILED
_E = PartResult.EXPIRED

_RESULT_OF_STATE = {
    int(MessageState.DELIVERED): _D,
    int(MessageState.EXPIRED): _E,
    int(MessageState.DELETED): _F,
    int(MessageState.UNDELIVERABLE): _F,
    int(MessageState.REJECTED): _F,
}


def part_result(receipt: Receipt) -> PartResult | None:
    """A receipt's part result, or None when it is not final (ENROUTE, ACCEPTD, UNKNOWN, no state)."""
    state = receipt.state
    return None if state is None else _RESULT_OF_STATE.get(state)


def merge_part(current: PartResult | None, new: PartResult | None) -> PartResult | None:
    """The part's result after a receipt: the first final result stands."""
    return new if current is None else current


def message_outcome(parts: Sequence[PartResult | str | None], timed_out: bool = False) -> Outcome:
    """The message's status from its parts (see the module docstring for every row).

    ``parts``: one entry per part, in any order; ``timed_out``: the receipt
    timeout has passed.  Raises ValueError for no parts or an unknown entry."""
    n = len(parts)
    if not n:
        raise ValueError("a message has at least one part")
    d = f = e = 0
    entries: Sequence[object] = parts  # (compiled, a wrong entry must still reach the ValueError below)
    for p in entries:
        if p is None:
            continue
        if p == _D:
            d += 1
        elif p == _F:
            f += 1
        elif p == _E:
            e += 1
        else:
            raise ValueError(f"part result must be delivered, failed, expired or None, not {p!r}")
    missing = n - d - f - e
    if missing:
        if not timed_out:
            return Outcome(None, 0, d)
        if not f and not e:
            return Outcome(MessageStatus.INDEFINITE, 0, d)
    if d == n:
        return Outcome(MessageStatus.DELIVERED, d, d)
    if d:
        return Outcome(MessageStatus.PARTIALLY_FAILED, d, d)
    if f:
        return Outcome(MessageStatus.UNDELIVERABLE, 0, 0)
    return Outcome(MessageStatus.EXPIRED, 0, 0)


def late_update(
    old_status: MessageStatus | str | None,
    parts: Sequence[PartResult | str | None],
    old_billable_parts: int = 0,
    timed_out: bool = True,
) -> Outcome | None:
    """After a receipt that came once the message was already final (typically
    ``indefinite``): the new outcome when it is a change to notify — the status
    or the billable parts differ — else None.  ``timed_out`` defaults to True:
    a message is only final with missing parts because its timeout passed."""
    new = message_outcome(parts, timed_out)
    if new.status is None:
        return None
    if old_status is not None and MessageStatus(old_status) is new.status and new.billable_parts == old_billable_parts:
        return None
    return new
