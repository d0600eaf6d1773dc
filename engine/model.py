"""The one status model every carrier maps onto (shared/SPEC.md, issue 5).

``accepted`` → ``queued`` → ``submitted`` → one final status.  A final
status keeps the carrier's raw ``stat``/``err`` and the SMPP command_status
that led to it.  ``indefinite`` is final for notification and billing, yet a
late receipt may still move it to ``delivered``, ``partially_failed``,
``undeliverable`` or ``expired`` (SPEC "Late receipts").
"""

from __future__ import annotations

import enum

__all__ = ["MessageStatus", "FINAL", "Priority", "PRIORITIES"]


class MessageStatus(str, enum.Enum):
    ACCEPTED = "accepted"  # durably stored, not yet queued for a carrier
    QUEUED = "queued"  # waiting for its turn (priority, fairness, pacing, rate)
    SUBMITTED = "submitted"  # the carrier accepted every part (submit_sm_resp OK); receipts awaited
    DELIVERED = "delivered"
    PARTIALLY_FAILED = "partially_failed"  # some parts delivered, some failed or expired
    UNDELIVERABLE = "undeliverable"
    EXPIRED = "expired"  # validity passed (ours, before sending, or the carrier's)
    REJECTED = "rejected"  # the carrier refused it (permanent submit error); a suppressed number is refused at accept instead
    INDEFINITE = "indefinite"  # no (complete) receipt by the timeout, or fate unknown by carrier policy
    CANCELLED = "cancelled"  # cancelled before it was submitted

    def __str__(self) -> str:
        return self.value


FINAL = frozenset(
    {
        MessageStatus.DELIVERED,
        MessageStatus.PARTIALLY_FAILED,
        MessageStatus.UNDELIVERABLE,
        MessageStatus.EXPIRED,
        MessageStatus.REJECTED,
        MessageStatus.INDEFINITE,
        MessageStatus.CANCELLED,
    }
)


class Priority(str, enum.Enum):
    HIGH = "high"
    NORMAL = "normal"
    BULK = "bulk"


PRIORITIES = (Priority.HIGH, Priority.NORMAL, Priority.BULK)
