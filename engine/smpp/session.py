"""SMPP 3.4 session state machine, for either role.  No I/O, no clock reads.

The caller owns the socket and the clock.  It hands the session bytes it read
(:meth:`Session.receive_data`) and PDUs it wants to send (:meth:`Session.send`),
each with the current time ``now`` (seconds, any monotonic origin); it writes
out what :meth:`Session.data_to_send` returns — once per read event or loop
pass, so writes are coalesced — and calls :meth:`Session.handle_timers` when
:meth:`Session.next_deadline` is reached.

What the session does by itself, because SMPP leaves no choice:

* assigns sequence numbers (1 … 0x7FFFFFFF, then 1 again) and keeps a window
  of outstanding requests keyed by sequence number, each with its deadline;
* answers ``enquire_link`` and ``unbind``; answers a malformed frame with
  ``generic_nack``, an unknown command with ``generic_nack``/ESME_RINVCMDID,
  a request that is illegal in the state with its response carrying
  ESME_RINVBNDSTS (ESME_RALYBND for a second bind);
* sends ``enquire_link`` when nothing was received for
  ``enquire_link_interval`` seconds while bound;
* moves between states as Table 2-1 and §2.2 say.

Everything else comes out as events for the caller to act on.

States and who may send what are one table, :data:`REQUEST_RULES`, taken from
SMPP 3.4 Table 2-1.  One documented deviation: replace_sm is accepted on a
transceiver bind too (the table lists BOUND_TX only, while §2.2 defines a
transceiver as a transmitter and a receiver in one session).
"""

from __future__ import annotations

import enum
from typing import Any

from engine.smpp.codec import DEFAULT_MAX_FRAME, PduDecoder, encode, pack_header as _pack_header
from engine.smpp.constants import RESPONSE_BIT, CommandId, Status
from engine.smpp.errors import SmppProtocolError, SmppStateError, WindowFull
from engine.smpp.events import (
    Event,
    Idle,
    IllegalRequest,
    ProtocolError,
    Request,
    Response,
    Timeout,
    UnexpectedResponse,
    Unbound,
)
from engine.smpp.pdu import (
    PDU_TYPES,
    EnquireLink,
    EnquireLinkResp,
    GenericNack,
    Pdu,
    UnbindResp,
)

__all__ = [
    "Role",
    "State",
    "REQUEST_RULES",
    "Session",
    "Event",
    "Request",
    "Response",
    "Timeout",
    "Unbound",
    "ProtocolError",
    "IllegalRequest",
    "UnexpectedResponse",
    "Idle",
    "MAX_SEQUENCE",
]

MAX_SEQUENCE = 0x7FFFFFFF


class Role(enum.Enum):
    ESME = "esme"
    SMSC = "smsc"


class State(enum.Enum):
    OPEN = "open"  # connected, not bound
    BINDING = "binding"  # ESME: bind sent, response awaited
    BOUND_TX = "bound_tx"
    BOUND_RX = "bound_rx"
    BOUND_TRX = "bound_trx"
    UNBINDING = "unbinding"  # we sent unbind, unbind_resp awaited
    CLOSED = "closed"


_ESME = frozenset({Role.ESME})
_SMSC = frozenset({Role.SMSC})
_BOTH = _ESME | _SMSC
_OPEN = frozenset({State.OPEN})
# Enum members read through the class cost ~0.2 µs each on Python 3.11; the hot
# paths compare against these module constants instead
_CLOSED = State.CLOSED
_UNBINDING = State.UNBINDING
_BOUND = frozenset({State.BOUND_TX, State.BOUND_RX, State.BOUND_TRX})
_TX = frozenset({State.BOUND_TX, State.BOUND_TRX})
_RX = frozenset({State.BOUND_RX, State.BOUND_TRX})

