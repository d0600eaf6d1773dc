"""What a :class:`~engine.smpp.session.Session` tells its caller: events, plain data.

Kept apart from ``session.py``, which the native build compiles: mypyc drops
class keywords such as ``gc=False`` (python/mypy#21938), so msgspec Structs
live in interpreted modules.  ``engine.smpp.session`` re-exports them.
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.smpp.errors import SmppProtocolError
from engine.smpp.pdu import Pdu

__all__ = [
    "Event",
    "Request",
    "Response",
    "Timeout",
    "Unbound",
    "ProtocolError",
    "IllegalRequest",
    "UnexpectedResponse",
    "Idle",
]


class Event(msgspec.Struct, gc=False):
    """Something the session tells its caller.  Events are plain data."""


class Request(Event, gc=False):
    """A request from the peer; answer it with ``session.send(resp)``
    (outbind and alert_notification take no answer)."""

    pdu: Pdu


class Response(Event, gc=False):
    """The answer to one of our requests; ``context`` is what was given to :meth:`Session.send`."""

    pdu: Pdu
    context: Any
    sent_at: float
    request_command_id: int


class Timeout(Event, gc=False):
    """No response within ``response_timeout``; the request left the window.

    For an ``enquire_link`` this means the link is dead."""

    sequence_number: int
    command_id: int
    context: Any
    sent_at: float


class Unbound(Event, gc=False):
    """The unbind exchange completed; the session is CLOSED."""

    by_peer: bool


class ProtocolError(Event, gc=False):
    """The peer sent something malformed; it was answered with generic_nack.
    When ``error.fatal`` the session is CLOSED."""

    error: SmppProtocolError


class IllegalRequest(Event, gc=False):
    """A request the peer may not send in this state; answered with ``status``
    (None when the PDU has no response)."""

    pdu: Pdu
    status: int | None


class UnexpectedResponse(Event, gc=False):
    """A response that matches no outstanding request of ours."""

    pdu: Pdu


class Idle(Event, gc=False):
    """Nothing received for ``inactivity_timeout`` seconds."""

    last_received: float
