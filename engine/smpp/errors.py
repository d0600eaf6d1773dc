"""SMPP errors, named by whose fault they are.

* :class:`SmppLocalError` — our own misuse: a value that cannot be encoded,
  a PDU that is illegal in the session's state, a full window.
* :class:`SmppProtocolError` — the peer sent bytes that are not valid SMPP.
  It is the *only* exception the decoder raises.  It carries what the
  session needs to answer with ``generic_nack``: the sequence number when the
  header could be read, the command_status to answer with, and whether the
  byte stream can continue (``fatal`` is True when framing itself is lost,
  e.g. an impossible command_length).
"""

from __future__ import annotations

from engine.smpp.constants import Status, command_name, status_name

__all__ = [
    "SmppError",
    "SmppLocalError",
    "SmppEncodeError",
    "SmppStateError",
    "WindowFull",
    "SmppRemoteError",
    "SmppProtocolError",
]


class SmppError(Exception):
    """Base of every SMPP-layer error."""


class SmppLocalError(SmppError):
    """We asked for something the protocol does not allow."""


class SmppEncodeError(SmppLocalError, ValueError):
    """A PDU field holds a value that cannot go on the wire."""


class SmppStateError(SmppLocalError):
    """The PDU may not be sent in the session's current state."""


class WindowFull(SmppLocalError):
    """Every window slot holds an outstanding request."""


class SmppRemoteError(SmppError):
    """The peer broke the protocol."""


class SmppProtocolError(SmppRemoteError):
    """Malformed input from the peer.

    ``sequence_number`` and ``command_id`` are None when they could not be read.
    ``status`` is the command_status to answer with (in a generic_nack).
    ``fatal`` is True when the stream can no longer be framed.
    """

    def __init__(
        self,
        reason: str,
        *,
        sequence_number: int | None = None,
        command_id: int | None = None,
        status: int = Status.ESME_RINVCMDLEN,
        fatal: bool = False,
    ) -> None:
        self.reason = reason
        self.sequence_number = sequence_number
        self.command_id = command_id
        self.status = int(status)
        self.fatal = fatal
        where = []
        if command_id is not None:
            where.append(command_name(command_id))
        if sequence_number is not None:
            where.append(f"seq={sequence_number}")
        prefix = f"[{' '.join(where)}] " if where else ""
        super().__init__(f"{prefix}{reason} ({status_name(self.status)}{', fatal' if fatal else ''})")
