"""asyncio glue between a sans-I/O :class:`~engine.smpp.session.Session` and a socket.

One :class:`SmppConnection` per TCP connection, on the Protocol/Transport API
(see shared/PERFORMANCE.md: coalesced writes are worth 3-10x, a Task per
message costs 40-50 %).  Its rules:

* bytes read go to the session, the resulting events to the handler, and
  everything the session (or the handler, while handling) queued goes out in
  **one** ``transport.write`` per read event;
* :meth:`SmppConnection.send` outside a read queues the PDU and schedules one
  flush for the end of the current loop pass, however many PDUs follow;
* one ``loop.call_at`` timer per connection, armed for the session's next
  deadline (response timeouts, enquire_link, inactivity);
* time comes from ``clock`` (the loop's clock by default, so looptime's
  virtual time drives it in tests).

The handler is any object with the three methods of :class:`SmppHandler`.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Callable, Protocol

from engine.smpp.pdu import Pdu
from engine.smpp.session import Event, Session, State

__all__ = ["SmppHandler", "SmppConnection"]

_CLOSED = State.CLOSED  # (an Enum member read through its class costs ~0.2 µs on 3.11)


class SmppHandler(Protocol):
    def connection_made(self, conn: "SmppConnection") -> None: ...

    def handle_events(self, conn: "SmppConnection", events: list[Event]) -> None: ...

    def connection_lost(self, conn: "SmppConnection", exc: Exception | None) -> None: ...


class SmppConnection(asyncio.Protocol):
    """An SMPP session on one TCP connection."""

    def __init__(
        self,
        session: Session,
        handler: SmppHandler,
        *,
        clock: Callable[[], float] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.session = session
        self.handler = handler
        self._loop = loop or asyncio.get_running_loop()
        self.clock = clock or self._loop.time
        self._loop_clock = clock is None
        self.transport: asyncio.Transport | None = None
        self.peer: Any = None
        self.write_paused = False
        self.closed = asyncio.Event()
        self._flush_handle: asyncio.Handle | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._in_read = False
        self.reads = 0
        self.writes = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.context: Any = None  # the handler's per-connection state

    # --- asyncio.Protocol -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio.Transport subclasses
        self.peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:  # pragma: no cover - not TCP
                pass
        self.session.last_received = self.session.last_sent = self.clock()
        self.handler.connection_made(self)
        self._flush()
        self._arm()

    def data_received(self, data: bytes) -> None:
        self.reads += 1
        self.bytes_in += len(data)
        session = self.session
        self._in_read = True
        try:
            events = session.receive_data(data, self.clock())
            if events:
                self.handler.handle_events(self, events)
        finally:
            self._in_read = False
        self._flush()
        if session.state is _CLOSED:
            self._close_transport()
        else:
            self._arm()

    def eof_received(self) -> bool | None:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self.session.close()
        self.transport = None
        self.closed.set()
        self.handler.connection_lost(self, exc)

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False

    # --- sending ----------------------------------------------------------------

    def send(self, pdu: Pdu, context: Any = None) -> int:
        """Queue a PDU (see :meth:`Session.send`); it leaves at the end of this read or loop pass."""
        seq = self.session.send(pdu, self.clock(), context)
        if not self._in_read and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush_soon)
        return seq

    def send_encoded(self, command_id: int, body: bytes, context: Any = None) -> int:
        """Queue a request whose body is already encoded (see :meth:`Session.send_encoded`)."""
        seq = self.session.send_encoded(command_id, body, self.clock(), context)
        if not self._in_read and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush_soon)
        return seq

    def respond(self, command_id: int, sequence_number: int, status: int = 0, body: bytes = b"\x00") -> None:
        """Queue a pre-encoded response (see :meth:`Session.respond`)."""
        self.session.respond(command_id, sequence_number, status, body, self.clock())
        if not self._in_read and self._flush_handle is None:
            self._flush_handle = self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_handle = None
        self._flush()
        self._arm()

    def _flush(self) -> None:
        data = self.session.data_to_send()
        if data and self.transport is not None and not self.transport.is_closing():
            self.writes += 1
            self.bytes_out += len(data)
            self.transport.write(data)

    def flush(self) -> None:
        """Write what is queued now rather than at the end of the loop pass."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        self._flush()
        self._arm()

    # --- closing ----------------------------------------------------------------

    def _close_transport(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def close(self) -> None:
        """Flush what is queued, then close the connection."""
        self.flush()
        self._close_transport()

    def abort(self) -> None:
        """Drop the connection at once; queued bytes are discarded."""
        self.session.close()
        if self.transport is not None:
            self.transport.abort()

    # --- timers -----------------------------------------------------------------

    def _arm(self) -> None:
        deadline = self.session.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_at is not None and self._timer_at <= deadline:
                return
            self._timer.cancel()
        # looptime and the default loop both schedule on loop.time(); a custom
        # clock is mapped onto it by its current offset.
        at = deadline if self._loop_clock else deadline + (self._loop.time() - self.clock())
        self._timer_at = deadline
        self._timer = self._loop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        if self.session.state is _CLOSED:
            return
        self._in_read = True
        try:
            events = self.session.handle_timers(self.clock())
            if events:
                self.handler.handle_events(self, events)
        finally:
            self._in_read = False
        self._flush()
        if self.session.state is _CLOSED:
            self._close_transport()
        else:
            self._arm()
