"""Fuzz targets: one function per target, each taking the fuzzer's bytes.

The same functions run under atheris (coverage-guided, ``python -m
tests.fuzz.run``) and under hypothesis (``tests/fuzz/test_fuzz.py``).  A
target returns for any input the code under test handles as it promises, and
raises for a finding: an exception the code does not document (a crash), or
:class:`Broken` (an AssertionError naming the promise that did not hold).

Targets and their oracles:

``smpp_codec``
    ``decode`` and ``PduDecoder`` raise only ``SmppProtocolError``; every PDU
    or error consumes at least a header; a fatal error is sticky; the outcome
    does not depend on how the octets are split over reads; a decoded PDU that
    the (strict) encoder accepts decodes again to the same PDU.
``smpp_session``
    ``Session.receive_data`` / ``handle_timers`` never raise; every
    ProtocolError event is answered by exactly one generic_nack carrying its
    sequence number and status; a fatal one closes the session; whatever the
    session writes decodes; answering a request fails only on a closed session.
``dlr_receipt``
    ``parse_receipt`` never raises on a deliver_sm / data_sm as the codec
    gives it; id keys are non-empty strings; a receipt carrying
    receipted_message_id meets the submit_sm_resp that wrote that id, in
    every id scheme; receipt dates are None or aware datetimes.
``engine_deliver``
    The engine accepts any deliver_sm / data_sm a carrier sends (receipt or
    MO) without raising: what the pool would otherwise answer with
    ESME_RX_T_APPN, so the carrier re-sends it for ever.
``http_api``
    ``HttpApi.handle`` (a real engine and SQLite store) answers any method,
    path, query, header and body with a well-formed reply: never 500 (the
    only 5xx are /readyz's "not ready" and backpressure), every 4xx on a JSON
    route an RFC 9457 problem whose ``status`` is the reply's, JSON bodies
    decode, the reply can be rendered by the server.
``http_server``
    The HTTP/1.1 server fed raw octets (split over reads): nothing escapes to
    the event loop, the output is a sequence of well-formed HTTP/1.1
    responses, one per request handled, in order, none 5xx; a malformed
    request gets 400 and the connection is closed after it.
``text``
    ``plan`` raises only TextError for any string (lone surrogates
    included); a plan's parts read back to the wire form; the receive-side
    helpers (``decode_wire``, ``parse_concat_udh``) raise only TextError.
"""

from __future__ import annotations

import asyncio
import atexit
import datetime as _dt
import os
import random
import shutil
import socket
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote

import msgspec

from engine.api.auth import hash_token
from engine.api.schema import PROBLEM_TYPES
from engine.dlr import Correlator, IdScheme, Receipt, parse_receipt, receipt_datetime, state_for_stat
from engine.numbers import NumberError, from_smpp, normalize
from engine.smpp.codec import PduDecoder, decode, encode
from engine.smpp.constants import RESPONSE_BIT, CommandId, Tag
from engine.smpp.errors import SmppEncodeError, SmppProtocolError, SmppStateError
from engine.smpp.pdu import PDU_TYPES, BindTransceiver, DataSm, DeliverSm, GenericNack, NetworkErrorCode, Pdu
from engine.smpp.session import (
    Event,
    Idle,
    IllegalRequest,
    ProtocolError,
    Request,
    Response,
    Role,
    Session,
    State,
    Timeout,
    Unbound,
    UnexpectedResponse,
)
from engine.text import TextError, count_characters, decode_wire, parse_concat_udh, plan, resolve_profile, wire_form
from tests.smpp.strategies import expected_after_roundtrip

__all__ = ["Broken", "Target", "TARGETS", "TOKEN", "close_harnesses"]


class Broken(AssertionError):
    """A promise of the code under test did not hold for this input."""


def expect(condition: object, message: str) -> None:
    if not condition:
        raise Broken(message)


def _cuts(data: bytes, most: int = 6) -> list[bytes]:
    """``data`` split into reads at points derived from the data itself (reproducible)."""
    if len(data) < 2:
        return [data]
    rng = random.Random(zlib.crc32(data))
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(1, most))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


# --- smpp_codec ------------------------------------------------------------------------


