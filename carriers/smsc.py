"""A carrier SMSC simulator that speaks real SMPP 3.4 over TCP.

Built on the engine's own codec and session in the SMSC role, one server per
carrier.  It behaves as shared/SPEC.md says the carriers do, plus the knobs
tests and benchmarks need (see :class:`~engine.ops.config.SimulatorSettings`):

* binds of all three kinds, authenticated when ``system_id``/``password`` are
  set; enquire_link and unbind (answered by the session);
* submit_sm, data_sm and submit_multi answered with a unique message id
  (decimal or hex), then **one delivery receipt per part** after
  ``dlr_delay_ms`` (+ up to ``dlr_spread_ms``): Appendix B text plus the
  receipted_message_id and message_state TLVs, sent as deliver_sm to a
  receiver or transceiver bind of the same system_id (held until one binds,
  re-sent if the connection drops before deliver_sm_resp);
* the carrier's length limit (SPEC's characters, all parts of a concatenated
  message together) → ESME_RINVMSGLEN;
* **au pacing**: a message to an au number counts as a violation when it
  arrives less than 12 s after the previous message to that number ended
  (the moment the simulator sent its last receipt), or while a previous
  message to that number still awaits a receipt the simulator is going to
  send; a violating message gets an undeliverable receipt;
* docomo: ``partial_failure_rate`` of multi-part messages have some parts
  delivered and some failed;
* faults on request: throughput cap (ESME_RTHROTTLED), queue full
  (ESME_RMSGQFUL), rejections, receipts never sent, undeliverable and expired
  receipts, disconnect after N PDUs, delayed responses; MO messages injected
  with :meth:`SmscSimulator.inject_mo`;
* :meth:`SmscSimulator.stats` (also over HTTP, see carriers/control.py, and
  written to ``stats_file``).

Time: everything is computed from the event loop's clock, so the simulator
runs in virtual time under looptime next to the engine.  Randomness comes
from one ``random.Random(seed)``.
"""

from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import json
import math
import os
import random
import struct
import time
from pathlib import Path
from typing import Any, Callable

import msgspec

from carriers.profiles import CarrierProfile, profile
from engine.ops.config import SimulatorSettings, SmppSettings
from engine.smpp.constants import CommandId, EsmClass, MessageState, Status, Tag
from engine.smpp.codec import encode
from engine.smpp.pdu import (
    BindReceiverResp,
    BindTransceiverResp,
    BindTransmitterResp,
    CancelSmResp,
    DataSmResp,
    DeliverSm,
    Pdu,
    QuerySmResp,
    ReplaceSmResp,
    SmeAddress,
    SubmitMultiResp,
    SubmitSmResp,
    UnsuccessSme,
)
from engine.smpp.session import (
    IllegalRequest,
    ProtocolError,
    Request,
    Response,
    Role,
    Session,
    State,
    Timeout,
    Unbound,
)
from engine.transport import SmppConnection

__all__ = ["SmscSimulator", "count_characters", "concat_info"]

JST = 9 * 3600
C = CommandId
_BIND_RESPONSES = {
    C.BIND_TRANSMITTER: BindTransmitterResp,
    C.BIND_RECEIVER: BindReceiverResp,
    C.BIND_TRANSCEIVER: BindTransceiverResp,
}
_RX_BINDS = {C.BIND_RECEIVER, C.BIND_TRANSCEIVER}
_RX_STATES = frozenset({State.BOUND_RX, State.BOUND_TRX})  # the states in which the SMSC may send deliver_sm
_BIND_KIND = {C.BIND_TRANSMITTER: "transmitter", C.BIND_RECEIVER: "receiver", C.BIND_TRANSCEIVER: "transceiver"}

# message_state values as plain ints: the hot path avoids enum arithmetic
_ENROUTE = int(MessageState.ENROUTE)
_DELIVERED = int(MessageState.DELIVERED)
_EXPIRED = int(MessageState.EXPIRED)
_DELETED = int(MessageState.DELETED)
_UNDELIV = int(MessageState.UNDELIVERABLE)
_FAILED = frozenset({_EXPIRED, _DELETED, _UNDELIV, int(MessageState.REJECTED)})
_STAT = {int(s): s.stat.encode() for s in MessageState}
_UDHI = int(EsmClass.UDHI)
_RECEIPT_ESM = int(EsmClass.SMSC_DELIVERY_RECEIPT)
_T_RECEIPTED_ID = int(Tag.RECEIPTED_MESSAGE_ID)
_T_MESSAGE_STATE = int(Tag.MESSAGE_STATE)
_T_NETWORK_ERROR = int(Tag.NETWORK_ERROR_CODE)
_T_PAYLOAD = int(Tag.MESSAGE_PAYLOAD)
_VIOLATION_ERR = 12  # err: value on a receipt for an au pacing violation
_UNDELIV_ERR = 1
_EXPIRED_ERR = 6
_REQUEUE_DELAY = 1.0  # seconds before a nacked or timed-out receipt is offered again
_RECENT = 50_000  # message ids remembered for query_sm / cancel_sm / replace_sm
_SUBMIT_SM = int(C.SUBMIT_SM)
_DATA_SM = int(C.DATA_SM)
_DELIVER_SM = int(C.DELIVER_SM)
_ROK = int(Status.ESME_ROK)
_SUBMIT_SM_RESP = int(C.SUBMIT_SM_RESP)


def _submit_sm_resp_body(status: int, message_id: str) -> bytes:
    """A submit_sm_resp's body: the message id, or nothing when the status is an error
    (what the engine's codec encodes for SubmitSmResp without TLVs)."""
    return b"" if status else message_id.encode("latin-1") + b"\x00"