C = CommandId
REQUEST_RULES: dict[int, tuple[frozenset[Role], frozenset[State]]] = {
    # request: (who may issue it, in which states) — SMPP 3.4 Table 2-1
    C.BIND_TRANSMITTER: (_ESME, _OPEN),
    C.BIND_RECEIVER: (_ESME, _OPEN),
    C.BIND_TRANSCEIVER: (_ESME, _OPEN),
    C.OUTBIND: (_SMSC, _OPEN),
    C.UNBIND: (_BOTH, _BOUND),
    C.SUBMIT_SM: (_ESME, _TX),
    C.SUBMIT_MULTI: (_ESME, _TX),
    C.DATA_SM: (_BOTH, _BOUND),
    C.DELIVER_SM: (_SMSC, _RX),
    C.QUERY_SM: (_ESME, _TX),
    C.CANCEL_SM: (_ESME, _TX),
    C.REPLACE_SM: (_ESME, _TX),  # Table 2-1 says BOUND_TX; see the module docstring
    C.ENQUIRE_LINK: (_BOTH, _BOUND),
    C.ALERT_NOTIFICATION: (_SMSC, _RX),
}
"""Who may issue each request and in which states.  A response is legal when
it answers an outstanding request of ours (matched by sequence number)."""

_NO_RESPONSE = frozenset({int(C.OUTBIND), int(C.ALERT_NOTIFICATION)})
# plain ints: comparing with enum members costs an attribute lookup each time
_ENQUIRE_LINK = int(C.ENQUIRE_LINK)
_UNBIND = int(C.UNBIND)
_GENERIC_NACK = int(C.GENERIC_NACK)
_SUBMIT_SM = int(C.SUBMIT_SM)
_BINDS = {int(C.BIND_TRANSMITTER): State.BOUND_TX, int(C.BIND_RECEIVER): State.BOUND_RX, int(C.BIND_TRANSCEIVER): State.BOUND_TRX}
_BIND_RESPS = {cmd | RESPONSE_BIT: state for cmd, state in _BINDS.items()}
_RESP_CLASS = {int(cls.command_id): cls for cls in PDU_TYPES if cls.command_id & RESPONSE_BIT}


def _allowed(issuer: Role, state: State) -> frozenset[int]:
    return frozenset(int(cmd) for cmd, (who, states) in REQUEST_RULES.items() if issuer in who and state in states)


# (role, state) -> request command ids we may send / may receive
_SEND_OK = {(role, state): _allowed(role, state) for role in Role for state in State}
_RECV_OK = {
    (role, state): _allowed(Role.SMSC if role is Role.ESME else Role.ESME, state) for role in Role for state in State
}


# --- the session ----------------------------------------------------------------