def _check_protocol_error(exc: SmppProtocolError) -> None:
    expect(type(exc.status) is int and 0 <= exc.status <= 0xFFFFFFFF, f"status {exc.status!r}")
    expect(type(exc.fatal) is bool, f"fatal {exc.fatal!r}")
    expect(exc.sequence_number is None or type(exc.sequence_number) is int, f"sequence_number {exc.sequence_number!r}")
    str(exc)


def _check_roundtrip(pdu: Pdu) -> None:
    expect(isinstance(pdu, Pdu) and type(pdu) in PDU_TYPES, f"decoded into {type(pdu).__name__}")
    try:
        again = encode(pdu)
    except SmppEncodeError:
        return  # lenient decoding kept what the strict encoder refuses (a 17-character time, …)
    back = decode(again)
    expect(back == expected_after_roundtrip(pdu), f"round trip changed the PDU: {pdu!r} -> {back!r}")


def _stream(chunks: list[bytes]) -> tuple[list[Any], int]:
    """Feed ``chunks`` to one PduDecoder, draining after each: (outcomes, octets left, -1 after a fatal error)."""
    dec = PduDecoder()
    outcomes: list[Any] = []
    budget = sum(map(len, chunks)) + 2 * len(chunks) + 2
    for chunk in chunks:
        dec.feed(chunk)
        while True:
            budget -= 1
            expect(budget >= 0, "next_pdu keeps returning without consuming input (hang)")
            before = dec.buffered
            try:
                pdu = dec.next_pdu()
            except SmppProtocolError as exc:
                _check_protocol_error(exc)
                # a fatal error's sequence_number depends on whether the header had arrived
                # when the length was judged (None until then): not compared
                outcomes.append(("error", exc.status, exc.fatal, None if exc.fatal else exc.sequence_number))
                if exc.fatal:
                    try:
                        dec.next_pdu()
                    except SmppProtocolError as again:
                        expect(again.fatal, "after a fatal error, a later call raised a non-fatal one")
                    else:
                        raise Broken("after a fatal error, next_pdu returned instead of raising again")
                    return outcomes, -1
                expect(dec.buffered <= before - 16, "a non-fatal error consumed less than a header")
                continue
            if pdu is None:
                expect(dec.buffered == before, "next_pdu returned None but consumed octets")
                break
            expect(dec.buffered <= before - 16, "a PDU consumed less than a header")
            outcomes.append(("pdu", pdu))
    return outcomes, dec.buffered


def smpp_codec(data: bytes) -> None:
    try:
        pdu = decode(data)
    except SmppProtocolError as exc:
        _check_protocol_error(exc)
    else:
        _check_roundtrip(pdu)
    whole, left = _stream([data])
    chunks = _cuts(data)
    if len(chunks) > 1:
        split, split_left = _stream(chunks)
        expect(split == whole and split_left == left, f"split over reads {[len(c) for c in chunks]}: {split} != {whole}")
    for outcome in whole:
        if outcome[0] == "pdu":
            _check_roundtrip(outcome[1])


# --- smpp_session ------------------------------------------------------------------------

_RESPONSE_CLASS = {cls.command_id & ~RESPONSE_BIT: cls for cls in PDU_TYPES if cls.command_id & RESPONSE_BIT and cls is not GenericNack}
_EVENT_TYPES = (Request, Response, Timeout, Unbound, ProtocolError, IllegalRequest, UnexpectedResponse, Idle)


def _frames(data: bytes) -> list[Pdu]:
    """What the session wrote: it must be valid SMPP, every octet of it."""
    dec = PduDecoder()
    dec.feed(data)
    out = []
    try:
        while (pdu := dec.next_pdu()) is not None:
            out.append(pdu)
    except SmppProtocolError as exc:
        raise Broken(f"the session wrote octets that do not decode: {exc}; {data.hex()}") from None
    expect(dec.buffered == 0, f"the session wrote a partial frame: {data.hex()}")
    return out


