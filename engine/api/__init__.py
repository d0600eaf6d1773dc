"""What callers of the embedded engine hand in and get back.  Plain data."""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["SubmitRequest", "Accepted", "SubmitError", "MessageView", "StatusEvent", "MoEvent"]


class SubmitRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One SMS to send (the fields of SPEC's ``POST /v1/messages``, plus the account)."""

    account: str
    to: str
    text: str
    carrier: str | None = None  # None: determine from the lookup
    client_ref: str | None = None  # idempotency key, per account
    sender: str | None = None  # one of the account's registered senders for the carrier
    priority: str = "normal"  # high | normal | bulk
    validity: float | None = None  # seconds from now; past it → expired without sending
    send_at: float | None = None  # epoch seconds; None = now
    dlr_url: str | None = None  # Kannel-style callback for this message (see engine.notify.kannel)
    dlr_mask: int = 0  # which reports dlr_url gets: 1 delivered, 2 failed, 8 SMSC accepted, 16 SMSC rejected


class Accepted(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The message is durably stored (or was already: ``duplicate``).  Also the
    HTTP API's answer (encoded as is: ``client_ref`` and ``duplicate`` only when set)."""

    id: str
    status: str
    carrier: str
    to: str
    parts: int
    billing_units: int
    client_ref: str | None = None
    duplicate: bool = False


class SubmitError(Exception):
    """A request that was not accepted.  ``field`` and ``reason`` name what is wrong;
    ``temporary`` is True when the same request may succeed later (backpressure)."""

    def __init__(self, field: str, reason: str, detail: str, *, temporary: bool = False, **extra: Any) -> None:
        super().__init__(f"{field}: {detail}")
        self.field = field
        self.reason = reason
        self.detail = detail
        self.temporary = temporary
        self.extra = extra

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "reason": self.reason, "detail": self.detail, "temporary": self.temporary, **self.extra}

    def __repr__(self) -> str:
        return f"SubmitError({self.field!r}, {self.reason!r}, {self.detail!r})"


class MessageView(msgspec.Struct, kw_only=True):
    """A message as ``engine.status(id)`` (and ``GET /v1/messages/{id}``) shows it."""

    id: str
    account: str
    status: str
    carrier: str
    to: str
    sender: str
    client_ref: str | None
    priority: str
    parts: int
    billing_units: int
    billable_units: int
    error: dict[str, Any] | None
    history: list[dict[str, Any]]
    submitted_at: float | None = None
    done_at: float | None = None


class StatusEvent(msgspec.Struct, kw_only=True):
    """A message reached a status (final ones are what result notifications carry)."""

    id: str
    account: str
    client_ref: str | None
    status: str
    carrier: str
    to: str
    parts: int
    billable_units: int
    error: dict[str, Any] | None
    submitted_at: float | None
    done_at: float | None
    at: float
    final: bool
    late: bool = False  # a late receipt changed an already final status


class MoEvent(msgspec.Struct, kw_only=True):
    """A mobile-originated message (a reply from a handset)."""

    carrier: str
    from_: str = msgspec.field(name="from")
    to: str
    text: str
    received_at: float
    parts: int = 1