class Session:
    """One SMPP session (one TCP connection) in the ESME or SMSC role.

    ``window`` bounds our outstanding requests; ``response_timeout`` is the
    deadline for each of them; ``enquire_link_interval`` (None = never) is the
    idle time after which the session sends enquire_link while bound;
    ``inactivity_timeout`` (None = never) raises :class:`Idle`.
    """

    def __init__(
        self,
        role: Role,
        *,
        window: int = 10,
        response_timeout: float = 30.0,
        enquire_link_interval: float | None = 30.0,
        inactivity_timeout: float | None = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        now: float = 0.0,
    ) -> None:
        if window < 1:
            raise ValueError("window must be at least 1")
        self.role = role
        self.window = window
        self.response_timeout = response_timeout
        self.enquire_link_interval = enquire_link_interval
        self.inactivity_timeout = inactivity_timeout
        self.state = State.OPEN
        self.bound_as: State | None = None  # the bound state, kept while UNBINDING
        self._bound = False
        self._send_ok = _SEND_OK[(role, State.OPEN)]
        self._recv_ok = _RECV_OK[(role, State.OPEN)]
        self._decoder = PduDecoder(max_frame=max_frame)
        self._outbox: list[bytes] = []
        self._outstanding: dict[int, tuple[float, int, Any]] = {}  # seq -> (sent_at, command_id, context)
        self._next_seq = 1
        self._pending_bind: int | None = None  # SMSC: bind received, response not yet sent
        self._requested_bind: int | None = None  # ESME: bind sent
        self.last_received = now
        self.last_sent = now
        self._enquire_outstanding = False
        self._idle_reported = False

    # --- state ------------------------------------------------------------------

    def _set_state(self, state: State) -> None:
        self.state = state
        self._bound = state in _BOUND  # read per message (is_bound): a set lookup hashes the Enum in Python
        if self._bound:
            self.bound_as = state
        table_state = self.bound_as if state is _UNBINDING and self.bound_as else state
        self._send_ok = frozenset() if state is _UNBINDING else _SEND_OK[(self.role, state)]
        self._recv_ok = _RECV_OK[(self.role, table_state)]

    @property
    def is_bound(self) -> bool:
        return self._bound

    @property
    def can_submit(self) -> bool:
        """Bound for sending messages and a window slot is free."""
        return _SUBMIT_SM in self._send_ok and len(self._outstanding) < self.window

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    @property
    def probing(self) -> bool:
        """An enquire_link of ours awaits its response."""
        return self._enquire_outstanding

    @property
    def free_slots(self) -> int:
        return self.window - len(self._outstanding)

    # --- sending ----------------------------------------------------------------

    def send(self, pdu: Pdu, now: float, context: Any = None) -> int:
        """Queue ``pdu`` for sending and return its sequence number.

        A request gets the next sequence number and a window slot (raises
        :class:`WindowFull` when there is none); a response keeps the
        sequence number the caller copied from the request.  Raises
        :class:`SmppStateError` when the PDU is illegal in the current state.
        """
        cmd = pdu.command_id
        if cmd & RESPONSE_BIT:
            if self.state is _CLOSED:
                raise SmppStateError(f"{type(pdu).__name__} on a closed session")
            if cmd in _BIND_RESPS and self.role is Role.SMSC:
                self._bind_answered(cmd, pdu.command_status)
            self._outbox.append(encode(pdu))
            self.last_sent = now
            return pdu.sequence_number
        if cmd not in self._send_ok:
            raise SmppStateError(f"{type(pdu).__name__} may not be sent by the {self.role.value} in state {self.state.value}")
        outstanding = self._outstanding
        if cmd in _NO_RESPONSE:
            seq = self._take_sequence()
        else:
            if len(outstanding) >= self.window:
                raise WindowFull(f"{len(outstanding)} requests outstanding (window {self.window})")
            seq = self._take_sequence()
            outstanding[seq] = (now, cmd, context)
        pdu.sequence_number = seq
        self._outbox.append(encode(pdu))
        self.last_sent = now
        if cmd in _BINDS:
            self._requested_bind = cmd
            self._set_state(State.BINDING)
        elif cmd == _UNBIND:
            self._set_state(State.UNBINDING)
        return seq

    def send_encoded(self, command_id: int, body: bytes, now: float, context: Any = None) -> int:
        """Queue a request whose body (everything after the header) is already
        encoded; returns its sequence number.  The fast path for PDUs built
        once and sent many times (a simulator's receipts, a load generator's
        submits); state changes of binds and unbind are not handled here."""
        if command_id not in self._send_ok or command_id in _BINDS or command_id == _UNBIND:
            raise SmppStateError(f"0x{command_id:08X} may not be sent this way in state {self.state.value}")
        outstanding = self._outstanding
        if len(outstanding) >= self.window:
            raise WindowFull(f"{len(outstanding)} requests outstanding (window {self.window})")
        seq = self._next_seq
        if seq in outstanding or seq >= MAX_SEQUENCE:
            seq = self._take_sequence()
        else:
            self._next_seq = seq + 1
        if command_id not in _NO_RESPONSE:
            outstanding[seq] = (now, command_id, context)
        self._outbox.append(_pack_header(16 + len(body), command_id, 0, seq) + body)
        self.last_sent = now
        return seq

    def respond(self, command_id: int, sequence_number: int, status: int, body: bytes, now: float) -> None:
        """Queue a response whose body is already encoded (``b"\\x00"``: a
        deliver_sm_resp's empty message_id).  The fast path for answering
        inbound deliver_sm; bind responses must go through :meth:`send`."""
        if self.state is _CLOSED:
            raise SmppStateError(f"0x{command_id:08X} on a closed session")
        if not command_id & RESPONSE_BIT or command_id in _BIND_RESPS:
            raise SmppStateError(f"0x{command_id:08X} may not be sent this way")
        self._outbox.append(_pack_header(16 + len(body), command_id, status, sequence_number) + body)
        self.last_sent = now

    def _take_sequence(self) -> int:
        seq = self._next_seq
        while seq in self._outstanding:  # only after a full wrap with a request still open
            seq = seq + 1 if seq < MAX_SEQUENCE else 1
        self._next_seq = seq + 1 if seq < MAX_SEQUENCE else 1
        return seq

    def _bind_answered(self, resp_cmd: int, status: int) -> None:
        if self.state is not State.OPEN or self._pending_bind is None:
            return  # e.g. an ESME_RALYBND answer, or an answer to an illegal bind
        if self._pending_bind | RESPONSE_BIT != resp_cmd:
            raise SmppStateError("bind response type does not match the bind request")
        self._pending_bind = None
        if status == Status.ESME_ROK:
            self._set_state(_BIND_RESPS[resp_cmd])

    def data_to_send(self) -> bytes:
        """Everything queued since the last call, as one buffer (b'' when none)."""
        out = self._outbox
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    def close(self) -> None:
        """The connection is gone (or we drop it): nothing more is sent or received."""
        self._set_state(State.CLOSED)
        self._outbox.clear()

    def abandon_outstanding(self) -> list[tuple[int, int, Any, float]]:
        """Take every outstanding request out of the window, oldest first:
        ``(sequence_number, command_id, context, sent_at)``.  Used when the
        connection is lost: their fate is unknown."""
        items = [(seq, cmd, ctx, sent_at) for seq, (sent_at, cmd, ctx) in self._outstanding.items()]
        self._outstanding.clear()
        self._enquire_outstanding = False
        return items

    # --- receiving --------------------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Feed bytes read from the peer; returns the events they produced."""
        events: list[Event] = []
        if self.state is _CLOSED or not data:
            return events
        self.last_received = now
        self._idle_reported = False
        decoder = self._decoder
        decoder.feed(data)
        outstanding = self._outstanding
        while True:
            try:
                pdu = decoder.next_pdu()
            except SmppProtocolError as exc:
                self._outbox.append(
                    encode(GenericNack(sequence_number=exc.sequence_number or 0, command_status=exc.status))
                )
                # The event (a gc=False struct) keeps the error: not its traceback nor its context,
                # which hold this frame and so the event list and the session — a cycle that the
                # collector cannot see through a gc=False struct, so it would never be freed.
                exc.__traceback__ = exc.__context__ = None
                events.append(ProtocolError(exc))
                if exc.fatal:
                    self._set_state(State.CLOSED)
                    break
                continue
            if pdu is None:
                break
            cmd = pdu.command_id
            if cmd & RESPONSE_BIT:
                entry = outstanding.pop(pdu.sequence_number, None)
                if entry is None:
                    events.append(UnexpectedResponse(pdu))
                    continue
                sent_at, req_cmd, context = entry
                if req_cmd | RESPONSE_BIT != cmd and cmd != _GENERIC_NACK:
                    outstanding[pdu.sequence_number] = entry  # not its answer: keep waiting
                    events.append(UnexpectedResponse(pdu))
                    continue
                if req_cmd == _ENQUIRE_LINK:
                    self._enquire_outstanding = False
                    continue
                if req_cmd in _BINDS:
                    self._bind_response(cmd, pdu.command_status)
                elif req_cmd == _UNBIND:
                    self._set_state(State.CLOSED)
                    events.append(Response(pdu, context, sent_at, req_cmd))
                    events.append(Unbound(by_peer=False))
                    break
                events.append(Response(pdu, context, sent_at, req_cmd))
                continue
            if cmd not in self._recv_ok:
                events.append(self._answer_illegal(pdu))
                continue
            if cmd == _ENQUIRE_LINK:
                self._outbox.append(encode(EnquireLinkResp(sequence_number=pdu.sequence_number)))
                continue
            if cmd == _UNBIND:
                self._outbox.append(encode(UnbindResp(sequence_number=pdu.sequence_number)))
                self._set_state(State.CLOSED)
                events.append(Unbound(by_peer=True))
                break
            if cmd in _BINDS:
                if self._pending_bind is not None:
                    events.append(self._answer_illegal(pdu))
                    continue
                self._pending_bind = cmd
            events.append(Request(pdu))
        return events

    def _bind_response(self, resp_cmd: int, status: int) -> None:
        if resp_cmd == _GENERIC_NACK or status not in (Status.ESME_ROK, Status.ESME_RALYBND):
            self._set_state(State.OPEN)
            return
        requested = self._requested_bind
        self._set_state(_BINDS[requested] if requested is not None else _BIND_RESPS[resp_cmd])

    def _answer_illegal(self, pdu: Pdu) -> IllegalRequest:
        cmd = pdu.command_id
        if cmd in _NO_RESPONSE:
            return IllegalRequest(pdu, None)
        status = Status.ESME_RALYBND if cmd in _BINDS and self.state is not State.OPEN else Status.ESME_RINVBNDSTS
        resp_cls = _RESP_CLASS[cmd | RESPONSE_BIT]
        self._outbox.append(encode(resp_cls(sequence_number=pdu.sequence_number, command_status=status)))
        return IllegalRequest(pdu, int(status))

    # --- time -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest time :meth:`handle_timers` has something to do, or None."""
        deadline = None
        if self._outstanding:
            sent_at = next(iter(self._outstanding.values()))[0]
            deadline = sent_at + self.response_timeout
        if self.state in _BOUND and self.enquire_link_interval is not None and not self._enquire_outstanding:
            due = self.last_received + self.enquire_link_interval
            deadline = due if deadline is None or due < deadline else deadline
        if self.inactivity_timeout is not None and not self._idle_reported and self.state is not _CLOSED:
            due = self.last_received + self.inactivity_timeout
            deadline = due if deadline is None or due < deadline else deadline
        return deadline

    def handle_timers(self, now: float) -> list[Event]:
        """Expire overdue requests, send enquire_link when idle, report inactivity."""
        events: list[Event] = []
        outstanding = self._outstanding
        if outstanding:
            timeout = self.response_timeout
            expired = []
            for seq, (sent_at, cmd, context) in outstanding.items():
                # the same expression as next_deadline(): no rounding gap between them
                if sent_at + timeout > now:
                    break  # insertion order is send order, so deadlines are sorted
                expired.append((seq, cmd, context, sent_at))
            for seq, cmd, context, sent_at in expired:
                del outstanding[seq]
                if cmd == _ENQUIRE_LINK:
                    self._enquire_outstanding = False
                elif cmd in _BINDS and self.state is State.BINDING:
                    self._set_state(State.OPEN)
                events.append(Timeout(seq, cmd, context, sent_at))
        if (
            self.state in _BOUND
            and self.enquire_link_interval is not None
            and not self._enquire_outstanding
            and now >= self.last_received + self.enquire_link_interval
        ):
            # Keep-alive needs no free window slot: it must go out even when the window is full.
            seq = self._take_sequence()
            outstanding[seq] = (now, _ENQUIRE_LINK, None)
            self._outbox.append(encode(EnquireLink(sequence_number=seq)))
            self.last_sent = now
            self._enquire_outstanding = True
        if (
            self.inactivity_timeout is not None
            and not self._idle_reported
            and self.state is not _CLOSED
            and now >= self.last_received + self.inactivity_timeout
        ):
            self._idle_reported = True
            events.append(Idle(self.last_received))
        return events