def count_characters(text: bytes, data_coding: int) -> int:
    """SPEC's characters of wire-form text: UTF-16 code units for UCS-2,
    characters (an escape pair is one) for unpacked GSM 03.38, octets otherwise."""
    if data_coding == 0x08:
        return len(text) // 2
    if data_coding == 0x00:
        return len(text) - text.count(0x1B)
    return len(text)


def concat_info(pdu: Any, body: bytes) -> tuple[tuple[int, int, int] | None, bytes]:
    """``((ref, total, seq) or None, text without UDH)``; raises ValueError on a bad UDH."""
    if pdu.esm_class & _UDHI:
        if not body:
            raise ValueError("UDHI set but no user data")
        udhl = body[0]
        header = body[1 : 1 + udhl]
        if len(header) != udhl:
            raise ValueError("UDH longer than the user data")
        text = body[1 + udhl :]
        i = 0
        while i + 2 <= len(header):
            iei, iel = header[i], header[i + 1]
            value = header[i + 2 : i + 2 + iel]
            if len(value) != iel:
                raise ValueError("truncated UDH element")
            if iei == 0x00 and iel == 3:
                return _checked(value[0], value[1], value[2]), text
            if iei == 0x08 and iel == 4:
                return _checked((value[0] << 8) | value[1], value[2], value[3]), text
            i += 2 + iel
        return None, text
    tlvs = pdu.tlvs
    if tlvs and Tag.SAR_MSG_REF_NUM in tlvs:
        try:
            info = (tlvs[Tag.SAR_MSG_REF_NUM], tlvs[Tag.SAR_TOTAL_SEGMENTS], tlvs[Tag.SAR_SEGMENT_SEQNUM])
        except KeyError:
            return None, body  # the spec says: ignore an incomplete SAR set
        if not all(isinstance(v, int) for v in info):
            raise ValueError("malformed SAR TLVs")
        return _checked(*info), body
    return None, body


def _checked(ref: int, total: int, seq: int) -> tuple[int, int, int]:
    if total < 1 or not 1 <= seq <= total:
        raise ValueError(f"concatenation part {seq} of {total}")
    return ref, total, seq


# _Message and _Receipt are msgspec Structs with gc=False: one or two of them
# per message, and the cyclic collector need not track them (they refer to
# PDUs, bytes, numbers and a receipt to its message: never back, no cycles).
# eq=False: two receipts are the same only when they are one object.


class _Message(msgspec.Struct, gc=False, eq=False):
    """A logical message that needs tracking across PDUs: the parts of a
    concatenated message, or any message to a paced (au) number."""

    key: Any
    number: str
    total: int
    created: float
    seen: int = 0
    parts_seen: int = 0  # bit n set: part n arrived
    parts_refused: int = 0  # bit n set: part n was refused for good
    last_end: float | None = None  # when the last receipt of this message was sent
    open_receipts: int = 0  # parts whose receipt has not been sent (or ended) yet
    state: int = _DELIVERED
    err: int = 0
    failing: frozenset[int] = frozenset()
    characters: int = 0
    rejected: bool = False
    paced: bool = False  # counted in the au open-message table
    send_receipts: bool = True


class _Receipt(msgspec.Struct, gc=False, eq=False):
    """A delivery receipt (or an MO message) on its way out as deliver_sm.

    A receipt's body is encoded when it falls due, so its done date and stat
    reflect that moment (a cancel_sm before then turns it into DELETED); an
    MO message comes with its body (and ``released``).  The body is kept until
    acknowledged, so a receipt can be offered again after a nack or a lost
    connection."""

    system_id: str
    message: _Message | None
    body: bytes | None = None
    released: bool = False  # its body is encoded (at once for an MO message)
    part_sent: bool = False
    done_wall: float | None = None
    message_id: str = ""  # empty for an MO message
    n: int = 0
    submit: Any = None
    text: bytes = b""
    submitted_at: float = 0.0
    state: int = _DELIVERED
    err: int = 0
    send: bool = True
    due: float = 0.0  # when it falls due, while in the simulator's in-order queue

    def encode_body(self, text_id: bytes | None, submit_date: bytes, done_date: bytes) -> bytes:
        """The deliver_sm body (all but the header) of this receipt; ``text_id``
        None: the text's id: is the message id.  What encode(DeliverSm(…))[16:]
        gives (a test holds them equal), in two formatting operations."""
        state = self.state
        err = self.err
        failed = state in _FAILED
        pdu = self.submit
        mid = self.message_id.encode()
        text = b"id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%s text:%s" % (
            mid if text_id is None else text_id, b"000" if failed else b"001", submit_date, done_date, _STAT[state],
            _ERR_TEXT.get(err) or b"%03d" % err, _sample(self.text, pdu.data_coding),
        )
        # service_type, source (the handset), destination (the ESME), esm_class 0x04,
        # protocol_id, priority, no schedule, no validity, registered_delivery,
        # replace_if_present, data_coding 0, sm_default_msg_id, the text, then the
        # receipted_message_id and message_state TLVs (and network_error_code when failed)
        body = b"\x00%c%c%s\x00%c%c%s\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00%c%s%s%s\x00%s" % (
            pdu.dest_addr_ton, pdu.dest_addr_npi, pdu.destination_addr.encode("latin-1"),
            pdu.source_addr_ton, pdu.source_addr_npi, pdu.source_addr.encode("latin-1"),
            len(text), text, _TLV_RECEIPTED_ID(_T_RECEIPTED_ID, len(mid) + 1), mid, _TLV_STATE[state],
        )
        if failed:
            body += _NETWORK_ERROR(_T_NETWORK_ERROR, 3, 3, err)
        return body


