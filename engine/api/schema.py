"""The HTTP API's bodies, decoded and validated with msgspec at the edge, and
RFC 9457 problem details for everything that goes wrong.

A decode error is turned into ``{field, reason}`` pairs: msgspec's message
names the path (``$.messages[3].to``) and the kind of problem, which maps onto
a small, stable set of reasons (``missing``, ``unknown_field``, ``bad_type``,
``bad_value``, ``too_long``, ``too_short``, ``malformed_json``).
"""

from __future__ import annotations

import datetime as _dt
import re
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

__all__ = [
    "MessageIn",
    "BatchIn",
    "BatchOut",
    "MessageOut",
    "ItemError",
    "RefusedItem",
    "FieldError",
    "Problem",
    "decode_errors",
    "DECODE_ERRORS",
    "problem_body",
    "PROBLEM_TYPES",
]

ClientRef = Annotated[str, Meta(min_length=1, max_length=128)]
Sender = Annotated[str, Meta(min_length=1, max_length=20)]


class MessageIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/messages`` (and each item of a batch)."""

    to: str
    text: str
    carrier: str | None = None
    client_ref: ClientRef | None = None
    sender: Sender | None = None
    priority: Literal["high", "normal", "bulk"] = "normal"
    validity: Annotated[float, Meta(gt=0)] | None = None
    send_at: _dt.datetime | Annotated[float, Meta(ge=0)] | None = None  # RFC 3339 or epoch seconds


class BatchIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """``POST /v1/messages/batch``."""

    messages: list[MessageIn]


class ItemError(msgspec.Struct, kw_only=True, omit_defaults=True):
    field: str
    reason: str
    detail: str
    index: int | None = None
    limit: int | None = None
    count: int | None = None
    temporary: bool = False
    retry_after: int | None = None


class RefusedItem(msgspec.Struct, kw_only=True):
    error: ItemError


class BatchOut(msgspec.Struct, kw_only=True):
    """202 to ``POST /v1/messages/batch``: a result per item, in order."""

    accepted: int
    rejected: int
    results: list[Any]  # engine.api.Accepted or RefusedItem (see the OpenAPI document)


class HistoryEntry(msgspec.Struct):
    status: str
    at: float


class MessageOut(msgspec.Struct, kw_only=True):
    """``GET /v1/messages/{id}`` (and ``DELETE`` once cancelled)."""

    id: str
    status: str
    carrier: str
    to: str
    client_ref: str | None
    parts: int
    billing_units: int
    billable_units: int
    error: dict[str, Any] | None
    history: list[HistoryEntry]
    submitted_at: float | None
    done_at: float | None


class FieldError(msgspec.Struct):
    field: str
    reason: str
    detail: str = ""


class Problem(msgspec.Struct, kw_only=True, omit_defaults=True):
    """RFC 9457 problem details, plus ``errors`` (SPEC) and the extras some problems carry."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[FieldError] = []
    limit: int | None = None
    count: int | None = None
    retry_after: int | None = None
    results: list[Any] | None = None


# type → title; the type URIs are stable names, listed in the OpenAPI document
PROBLEM_TYPES: dict[str, str] = {
    "validation": "The request is not valid",
    "malformed_json": "The body is not JSON",
    "unsupported_media_type": "The body must be JSON",
    "unauthorized": "Missing or wrong credentials",
    "forbidden_address": "Requests from this address are not allowed for the account",
    "rate_limited": "Too many requests",
    "not_found": "No such message",
    "not_cancellable": "The message cannot be cancelled any more",
    "backpressure": "The engine is busy; retry shortly",
    "body_too_large": "The body is too large",
    "batch_too_large": "Too many messages in one batch",
    "method_not_allowed": "Method not allowed",
    "no_route": "No such endpoint",
    # the HTTP server's own (engine/api/server.py)
    "malformed_request": "The request is not valid HTTP/1.1",
    "headers_too_large": "Request header fields too large",
    "url_too_long": "URI too long",
    "internal": "Internal error",
}

_PATH = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[^`]+)`")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<name>[^`]+)`")


def _field_of(path: str) -> str:
    """``.messages[3].to`` → ``messages[3].to``."""
    return path[1:] if path.startswith(".") else path


DECODE_ERRORS = (msgspec.DecodeError, UnicodeDecodeError)
"""What decoding a body can raise for bad input: msgspec raises UnicodeDecodeError,
not DecodeError, for invalid UTF-8 inside a JSON string (msgspec issue #714)."""


def decode_errors(exc: msgspec.DecodeError | UnicodeDecodeError) -> list[FieldError]:
    """The ``{field, reason}`` of a msgspec decode/validation error."""
    if isinstance(exc, UnicodeDecodeError):
        return [FieldError("", "malformed_json", f"JSON is malformed: a string is not valid UTF-8 ({exc.reason})")]
    if not isinstance(exc, msgspec.ValidationError):
        return [FieldError("", "malformed_json", str(exc))]
    text = str(exc)
    m = _PATH.search(text)
    path = _field_of(m.group("path")) if m else ""
    message = text[: m.start()] if m else text
    for pattern, reason in ((_MISSING, "missing"), (_UNKNOWN, "unknown_field")):
        found = pattern.match(message)
        if found:
            name = found.group("name")
            return [FieldError(f"{path}.{name}" if path else name, reason, message)]
    if message.startswith("Expected `array`") or message.startswith("Expected `object`") or " got `" in message:
        reason = "bad_type"
    elif "length <=" in message:
        reason = "too_long"
    elif "length >=" in message:
        reason = "too_short"
    else:
        reason = "bad_value"  # out of range, not one of the choices, bad date, …
    return [FieldError(path, reason, message)]


_encode = msgspec.json.Encoder().encode


def problem_body(
    kind: str, status: int, detail: str, errors: list[FieldError] | None = None, **extra: Any
) -> bytes:
    """The JSON of a problem (``application/problem+json``)."""
    return _encode(
        Problem(
            type=f"urn:denpo:problem:{kind}",
            title=PROBLEM_TYPES[kind],
            status=status,
            detail=detail,
            errors=errors or [],
            **{k: v for k, v in extra.items() if v is not None},
        )
    )