def smpp_session(data: bytes) -> None:
    """data[0]: bit 0 the role (1 SMSC, 0 ESME, which has sent a bind_transceiver),
    bits 1-7 the read size (0: all at once; at most 24 reads); the rest is what the peer sends."""
    if not data:
        return
    head, data = data[0], data[1:]
    role = Role.SMSC if head & 1 else Role.ESME
    session = Session(role, window=4, response_timeout=5.0, enquire_link_interval=3.0, inactivity_timeout=7.0)
    now = 0.0
    if role is Role.ESME:
        session.send(BindTransceiver(system_id="denpo", password="secret"), now)
        session.data_to_send()
    step = head >> 1
    if step:
        step = max(step, -(-len(data) // 24))  # at most 24 reads: time goes to inputs, not to tiny reads
    reads = [data[i : i + step] for i in range(0, len(data), step)] if step else [data]
    fatal = False
    for chunk in reads:
        was_closed = session.state is State.CLOSED
        events = session.receive_data(chunk, now)
        expect(not (was_closed and events), f"a closed session produced events: {events}")
        nacks = []
        requests = []
        for ev in events:
            expect(type(ev) in _EVENT_TYPES, f"unknown event {ev!r}")
            if type(ev) is ProtocolError:
                expect(isinstance(ev.error, SmppProtocolError), f"ProtocolError holds {ev.error!r}")
                _check_protocol_error(ev.error)
                nacks.append((ev.error.sequence_number or 0, ev.error.status))
                fatal = fatal or ev.error.fatal
            elif type(ev) is Request:
                requests.append(ev.pdu)
        written = _frames(session.data_to_send())
        sent_nacks = [(p.sequence_number, p.command_status) for p in written if type(p) is GenericNack]
        expect(sent_nacks == nacks, f"protocol errors {nacks} but generic_nacks {sent_nacks}")
        if fatal:
            expect(session.state is State.CLOSED, f"a fatal protocol error left the session {session.state}")
        for pdu in requests:  # answer as a caller does (outbind and alert_notification take none)
            resp_cls = _RESPONSE_CLASS.get(pdu.command_id)
            if resp_cls is None or pdu.command_id in (CommandId.OUTBIND, CommandId.ALERT_NOTIFICATION):
                continue
            try:
                session.send(resp_cls(sequence_number=pdu.sequence_number), now)
            except SmppStateError:
                expect(session.state is State.CLOSED, f"answering {type(pdu).__name__} refused in state {session.state}")
        _frames(session.data_to_send())
        now += 1.0
        timer_events = session.handle_timers(now)
        expect(all(type(ev) in (Timeout, Idle) for ev in timer_events), f"timer events {timer_events}")
        _frames(session.data_to_send())
    if fatal:
        expect(session.receive_data(b"\x00\x00\x00\x10\x00\x00\x00\x15\x00\x00\x00\x00\x00\x00\x00\x01", now) == [], "events after a fatal error")
        expect(session.data_to_send() == b"", "output after a fatal error")


# --- deliver_sm as a carrier sends it (dlr_receipt, engine_deliver) ----------------------------


def deliver_pdu(data: bytes) -> tuple[Pdu, int]:
    """A deliver_sm / data_sm built from fuzz octets, then encoded and decoded as the wire
    gives it to the engine; and a selector octet for the caller.

    data[0] esm_class, data[1] data_coding, data[2] flags, data[3] message_state octet,
    data[4] selector; then receipted_message_id, source_addr, destination_addr and
    network_error_code, each one length octet and its octets; the rest is the text.
    Flags: 1 text in message_payload, 2 a receipted_message_id TLV, 4 a message_state
    TLV, 8 a network_error_code TLV, 16 data_sm, 32 receipted_message_id without its
    NUL, 64 message_state as 2 octets."""
    head = data[:5].ljust(5, b"\x00")
    esm, dc, flags, state, selector = head
    pos = 5
    fields = []
    for _ in range(4):
        n = data[pos] if pos < len(data) else 0
        fields.append(data[pos + 1 : pos + 1 + n])
        pos += 1 + n
    rid, src, dst, nec = fields
    text = data[pos:]
    tlvs: dict[int, Any] = {}
    if flags & 2:
        tlvs[Tag.RECEIPTED_MESSAGE_ID] = rid + (b"" if flags & 32 else b"\x00")
    if flags & 4:
        tlvs[Tag.MESSAGE_STATE] = bytes([state, state]) if flags & 64 else bytes([state])
    if flags & 8:
        tlvs[Tag.NETWORK_ERROR_CODE] = nec[:3] if len(nec) != 3 else bytes(nec)
    src_s, dst_s = src[:20].replace(b"\x00", b"").decode("latin-1"), dst[:20].replace(b"\x00", b"").decode("latin-1")
    if flags & 16:
        tlvs[Tag.MESSAGE_PAYLOAD] = text
        pdu: Pdu = DataSm(sequence_number=7, source_addr=src_s, destination_addr=dst_s, esm_class=esm, data_coding=dc, tlvs=tlvs)
    elif flags & 1 or len(text) > 254:
        tlvs[Tag.MESSAGE_PAYLOAD] = text
        pdu = DeliverSm(sequence_number=7, source_addr=src_s, destination_addr=dst_s, esm_class=esm, data_coding=dc, tlvs=tlvs)
    else:
        pdu = DeliverSm(sequence_number=7, source_addr=src_s, destination_addr=dst_s, esm_class=esm, data_coding=dc, short_message=text, tlvs=tlvs)
    return decode(encode(pdu)), selector


_SCHEMES = [IdScheme(response=r, receipt_text=t) for r in ("string", "hex", "decimal") for t in ("string", "hex", "decimal", "auto")]
_OPT_STR = (str, type(None))


def _check_receipt(r: Receipt) -> None:
    expect(type(r) is Receipt, f"parse_receipt gave {r!r}")
    expect(type(r.message_id) is str and r.message_id == (r.tlv_id or r.text_id or ""), f"message_id {r.message_id!r}")
    for name in ("tlv_id", "text_id", "stat", "err", "submit_date", "done_date", "sub", "dlvrd", "text"):
        expect(isinstance(getattr(r, name), _OPT_STR), f"{name} = {getattr(r, name)!r}")
    expect(r.state is None or (type(r.state) is int and 1 <= r.state <= 8), f"state {r.state!r}")
    expect(r.final is (r.state in (2, 3, 4, 5, 8)) and r.delivered is (r.state == 2), f"final/delivered for state {r.state}")
    expect(r.network_error is None or (len(r.network_error) == 2 and all(type(v) is int for v in r.network_error)), "network_error")
    for raw in (r.submit_date, r.done_date):
        when = receipt_datetime(raw)
        expect(when is None or (isinstance(when, _dt.datetime) and when.tzinfo is not None), f"receipt_datetime({raw!r}) = {when!r}")
    if r.stat is not None:
        expect(state_for_stat(r.stat) in (None, *range(1, 9)), f"state_for_stat({r.stat!r})")
    for scheme in _SCHEMES:
        keys = scheme.receipt_keys(r)
        expect(type(keys) is tuple and all(type(k) is str and k for k in keys), f"{scheme}: keys {keys!r}")
        if r.text_id:
            tk = scheme.text_keys(r.text_id)
            expect(all(type(k) is str and k for k in tk) and len(set(tk)) == len(tk), f"{scheme}: text keys {tk!r}")
        if r.tlv_id:
            # the submit_sm_resp that wrote this id is the one the receipt meets
            correlator = Correlator(schemes={"c": scheme})
            held = correlator.register("c", r.tlv_id, "ref", 0.0)
            expect(held == [], "a fresh correlator released a receipt")
            expect(correlator.match("c", r, 0.0) == "ref", f"{scheme}: receipt with TLV id {r.tlv_id!r} did not meet its response")


def dlr_receipt(data: bytes) -> None:
    pdu, _selector = deliver_pdu(data)
    receipt = parse_receipt(pdu)
    if receipt is None:
        return  # an MO message, or a receipt with neither id nor state: documented
    _check_receipt(receipt)


# --- text ------------------------------------------------------------------------------------

_TEXT_PROFILES = ("au", "docomo", "softbank", "rakuten", "generic")


def text(data: bytes) -> None:
    """data[0]: bits 0-2 the profile, bit 6 UDH for the receive side, bit 7 UTF-16LE
    (lone surrogates included) instead of UTF-8 with surrogateescape; data[1:3] the
    concatenation reference; data[3] a data_coding for the receive side; the rest the text."""
    head = data[:4].ljust(4, b"\x00")
    profile = resolve_profile(_TEXT_PROFILES[head[0] % 8 % len(_TEXT_PROFILES)])
    ref = int.from_bytes(head[1:3], "big")
    raw = data[4:]
    s = raw.decode("utf-16-le", "surrogatepass") if head[0] & 0x80 and len(raw) % 2 == 0 else raw.decode("utf-8", "surrogateescape")
    try:
        p = plan(s, profile, ref=ref)
    except TextError as exc:
        expect(type(exc.reason) is str and exc.reason, f"TextError without a reason: {exc!r}")
    else:
        wire = wire_form(s, profile)
        expect(p.characters == count_characters(wire), f"characters {p.characters} != {count_characters(wire)}")
        if p.concatenation == "payload":
            back = decode_wire(p.segments[0], p.data_coding, profile)
        else:
            udh = p.concatenation in ("udh8", "udh16")
            back = "".join(decode_wire(seg, p.data_coding, profile, udh=udh) for seg in p.segments)
        if not (profile.gsm7_packed and back + "\r" == wire):
            expect(back == wire, f"parts read back {back!r}, wire form {wire!r}")
    # the receive side, on arbitrary octets
    for errors in ("strict", "replace"):
        try:
            out = decode_wire(raw, head[3], profile, udh=bool(head[0] & 0x40), errors=errors)
        except TextError:
            pass  # documented: a bad UDH, an unsupported data_coding, undecodable octets when strict
        else:
            expect(type(out) is str, f"decode_wire gave {out!r}")
    try:
        info = parse_concat_udh(raw)
    except TextError:
        pass
    else:
        expect(info is None or (0 < info.header_octets <= len(raw)), f"parse_concat_udh gave {info!r}")


# --- the engine and its HTTP API -------------------------------------------------------------

TOKEN = "fuzz-token-00000000000000000000000000000000"  # fixed, so that seeds can carry it
OTHER_TOKEN = "fuzz-token-11111111111111111111111111111111"
SENDERS = {"au": ["0120000001"], "docomo": ["0120000002"], "softbank": ["251000"], "rakuten": ["0120000004"]}
CARRIERS = ("au", "docomo", "softbank", "rakuten")


def _unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EngineHarness:
    """A real Engine (SQLite store in a temporary directory, every carrier configured
    but unreachable, so nothing is sent) and its HttpApi, on a loop of their own."""

    def __init__(self) -> None:
        import uvloop

        from engine.api.http import HttpApi
        from engine.engine import Engine
        from engine.ops.config import parse_config

        self.dir = Path(os.environ.get("DENPO_FUZZ_TMP") or tempfile.mkdtemp(prefix="denpo-fuzz-"))
        self.dir.mkdir(parents=True, exist_ok=True)
        port = _unused_port()
        account = {"senders": SENDERS, "rate_limit": 1e9, "burst": 1_000_000_000}
        config = parse_config({
            "store": {"path": str(self.dir / "fuzz.db")},
            "engine": {"gc_threshold": 0},
            "accounts": {
                "demo": {**account, "token_sha256": hash_token(TOKEN), "mo_url": "http://127.0.0.1:9/mo", "signing_secret": "0123456789abcdef"},
                "other": {
                    **account, "senders": {c: [f"0120000{i}11"] for i, c in enumerate(CARRIERS)},
                    "token_sha256": hash_token(OTHER_TOKEN), "allow_ips": ["192.0.2.0/24"],
                },
            },
            "carriers": {
                name: {
                    "endpoints": [{"host": "127.0.0.1", "port": port, "system_id": "denpo"}],
                    "reconnect_base_s": 3600, "reconnect_cap_s": 3600,
                    "id_response": {"au": "hex", "docomo": "decimal"}.get(name, "string"),
                }
                for name in CARRIERS
            },
            "lookup": {"prefix_fallback": True, "prefixes": {"+8190": "docomo", "+8180": "au", "+8170": "softbank"}},
            "http": {"trusted_proxies": ["127.0.0.1/32"], "max_batch": 20, "max_body_bytes": 65536},
        })
        self.loop = uvloop.new_event_loop()
        self.engine = Engine(config)
        self.loop.run_until_complete(self.engine.start())
        self.api = HttpApi(self.engine, config)
        self.last_id = "0"  # of the last message accepted by http_api
        self.closed = False

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.run(self.engine.close())
        finally:
            self.loop.close()
            if not os.environ.get("DENPO_FUZZ_TMP"):
                shutil.rmtree(self.dir, ignore_errors=True)


_harness: EngineHarness | None = None


def engine_harness() -> EngineHarness:
    global _harness
    if _harness is None or _harness.closed:
        _harness = EngineHarness()
    return _harness


def close_harnesses() -> None:
    global _harness
    if _harness is not None:
        _harness.close()
        _harness = None


def _close_at_exit() -> None:
    try:
        close_harnesses()
    except Exception:  # noqa: BLE001 - too late for the engine (executors are gone): the directory at least
        if _harness is not None and not os.environ.get("DENPO_FUZZ_TMP"):
            shutil.rmtree(_harness.dir, ignore_errors=True)


atexit.register(_close_at_exit)


# Findings in engine/engine.py that are reported, not fixed yet (that file is another
# engineer's): (exception type, engine.py function) -> what triggers it.  The fuzzer passes
# over them so that it can look further; DENPO_FUZZ_STRICT=1 turns them into findings
# again, and tests/fuzz/test_regressions.py holds each one as a strict xfail.
KNOWN_ENGINE_ISSUES: dict[tuple[str, str], str] = {}  # (exception type, engine.py function) → what; none open


def known_engine_issue(exc: BaseException) -> str | None:
    """The KNOWN_ENGINE_ISSUES entry ``exc`` is, judged by the innermost engine/engine.py frame."""
    tb, where = exc.__traceback__, None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(os.path.join("engine", "engine.py")):
            where = tb.tb_frame.f_code.co_name
        tb = tb.tb_next
    return KNOWN_ENGINE_ISSUES.get((type(exc).__name__, where or ""))


def engine_deliver(data: bytes) -> None:
    pdu, selector = deliver_pdu(data)
    h = engine_harness()
    carrier = h.engine.carriers[CARRIERS[selector % len(CARRIERS)]]
    acks: list[int] = []

    async def deliver() -> None:
        carrier.delivered(pdu, "fuzz", h.engine.now(), lambda status=0: acks.append(status))
        await asyncio.sleep(0)

    try:
        h.run(deliver())
    except Exception as exc:
        if os.environ.get("DENPO_FUZZ_STRICT") or known_engine_issue(exc) is None:
            raise
    for number in (pdu.source_addr, pdu.destination_addr):
        for call in (lambda n: from_smpp(n), lambda n: from_smpp(n, 2), normalize):
            try:
                out = call(number)
            except NumberError:
                continue
            expect(type(out) is str and out.startswith("+") and out[1:].isdigit(), f"{number!r} -> {out!r}")


# http_api input: "METHOD TARGET\nname: value\n...\n\nBODY"; an Authorization header with
# the demo account's token is added unless the input has one; "$ID" in the path is the id
# of the last message accepted.

def split_request(data: bytes) -> tuple[str, str, str, dict[str, str], bytes]:
    head, _, body = data.partition(b"\n\n")
    first, *lines = head.split(b"\n")
    method, _, target = first.decode("latin-1").partition(" ")
    raw_path, _, query = target.partition("?")
    path = unquote(raw_path) if "%" in raw_path else raw_path  # as the server hands it over
    headers: dict[str, str] = {}
    for line in lines:
        name, _, value = line.decode("latin-1").partition(":")
        key = name.strip().lower()
        headers[key] = f"{headers[key]}, {value.strip()}" if key in headers else value.strip()
    headers.setdefault("authorization", f"Bearer {TOKEN}")
    return method, path, query, headers, body


def join_request(method: str, target: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {target}", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return "\n".join(lines).encode("latin-1") + b"\n\n" + body


def check_reply(path: str, reply: Any) -> None:
    """The oracle of a reply from HttpApi.handle."""
    from engine.api.http import Reply
    from engine.api.server import _render

    expect(type(reply) is Reply, f"handle returned {reply!r}")
    status, body, ctype = reply.status, reply.body, reply.content_type
    expect(type(status) is int and 200 <= status <= 599, f"status {status!r}")
    expect(type(body) is bytes, f"body {type(body).__name__}")
    expect(all(type(n) is str and type(v) is str for n, v in reply.headers), f"headers {reply.headers!r}")
    try:
        _render(reply, "tx-1")
    except Exception as exc:  # noqa: BLE001 - the server would answer 500 instead
        raise Broken(f"the server cannot send this reply ({exc}): {reply!r}") from None
    problem = None
    if ctype == "application/problem+json":
        try:
            problem = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise Broken(f"problem body is not JSON: {body!r}") from None
        expect(isinstance(problem, dict), f"problem {problem!r}")
        kind = str(problem.get("type", "")).removeprefix("urn:denpo:problem:")
        expect(kind in PROBLEM_TYPES and problem.get("title") == PROBLEM_TYPES[kind], f"problem type/title {problem!r}")
        expect(problem.get("status") == status, f"problem status {problem.get('status')} in a {status} reply")
        expect(type(problem.get("detail")) is str, f"problem detail {problem!r}")
        errors = problem.get("errors", [])
        expect(isinstance(errors, list) and all(isinstance(e, dict) and type(e.get("field")) is str and type(e.get("reason")) is str for e in errors), f"problem errors {errors!r}")
    elif ctype == "application/json":
        try:
            msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise Broken(f"JSON reply does not decode: {body!r}") from None
    elif ctype.startswith("text/plain"):
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            raise Broken(f"text reply is not UTF-8: {body!r}") from None
    if status >= 500:
        allowed = (path == "/readyz" and status == 503) or (status == 503 and problem is not None and problem["type"].endswith(":backpressure"))
        expect(allowed, f"{status} for {path!r}: {body[:500]!r}")
    # every 4xx is a problem, but Kannel's (plain text, as Kannel answers) and /readyz's 404 for
    # a carrier not configured (the operator's probe, its own JSON: engine.ops.metrics.readiness)
    if 400 <= status < 500 and path != "/cgi-bin/sendsms" and not (path == "/readyz" and status == 404 and ctype == "application/json"):
        expect(problem is not None, f"{status} without a problem body: {ctype} {body[:200]!r}")


def http_api(data: bytes) -> None:
    from engine.api.http import Request

    method, path, query, headers, body = split_request(data)
    h = engine_harness()
    if "$ID" in path:  # the last message accepted, so that reading and cancelling meet real ones
        path = path.replace("$ID", h.last_id)
    reply = h.run(h.api.handle(Request(method, path, query, headers, body, "127.0.0.1:40000")))
    check_reply(path, reply)
    if reply.status == 202 and path == "/v1/messages":
        h.last_id = msgspec.json.decode(reply.body)["id"]


# --- http_server: the HTTP/1.1 server on raw octets ---------------------------------------------


class _Transport(asyncio.Transport):
    """In memory: records writes, half-close, close, and read pausing."""

    def __init__(self, conn: Any) -> None:
        super().__init__()
        self.conn = conn
        self.out = bytearray()
        self.eof = self.closed = self.paused = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def write(self, data: Any) -> None:
        expect(not self.eof and not self.closed, f"write after {'write_eof' if self.eof else 'close'}: {bytes(data)[:200]!r}")
        self.out += data

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        expect(not self.eof and not self.closed, "write_eof twice or after close")
        self.eof = True

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)

    def abort(self) -> None:
        self.close()

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False

    def get_write_buffer_size(self) -> int:
        return 0


class _EchoApi:
    """In place of HttpApi: answers every request 200 with its number (so order shows)."""

    max_body = 300

    def __init__(self) -> None:
        self.handled = 0
        self.n = 0

    def transaction_id(self) -> str:
        self.n += 1
        return f"tx-{self.n}"

    async def handle(self, request: Any) -> Any:
        from engine.api.http import Reply

        self.handled += 1
        n = self.handled
        if n % 3 == 0:
            await asyncio.sleep(0)  # some finish later than the next one
        return Reply(200, b'{"n":%d}' % n)


class _ResponseReader:
    """httptools' response parser, collecting (status, headers, body) per response."""

    def __init__(self) -> None:
        import httptools

        self.parser = httptools.HttpResponseParser(self)
        self.responses: list[tuple[int, dict[str, str], bytes]] = []
        self.headers: dict[str, str] = {}
        self.body = bytearray()

    def on_message_begin(self) -> None:
        self.headers, self.body = {}, bytearray()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body += body

    def on_message_complete(self) -> None:
        self.responses.append((self.parser.get_status_code(), self.headers, bytes(self.body)))


async def _serve_octets(chunks: list[bytes]) -> tuple[_Transport, _EchoApi, list[dict[str, Any]]]:
    from engine.api.server import HttpServer, _Connection

    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    api = _EchoApi()
    server = HttpServer(api, max_header_bytes=400, max_url_bytes=200, max_pipeline=3)  # type: ignore[arg-type]
    server.loop = loop
    conn = _Connection(server)
    transport = _Transport(conn)
    conn.connection_made(transport)

    async def settle() -> None:
        for _ in range(50):
            if not server.tasks and not transport.paused:
                break
            await asyncio.sleep(0)
        await asyncio.sleep(0)

    for chunk in chunks:
        if transport.closed:
            break
        await settle()
        if transport.paused:  # a real transport would not deliver now
            raise Broken("reading stays paused with nothing left to answer")
        conn.data_received(chunk)
    await settle()
    if not transport.closed:
        if not conn.eof_received():  # the client half-closes; False: asyncio closes the transport
            transport.close()
    await settle()
    await asyncio.sleep(0)
    return transport, api, errors


def http_server(data: bytes) -> None:
    loop = asyncio.new_event_loop()
    try:
        transport, api, errors = loop.run_until_complete(_serve_octets(_cuts(data, 4)))
    finally:
        loop.close()
    expect(not errors, f"reached the event loop's exception handler: {errors}")
    import httptools

    reader = _ResponseReader()
    out = bytes(transport.out)
    try:
        reader.parser.feed_data(out)
    except httptools.HttpParserError as exc:
        raise Broken(f"the server wrote what is not HTTP/1.1 ({exc}): {out[:500]!r}") from None
    responses = [r for r in reader.responses if r[0] != 100]  # interim 100 Continue
    answered = [r for r in responses if r[0] == 200]
    expect([msgspec.json.decode(b)["n"] for _s, _h, b in answered] == list(range(1, len(answered) + 1)), f"replies out of order: {responses}")
    expect(len(answered) == api.handled, f"{api.handled} requests handled, {len(answered)} answered")
    for i, (status, headers, body) in enumerate(responses):
        expect(status < 500, f"{status} from the server: {body!r}")
        expect(headers.get("content-length") == str(len(body)), f"Content-Length {headers.get('content-length')} for {len(body)} octets")
        expect(headers.get("x-transaction-id"), "no X-Transaction-Id")
        if status != 200:
            expect(i == len(responses) - 1, f"a {status} is not the last response: {responses}")
            expect(headers.get("connection") == "close", f"a {status} without Connection: close")
            expect(headers.get("content-type") == "application/problem+json", f"a {status} is not a problem: {headers}")
            problem = msgspec.json.decode(body)
            expect(problem.get("status") == status, f"problem {problem}")
            expect(transport.eof or transport.closed, f"the connection stays open after a {status}")
    expect(transport.eof or transport.closed, "the connection stays open after the client closed its side")


# --- the registry -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], None]
    max_len: int  # the longest input worth generating
    doc: str


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("smpp_codec", smpp_codec, 1024, "SMPP frame splitting and PDU body decoding, TLVs, C-octet strings"),
        Target("smpp_session", smpp_session, 1024, "the session's read path: bad frames get generic_nack / close"),
        Target("dlr_receipt", dlr_receipt, 512, "delivery-receipt text parser and message id normalisation"),
        Target("engine_deliver", engine_deliver, 512, "the engine taking any deliver_sm / data_sm (receipt or MO)"),
        Target("http_api", http_api, 2048, "HttpApi.handle on arbitrary method, path, query, headers, body"),
        Target("http_server", http_server, 2048, "the HTTP/1.1 server's request parsing on raw octets"),
        Target("text", text, 1024, "the text planner on any string, and the receive-side decoders"),
    )
}