_TLV_RECEIPTED_ID = struct.Struct(">HH").pack
_NETWORK_ERROR = struct.Struct(">HHBH").pack
_TLV_STATE = {int(s): struct.pack(">HHB", _T_MESSAGE_STATE, 1, int(s)) for s in MessageState}
_ERR_TEXT = {err: b"%03d" % err for err in range(1000)}  # a receipt's err: field


class _ConnState:
    __slots__ = ("system_id", "bind", "pdus", "rx")

    def __init__(self) -> None:
        self.system_id: str | None = None
        self.bind: str | None = None
        self.pdus = 0
        self.rx = False


def _can_receive(conn: SmppConnection) -> bool:
    """The connection may be sent a deliver_sm now: its session is bound as a
    receiver or transceiver (not closed, not unbinding) and its transport is
    neither gone nor closing (its connection_lost may not have run yet)."""
    if conn.session.state not in _RX_STATES:
        return False
    transport = conn.transport
    return transport is not None and not transport.is_closing()


class SmscSimulator:
    """One carrier's SMSC.  ``async with SmscSimulator(settings) as sim:`` serves on ``sim.port``."""

    def __init__(
        self,
        settings: SimulatorSettings,
        *,
        smpp: SmppSettings | None = None,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.profile: CarrierProfile = profile(settings.carrier)
        self.smpp = smpp or SmppSettings()
        self._wallclock = wallclock
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._control: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._connections: set[SmppConnection] = set()
        self._receivers: dict[str, list[SmppConnection]] = collections.defaultdict(list)
        self._rr = 0
        self._pending: dict[str, collections.deque[_Receipt]] = collections.defaultdict(collections.deque)
        self._pending_count = 0
        self._heap: list[tuple[float, int, _Receipt]] = []  # receipts due out of order (spread, retries)
        self._due: collections.deque[_Receipt] = collections.deque()  # due in order (of their .due)
        self._heap_seq = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")
        self._delayed: collections.deque[tuple[float, SmppConnection, Pdu]] = collections.deque()
        self._delayed_timer: asyncio.TimerHandle | None = None
        self._housekeeping: asyncio.TimerHandle | None = None
        self._concat: dict[tuple[str, str, int, int], _Message] = {}
        self._au_last_end: dict[str, float] = {}
        self._au_open: dict[str, int] = {}
        self._submit_times: dict[str, float | collections.deque[float]] = {}  # see _track
        # the latest receipts, for query_sm / cancel_sm / replace_sm: message numbers are
        # consecutive, so a receipt's place follows from its number (see _recent_receipt)
        self._recent: collections.deque[_Receipt] = collections.deque(maxlen=_RECENT)
        self._mo_ref = 0
        self._minute = -1
        self._minute_text = b""
        self._wall_offset = 0.0
        self._tokens = 0.0
        self._tokens_at = 0.0
        self._next_id: int | None = None
        self.port = 0
        self.control_port: int | None = None
        # a defaultdict rather than a Counter: ``counters[key] += 1`` costs a third as much
        self.counters: collections.defaultdict[str, int] = collections.defaultdict(int)
        self.violation_numbers: collections.deque[str] = collections.deque(maxlen=1000)
        self.apply(settings)

    # --- settings ---------------------------------------------------------------

    def apply(self, settings: SimulatorSettings) -> None:
        """Take new knob values (the carrier and listening address stay)."""
        self.settings = settings
        self._rng = random.Random(settings.seed)
        if self._next_id is None:
            base = settings.message_id_base
            self._next_id = int(self._wallclock() * 1000) * 1000 if base is None else base
        self._hex_ids = (settings.message_id_style or self.profile.message_id_style) == "hex"
        self._receipt_ids = settings.receipt_id_style
        self._partial = (
            settings.partial_failure_rate if settings.partial_failure_rate is not None else self.profile.partial_failure_rate
        )
        self._cap = settings.throughput_cap
        self._burst = float(settings.throttle_burst or max(1, int(self._cap / 10)))
        self._tokens = self._burst
        self._delay = settings.dlr_delay_ms / 1000.0
        self._spread = settings.dlr_spread_ms / 1000.0
        self._response_delay = settings.response_delay_ms / 1000.0
        self._pacing = self.profile.pacing_interval_s
        self._outcome_draws = bool(settings.receipt_drop_rate or settings.undeliverable_rate or settings.expired_rate)

    def update(self, **knobs: Any) -> SimulatorSettings:
        """Change knobs at run time (e.g. ``throughput_cap=500``); returns the new settings."""
        from engine.ops.config import simulator_settings

        values = {f: getattr(self.settings, f) for f in self.settings.__struct_fields__}
        values.update(knobs)
        for fixed in ("carrier", "host", "port", "control_port"):
            values[fixed] = getattr(self.settings, fixed)
        new = simulator_settings(**values)
        self.apply(new)
        return new

    # --- lifecycle --------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._wall_offset = self._wallclock() - loop.time()
        self._tokens_at = loop.time()
        s = self.settings
        self._server = await loop.create_server(self._new_connection, s.host, s.port)
        self.port = self._server.sockets[0].getsockname()[1]
        if s.control_port is not None:
            from carriers.control import start_control_server

            self._control, self.control_port = await start_control_server(self, s.host, s.control_port)
        if s.stats_file:
            self._tasks.append(loop.create_task(self._write_stats_periodically(Path(s.stats_file))))
        self._housekeeping = loop.call_later(10.0, self._sweep)

    async def stop(self) -> None:
        """Stop listening, drop every connection, write the stats file."""
        if self._server is not None:
            self._server.close()
        for conn in list(self._connections):
            self._abort(conn)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._control is not None:
            await self._control.cleanup()
            self._control = None
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
        self._tasks.clear()
        for handle in (self._timer, self._delayed_timer, self._housekeeping):
            if handle is not None:
                handle.cancel()
        self._timer = self._delayed_timer = self._housekeeping = None
        if self.settings.stats_file:
            self.write_stats(Path(self.settings.stats_file))

    async def __aenter__(self) -> "SmscSimulator":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def disconnect_all(self) -> int:
        """Drop every client connection at once (fault injection)."""
        conns = list(self._connections)
        for conn in conns:
            self._abort(conn)
        return len(conns)

    def _abort(self, conn: SmppConnection) -> None:
        """Drop a connection; it gets no more deliver_sm (its connection_lost,
        which re-queues what it left unacknowledged, comes in a later callback)."""
        self._drop_receiver(conn)
        conn.abort()

    def _drop_receiver(self, conn: SmppConnection) -> None:
        """Take a connection out of its system_id's receivers (no-op when not there)."""
        st: _ConnState | None = conn.context
        if st is None or not st.rx or st.system_id is None:
            return
        st.rx = False
        receivers = self._receivers.get(st.system_id)
        if receivers is not None and conn in receivers:
            receivers.remove(conn)

    def _new_connection(self) -> SmppConnection:
        s = self.settings
        session = Session(
            Role.SMSC,
            window=s.window,
            response_timeout=self.smpp.response_timeout_s,
            enquire_link_interval=s.enquire_link_interval_s,
            inactivity_timeout=self.smpp.inactivity_timeout_s,
            max_frame=self.smpp.max_frame_bytes,
        )
        return SmppConnection(session, self)

    @property
    def now(self) -> float:
        assert self._loop is not None, "start() the simulator first"
        return self._loop.time()

    # --- SmppHandler ------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        conn.context = _ConnState()
        self._connections.add(conn)
        self.counters["connections"] += 1

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        self._connections.discard(conn)
        self.counters["tcp_reads"] += conn.reads
        self.counters["tcp_writes"] += conn.writes
        # out of the receivers before anything is pumped, so nothing goes back to it
        self._drop_receiver(conn)
        # deliver_sm not acknowledged: offer them again, in their original order,
        # to another live receiver of the system_id, or hold them for the next bind
        abandoned = [ctx for _seq, cmd, ctx, _t in conn.session.abandon_outstanding() if cmd == C.DELIVER_SM]
        for receipt in reversed(abandoned):
            self._queue_pending(receipt, front=True)
        if abandoned:
            self.counters["deliver_requeued"] += len(abandoned)
            self._pump(abandoned[0].system_id)

    def handle_events(self, conn: SmppConnection, events: list[Any]) -> None:
        st: _ConnState = conn.context
        limit = self.settings.disconnect_after
        assert self._loop is not None
        now = self._loop.time()
        acked = False
        for ev in events:
            kind = type(ev)
            if kind is Request:
                st.pdus += 1
                self._on_request(conn, st, ev.pdu, now)
            elif kind is Response:
                st.pdus += 1
                acked = True
                if ev.pdu.command_status:
                    self.counters["deliver_nacked"] += 1
                    self._retry_later(ev.context, now)
                else:
                    receipt = ev.context
                    if receipt.message_id:
                        self.counters["receipts_acked"] += 1
                    else:
                        self.counters["mo_acked"] += 1
                    receipt.body = None  # acknowledged: free the memory
            elif kind is Timeout:
                if ev.command_id == C.DELIVER_SM:
                    self.counters["deliver_timeouts"] += 1
                    self._retry_later(ev.context, now)
                elif ev.command_id == C.ENQUIRE_LINK:
                    self._abort(conn)
                    return
            elif kind is ProtocolError:
                self.counters["protocol_errors"] += 1
                if ev.error.fatal:
                    self._drop_receiver(conn)  # the session is closed
            elif kind is IllegalRequest:
                self.counters["illegal_requests"] += 1
            elif kind is Unbound:
                self.counters["unbinds"] += 1
                self._drop_receiver(conn)  # the session is closed; the transport closes after this read
            if limit and st.pdus >= limit:
                self.counters["forced_disconnects"] += 1
                self._abort(conn)
                return
        if acked and st.system_id is not None:
            self._pump(st.system_id)

    # --- requests ---------------------------------------------------------------

    def _on_request(self, conn: SmppConnection, st: _ConnState, pdu: Any, now: float) -> None:
        cmd = pdu.command_id
        if cmd == _SUBMIT_SM:
            self.counters["submit_sm"] += 1
            status, message_id = self._accept(st, pdu, pdu.short_message, now)
            if self._response_delay:
                self._respond(conn, SubmitSmResp(sequence_number=pdu.sequence_number, command_status=status, message_id=message_id), now)
            else:  # the hot path: encoded here, as encode(SubmitSmResp(…)) would (a test holds them equal)
                conn.respond(_SUBMIT_SM_RESP, pdu.sequence_number, status, _submit_sm_resp_body(status, message_id))
        elif cmd == _DATA_SM:
            self.counters["data_sm"] += 1
            payload = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")
            status, message_id = self._accept(st, pdu, b"", now, payload=payload)
            self._respond(conn, DataSmResp(sequence_number=pdu.sequence_number, command_status=status, message_id=message_id), now)
        elif cmd in _BIND_RESPONSES:
            self._on_bind(conn, st, pdu)
        elif cmd == C.SUBMIT_MULTI:
            self._on_submit_multi(conn, st, pdu, now)
        elif cmd == C.QUERY_SM:
            self._on_query(conn, pdu)
        elif cmd == C.CANCEL_SM:
            receipt = self._recent_receipt(pdu.message_id)
            ok = receipt is not None and not receipt.released
            if ok:
                receipt.state, receipt.err = _DELETED, 0
                self.counters["cancelled"] += 1
            conn.send(CancelSmResp(sequence_number=pdu.sequence_number, command_status=Status.ESME_ROK if ok else Status.ESME_RCANCELFAIL))
        elif cmd == C.REPLACE_SM:
            receipt = self._recent_receipt(pdu.message_id)
            ok = receipt is not None and not receipt.released
            conn.send(ReplaceSmResp(sequence_number=pdu.sequence_number, command_status=Status.ESME_ROK if ok else Status.ESME_RREPLACEFAIL))
        else:
            self.counters[f"ignored_0x{cmd:x}"] += 1  # outbind, alert_notification: no answer exists

    def _respond(self, conn: SmppConnection, resp: Pdu, now: float) -> None:
        if not self._response_delay:
            conn.send(resp)
            return
        self._delayed.append((now + self._response_delay, conn, resp))
        if self._delayed_timer is None:
            assert self._loop is not None
            self._delayed_timer = self._loop.call_at(now + self._response_delay, self._send_delayed)

    def _send_delayed(self) -> None:
        self._delayed_timer = None
        assert self._loop is not None
        now = self._loop.time()
        delayed = self._delayed
        while delayed and delayed[0][0] <= now:
            _due, conn, resp = delayed.popleft()
            if conn.transport is not None and conn.session.state is not State.CLOSED:
                conn.send(resp)
        if delayed:
            self._delayed_timer = self._loop.call_at(delayed[0][0], self._send_delayed)

    def _on_bind(self, conn: SmppConnection, st: _ConnState, pdu: Any) -> None:
        s = self.settings
        if s.system_id is not None and pdu.system_id != s.system_id:
            status = Status.ESME_RINVSYSID
        elif s.password is not None and pdu.password != s.password:
            status = Status.ESME_RINVPASWD
        else:
            status = Status.ESME_ROK
        resp = _BIND_RESPONSES[pdu.command_id](
            sequence_number=pdu.sequence_number,
            command_status=status,
            system_id=f"{self.settings.carrier}-sim",
            tlvs={Tag.SC_INTERFACE_VERSION: 0x34},
        )
        conn.send(resp)
        if status != Status.ESME_ROK:
            self.counters["bind_failures"] += 1
            assert self._loop is not None
            self._loop.call_soon(conn.close)
            return
        st.system_id = pdu.system_id
        st.bind = _BIND_KIND[pdu.command_id]
        self.counters[f"binds_{st.bind}"] += 1
        if pdu.command_id in _RX_BINDS:
            st.rx = True
            self._receivers[pdu.system_id].append(conn)
            self._pump(pdu.system_id)

    def _recent_receipt(self, message_id: str) -> _Receipt | None:
        """The receipt of one of the latest ``_RECENT`` accepted messages, by its id.

        Every accepted message gets the next number and its receipt goes to the
        end of ``_recent``, so the receipt numbered n sits ``last - n`` places
        from the end.  The id is read as decimal and as hex (the style may have
        changed at run time), and a place counts only when its receipt has
        exactly this id; were both to match, the later one wins."""
        recent = self._recent
        if not recent:
            return None
        last = recent[-1].n
        found = None
        for base in (10, 16):
            try:
                n = int(message_id, base)
            except ValueError:
                continue
            back = last - n
            if 0 <= back < len(recent):
                receipt = recent[-1 - back]
                if receipt.message_id == message_id and (found is None or receipt.n > found.n):
                    found = receipt
        return found

    def _on_query(self, conn: SmppConnection, pdu: Any) -> None:
        receipt = self._recent_receipt(pdu.message_id)
        if receipt is None:
            conn.send(QuerySmResp(sequence_number=pdu.sequence_number, command_status=Status.ESME_RQUERYFAIL))
            return
        final = receipt.done_wall is not None
        conn.send(
            QuerySmResp(
                sequence_number=pdu.sequence_number,
                message_id=pdu.message_id,
                final_date=self._smpp_time(receipt.done_wall) if final else "",
                message_state=receipt.state if final else _ENROUTE,
                error_code=receipt.err if final else 0,
            )
        )

    def _on_submit_multi(self, conn: SmppConnection, st: _ConnState, pdu: Any, now: float) -> None:
        self.counters["submit_multi"] += 1
        unsuccess = []
        message_id = ""
        for dest in pdu.dest_addresses:
            if not isinstance(dest, SmeAddress):
                unsuccess.append(UnsuccessSme(address=dest.name, error_status_code=Status.ESME_RINVDLNAME))
                continue
            status, mid = self._accept(st, _SingleDest(pdu, dest), pdu.short_message, now)
            if status:
                unsuccess.append(UnsuccessSme(address=dest.address, error_status_code=status, ton=dest.ton, npi=dest.npi))
            message_id = message_id or mid
        conn.send(SubmitMultiResp(sequence_number=pdu.sequence_number, message_id=message_id, unsuccess_smes=tuple(unsuccess)))

    # --- accepting a message ------------------------------------------------------

    def _throttled(self, now: float) -> bool:
        tokens = min(self._burst, self._tokens + (now - self._tokens_at) * self._cap)
        self._tokens_at = now
        if tokens >= 0.999:  # a sender at exactly the cap must not lose to clock rounding
            self._tokens = tokens - 1.0
            return False
        self._tokens = tokens
        return True

    def _accept(self, st: _ConnState, pdu: Any, body: bytes, now: float, payload: bytes | None = None) -> tuple[int, str]:
        """Decide a submit's fate: (command_status, message_id); schedule its receipt."""
        s = self.settings
        counters = self.counters
        if self._cap and self._throttled(now):
            counters["throttled"] += 1
            return Status.ESME_RTHROTTLED, ""
        rng = self._rng
        if s.queue_full_rate and rng.random() < s.queue_full_rate:
            counters["queue_full"] += 1
            return Status.ESME_RMSGQFUL, ""
        tlvs = pdu.tlvs
        if payload is None and tlvs and _T_PAYLOAD in tlvs:
            if body:
                counters["rejected_both_payloads"] += 1
                return Status.ESME_RSUBMITFAIL, ""
            payload = tlvs[_T_PAYLOAD]
        try:
            info, text = concat_info(pdu, body if payload is None else payload)
        except ValueError:
            counters["bad_concatenation"] += 1
            return Status.ESME_RSUBMITFAIL, ""
        refuse = bool(s.reject_rate) and rng.random() < s.reject_rate
        units = count_characters(text, pdu.data_coding)
        number = pdu.destination_addr
        part = 1
        if info is None:
            if refuse:
                counters["rejected"] += 1
                return s.reject_status, ""
            if units > self.profile.max_characters:
                counters["too_long"] += 1
                return Status.ESME_RINVMSGLEN, ""
            message = self._new_message(None, number, 1, now, pdu.registered_delivery) if self._pacing is not None else None
            if message is None:
                self._track(number, now)
        else:
            ref, total, part = info
            key = (pdu.source_addr, number, ref, total)
            bit = 1 << part
            message = self._concat.get(key)
            if message is not None and (message.parts_seen | message.parts_refused) & bit:
                # The same part again: the sender started the message over.
                # The old one is complete with what it got.
                message.total = message.seen
                del self._concat[key]
                self._maybe_close(message)
                message = None
            if message is None:
                message = self._concat[key] = self._new_message(key, number, total, now, pdu.registered_delivery)
            if refuse or message.rejected or message.characters + units > self.profile.max_characters:
                message.parts_refused |= bit
                if refuse:
                    counters["rejected"] += 1
                else:
                    message.rejected = True  # too long: every later part is refused too
                    counters["too_long"] += 1
                if self._complete(message):
                    del self._concat[key]
                self._maybe_close(message)
                return (s.reject_status if refuse else Status.ESME_RINVMSGLEN), ""
            message.characters += units
            message.parts_seen |= bit
        if message is not None:
            message.seen += 1
            if message.key is not None and self._complete(message):
                del self._concat[message.key]
        counters["accepted"] += 1
        self._next_id = n = self._next_id + 1  # type: ignore[operator]
        message_id = "%x" % n if self._hex_ids else str(n)
        self._schedule_receipt(st, pdu, message, part, message_id, n, text, now)
        return _ROK, message_id

    @staticmethod
    def _complete(message: _Message) -> bool:
        """Every part of the message arrived or was refused (nothing more will come)."""
        if message.rejected or message.seen >= message.total:
            return True
        return bin(message.parts_seen | message.parts_refused).count("1") >= message.total

    def _track(self, number: str, now: float) -> None:
        submit_times = self._submit_times
        times = submit_times.get(number)
        if times is None:
            if len(submit_times) < self.settings.track_numbers:
                # most numbers get one message: a bare float until a second comes
                # (a deque per number cost ~0.5 µs and 600 bytes per message)
                submit_times[number] = now
        elif type(times) is float:
            submit_times[number] = collections.deque((times, now), maxlen=64)
        else:
            times.append(now)

    def _new_message(self, key: Any, number: str, total: int, now: float, registered_delivery: int) -> _Message:
        message = _Message(key, number, total, now)
        self._track(number, now)
        if self._outcome_draws:
            message.send_receipts, message.state, message.err = self._draw_outcome()
        if total > 1 and self._partial and self._rng.random() < self._partial:
            failing = self._rng.randrange(1, total)  # at least one part delivered, at least one failed
            message.failing = frozenset(self._rng.sample(range(1, total + 1), failing))
            self.counters["partial_failures"] += 1
        if self._pacing is not None and message.send_receipts:
            last = self._au_last_end.get(number)
            still_open = self._au_open.get(number, 0)
            # 1 µs of slack: a sender exactly 12 s after the end must not lose to float rounding
            if still_open or (last is not None and now - last < self._pacing - 1e-6):
                message.state, message.err = _UNDELIV, _VIOLATION_ERR
                self.counters["violations"] += 1
                self.violation_numbers.append(number)
            # Only a message the simulator will send a receipt for paces its number.
            wanted = registered_delivery & 0x03
            if wanted == 1 or (wanted == 2 and (message.state in _FAILED or message.failing)):
                self._au_open[number] = still_open + 1
                message.paced = True
        return message

    def _draw_outcome(self) -> tuple[bool, int, int]:
        """(receipt sent?, message_state, err) for a message, by the outcome knobs."""
        s = self.settings
        rng = self._rng
        if s.receipt_drop_rate and rng.random() < s.receipt_drop_rate:
            self.counters["receipts_dropped_messages"] += 1
            return False, _DELIVERED, 0
        if s.expired_rate and rng.random() < s.expired_rate:
            return True, _EXPIRED, _EXPIRED_ERR
        if s.undeliverable_rate and rng.random() < s.undeliverable_rate:
            return True, _UNDELIV, _UNDELIV_ERR
        return True, _DELIVERED, 0

    def _schedule_receipt(self, st: _ConnState, pdu: Any, message: _Message | None, part: int, message_id: str, n: int, text: bytes, now: float) -> None:
        if message is not None:
            send, state, err = message.send_receipts, message.state, message.err
            if message.failing and part in message.failing:
                state, err = _UNDELIV, _UNDELIV_ERR
            message.open_receipts += 1
        elif self._outcome_draws:
            send, state, err = self._draw_outcome()
        else:
            send, state, err = True, _DELIVERED, 0
        wanted = pdu.registered_delivery & 0x03
        receipt = _Receipt(
            st.system_id or "", message, message_id=message_id, n=n, submit=pdu, text=text, submitted_at=now,
            state=state, err=err, send=send and (wanted == 1 or (wanted == 2 and state in _FAILED)),
        )
        self._recent.append(receipt)
        due = now + self._delay
        if self._spread:
            due += self._rng.random() * self._spread
            heapq.heappush(self._heap, (due, next(self._heap_seq), receipt))
        else:
            receipt.due = due
            self._due.append(receipt)  # constant delay: already in due order
        if due < self._timer_at:
            self._arm(due)

    # --- receipts going out -------------------------------------------------------

    def _arm(self, due: float) -> None:
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = self._loop.call_at(due, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self._timer_at = float("inf")
        assert self._loop is not None
        now = self._loop.time()
        touched: set[str] = set()
        done_date = self._date_text(now)  # one done date for all that fall due now
        release = self._release
        due = self._due
        while due and due[0].due <= now:
            receipt = due.popleft()
            if release(receipt, now, done_date):
                touched.add(receipt.system_id)
        heap = self._heap
        while heap and heap[0][0] <= now:
            receipt = heapq.heappop(heap)[2]
            if release(receipt, now, done_date):
                touched.add(receipt.system_id)
        for system_id in touched:
            self._pump(system_id)
        nxt = min(due[0].due if due else float("inf"), heap[0][0] if heap else float("inf"))
        if nxt != float("inf"):
            self._arm(nxt)

    def _release(self, receipt: _Receipt, now: float, done_date: bytes) -> bool:
        """A receipt fell due (or is due again after a nack): queue it for
        sending, or end its part when there is nothing to send.  True when queued."""
        if not receipt.released:
            receipt.released = True
            receipt.done_wall = now + self._wall_offset
            if not receipt.send:
                receipt.submit = None
                receipt.text = b""
                self._part_ended(receipt, now, sent=False)
                return False
            style = self._receipt_ids
            text_id = None if style == "same" else b"%d" % receipt.n if style == "decimal" else b"%x" % receipt.n
            receipt.body = receipt.encode_body(text_id, self._date_text(receipt.submitted_at), done_date)
            receipt.submit = None
            receipt.text = b""
        self._queue_pending(receipt)
        return True

    def _queue_pending(self, receipt: _Receipt, front: bool = False) -> None:
        if self._pending_count >= self.settings.max_pending_receipts:
            self.counters["pending_overflow"] += 1
            if not receipt.part_sent:
                receipt.part_sent = True
                self._part_ended(receipt, self.now, sent=False)
            return
        queue = self._pending[receipt.system_id]
        if front:
            queue.appendleft(receipt)
        else:
            queue.append(receipt)
        self._pending_count += 1

    def _pump(self, system_id: str) -> None:
        """Send queued deliver_sm to the receivers of ``system_id`` while windows allow,
        filling one connection's window at a time, round robin."""
        queue = self._pending.get(system_id)
        if not queue:
            return
        receivers = self._receivers.get(system_id)
        if not receivers:
            return
        for conn in receivers:
            if not _can_receive(conn):
                # closed, unbinding or closing and not yet lost: never send on it
                receivers[:] = [c for c in receivers if _can_receive(c)]
                if not receivers:
                    return  # held for the next receiver bind
                break
        now = self.now
        n = len(receivers)
        sent_receipts = sent_mo = 0
        start = self._rr
        for i in range(n):
            conn = receivers[(start + i) % n]
            if conn.write_paused:
                continue
            free = conn.session.free_slots
            send = conn.send_encoded
            while free > 0 and queue:
                receipt = queue.popleft()
                send(_DELIVER_SM, receipt.body, receipt)
                free -= 1
                if receipt.message_id:
                    sent_receipts += 1
                    if not receipt.part_sent:
                        receipt.part_sent = True
                        if receipt.message is not None:
                            self._part_ended(receipt, now, sent=True)
                else:
                    sent_mo += 1
            if not queue:
                self._rr = (start + i + 1) % n
                break
        self._pending_count -= sent_receipts + sent_mo
        counters = self.counters
        counters["receipts_sent"] += sent_receipts
        counters["mo_sent"] += sent_mo

    def _part_ended(self, receipt: _Receipt, now: float, *, sent: bool) -> None:
        message = receipt.message
        if message is None:
            return
        message.open_receipts -= 1
        if sent:
            message.last_end = now
        self._maybe_close(message)

    def _maybe_close(self, message: _Message) -> None:
        """A paced message ends when every part arrived (or was refused) and every receipt went."""
        if message.paced and message.open_receipts == 0 and self._complete(message):
            self._close_paced(message)

    def _close_paced(self, message: _Message) -> None:
        message.paced = False
        number = message.number
        left = self._au_open.get(number, 1) - 1
        if left > 0:
            self._au_open[number] = left
        else:
            self._au_open.pop(number, None)
        if message.last_end is not None and message.last_end > self._au_last_end.get(number, -math.inf):
            self._au_last_end[number] = message.last_end

    def _retry_later(self, receipt: _Receipt, now: float) -> None:
        due = now + _REQUEUE_DELAY
        heapq.heappush(self._heap, (due, next(self._heap_seq), receipt))
        if due < self._timer_at:
            self._arm(due)

    # --- MO -------------------------------------------------------------------------

    def inject_mo(self, *, source: str, destination: str, text: str, system_id: str | None = None) -> int:
        """Queue a mobile-originated message from ``source`` (a handset) to
        ``destination`` (the enterprise's number) as the carrier would deliver
        it (concatenated as the carrier concatenates); returns its part count."""
        from engine.text import plan

        target = (
            system_id
            or self.settings.system_id
            or next((k for k, v in self._receivers.items() if any(_can_receive(c) for c in v)), None)
            or next((k for k, v in self._receivers.items() if v), None)
        )
        if target is None:
            raise LookupError("no system_id to deliver to: none given, none configured, nothing bound")
        self._mo_ref = (self._mo_ref + 1) % 256
        text_plan = plan(text, self.settings.carrier, ref=self._mo_ref)
        for i, segment in enumerate(text_plan.segments):
            tlvs: dict[int, Any] = {}
            body = segment
            if text_plan.use_message_payload:
                tlvs[_T_PAYLOAD] = segment
                body = b""
            elif text_plan.concatenation == "sar" and text_plan.sar:
                ref, total, seq = text_plan.sar[i]
                tlvs.update({Tag.SAR_MSG_REF_NUM: ref, Tag.SAR_TOTAL_SEGMENTS: total, Tag.SAR_SEGMENT_SEQNUM: seq})
            pdu = DeliverSm(
                source_addr_ton=1,
                source_addr_npi=1,
                source_addr=source,
                destination_addr=destination,
                esm_class=text_plan.esm_class,
                data_coding=text_plan.data_coding,
                short_message=body,
                tlvs=tlvs,
            )
            self._queue_pending(_Receipt(target, None, encode(pdu)[16:], released=True))
        self.counters["mo_injected"] += 1
        self._pump(target)
        return len(text_plan.segments)

    # --- time and text helpers ----------------------------------------------------

    def _date_text(self, now: float) -> bytes:
        wall = now + self._wall_offset
        minute = int(wall // 60)
        if minute != self._minute:
            self._minute = minute
            self._minute_text = time.strftime("%y%m%d%H%M", time.gmtime(minute * 60 + JST)).encode()
        return self._minute_text

    @staticmethod
    def _smpp_time(wall: float) -> str:
        """SMPP absolute time in JST: YYMMDDhhmmsst36+ (36 quarter hours = UTC+9)."""
        tenths = int((wall % 1) * 10)
        return time.strftime("%y%m%d%H%M%S", time.gmtime(wall + JST)) + f"{tenths}36+"

    def _sweep(self) -> None:
        """Forget what can no longer matter: old pacing ends, stale partial messages."""
        assert self._loop is not None
        now = self._loop.time()
        if self._pacing is not None:
            horizon = now - self._pacing
            self._au_last_end = {k: v for k, v in self._au_last_end.items() if v > horizon}
        stale = [k for k, m in self._concat.items() if now - m.created > 600]
        for key in stale:
            message = self._concat.pop(key)
            self.counters["incomplete_messages"] += 1
            message.total = message.seen  # what never came is not coming
            self._maybe_close(message)
        self._housekeeping = self._loop.call_later(10.0, self._sweep)

    # --- stats ----------------------------------------------------------------------

    def stats(self, *, numbers: bool = False) -> dict[str, Any]:
        """Counters (submits, receipts sent/acked, violations, binds, …) as plain data."""
        out: dict[str, Any] = {
            "carrier": self.settings.carrier,
            "port": self.port,
            "bound": {
                kind: sum(1 for c in self._connections if c.context and c.context.bind == kind)
                for kind in ("transmitter", "receiver", "transceiver")
            },
            "receipts_pending": self._pending_count,
            "receipts_scheduled": len(self._heap) + len(self._due),
            "au_numbers_paced": len(self._au_open),
            "violation_numbers": list(self.violation_numbers),
        }
        for key in (
            "connections", "submit_sm", "data_sm", "submit_multi", "accepted", "throttled",
            "queue_full", "rejected", "too_long", "violations", "receipts_sent", "receipts_acked",
            "receipts_dropped_messages", "partial_failures", "mo_injected", "mo_sent", "mo_acked",
            "bind_failures", "forced_disconnects", "protocol_errors", "deliver_requeued",
        ):
            out[key] = self.counters.get(key, 0)
        out.update({k: v for k, v in self.counters.items() if k not in out})
        if numbers:
            out["submit_times"] = {number: _times(times) for number, times in self._submit_times.items()}
        return out

    def submit_times(self, number: str) -> list[float]:
        """Loop times at which messages to ``number`` arrived (the first part of each)."""
        return _times(self._submit_times.get(number, ()))

    def write_stats(self, path: Path) -> None:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(json.dumps(self.stats(numbers=True), default=str))
        os.replace(tmp, path)

    async def _write_stats_periodically(self, path: Path) -> None:
        while True:
            await asyncio.sleep(1.0)
            self.write_stats(path)


def _times(times: Any) -> list[float]:
    """A number's submit times as a list (see :meth:`SmscSimulator._track`)."""
    return [times] if type(times) is float else list(times)


class _SingleDest:
    """A view of a submit_multi as a submit_sm to one of its destinations."""

    __slots__ = ("_pdu", "dest_addr_ton", "dest_addr_npi", "destination_addr")

    def __init__(self, pdu: Any, dest: SmeAddress) -> None:
        self._pdu = pdu
        self.dest_addr_ton = dest.ton
        self.dest_addr_npi = dest.npi
        self.destination_addr = dest.address

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pdu, name)


def _sample(text: bytes, data_coding: int) -> bytes:
    """The receipt's ``text:`` field: the first 20 characters when they are plain ASCII."""
    if data_coding == 0x08:
        if not text or text[0]:
            return b""  # starts with a non-ASCII character (or is empty)
        head = text[:40]
        # ASCII in UTF-16BE: every even octet is 0 and every odd one < 0x80
        if head[0::2].count(0) == len(head) // 2 and head[1::2].isascii():
            return head[1::2]
        return b""
    head = text[:20]
    return head if head.isascii() and 0x1B not in head else b""
