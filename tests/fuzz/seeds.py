"""Seed inputs per fuzz target — valid examples built with the real encoders, so the
fuzzer starts from inputs that reach deep — and :func:`fuzz_input`, the hypothesis
strategy the CI tests and the fallback runner use (arbitrary octets, or a seed
with a few byte-level mutations).

Seeds are generated, not stored: nothing here needs a corpus in git.
"""

from __future__ import annotations

import struct
from typing import Callable

from hypothesis import strategies as st

from engine.smpp.codec import encode
from engine.smpp.constants import Tag
from engine.smpp.pdu import (
    PDU_TYPES,
    BindTransceiver,
    BindTransceiverResp,
    DataSm,
    DeliverSm,
    DistributionList,
    EnquireLink,
    GenericNack,
    NetworkErrorCode,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    Unbind,
    UnsuccessSme,
)
from tests.fuzz.targets import OTHER_TOKEN, TOKEN, join_request

__all__ = ["SEEDS", "fuzz_input"]

RECEIPT = b"id:%s sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:%s err:000 text:Hello"


def _pdus() -> list[bytes]:
    out = [encode(cls(sequence_number=i + 1)) for i, cls in enumerate(PDU_TYPES)]
    udh = bytes([5, 0, 3, 0x42, 2, 1]) + "お届け物".encode("utf-16-be")
    out += [
        encode(BindTransceiver(sequence_number=1, system_id="denpo", password="secret", system_type="SMPP", address_range="^81")),
        encode(SubmitSm(
            sequence_number=2, source_addr="0120000002", dest_addr_ton=1, dest_addr_npi=1, destination_addr="819012345678",
            esm_class=0x40, registered_delivery=1, data_coding=8, short_message=udh,
            validity_period="261122120000000+", tlvs={Tag.USER_MESSAGE_REFERENCE: 7, 0x1401: b"vendor"},
        )),
        encode(SubmitSm(sequence_number=3, destination_addr="819012345678", tlvs={
            Tag.MESSAGE_PAYLOAD: "長い本文".encode("utf-16-be") * 30, Tag.SAR_MSG_REF_NUM: 0x1234,
            Tag.SAR_TOTAL_SEGMENTS: 2, Tag.SAR_SEGMENT_SEQNUM: 1,
        })),
        encode(DeliverSm(
            sequence_number=4, source_addr="819012345678", destination_addr="0120000002", esm_class=0x04,
            short_message=RECEIPT % (b"16fee0e525", b"DELIVRD"),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: "16fee0e525", Tag.MESSAGE_STATE: 2, Tag.NETWORK_ERROR_CODE: NetworkErrorCode(3, 11)},
        )),
        encode(SubmitMulti(sequence_number=5, source_addr="0120000001", dest_addresses=(SmeAddress("819012345678", 1, 1), DistributionList("staff")), short_message=b"hi")),
        encode(SubmitMultiResp(sequence_number=5, message_id="abc", unsuccess_smes=(UnsuccessSme("819012345678", 0x0B, 1, 1),))),
        encode(SubmitSmResp(sequence_number=6, message_id="0A1B2C")),
        encode(SubmitSmResp(sequence_number=6, command_status=0x58)),
        encode(DataSm(sequence_number=7, source_addr="819012345678", destination_addr="0120000002", tlvs={Tag.MESSAGE_PAYLOAD: b"hello", Tag.ADDITIONAL_STATUS_INFO_TEXT: "ok"})),
        encode(GenericNack(sequence_number=8, command_status=0x03)),
        encode(EnquireLink(sequence_number=9)) + encode(Unbind(sequence_number=10)),  # two frames in one read
    ]
    return out


def _session() -> list[bytes]:
    smsc = [
        encode(BindTransceiver(sequence_number=1, system_id="denpo", password="secret")),
        encode(EnquireLink(sequence_number=2)),
        encode(SubmitSm(sequence_number=3, destination_addr="819012345678", registered_delivery=1, short_message=b"hello")),
        encode(Unbind(sequence_number=4)),
    ]
    esme = [
        encode(BindTransceiverResp(sequence_number=1, system_id="smsc")),
        encode(DeliverSm(sequence_number=11, esm_class=0x04, short_message=RECEIPT % (b"1", b"DELIVRD"))),
        encode(EnquireLink(sequence_number=12)),
        encode(SubmitSmResp(sequence_number=99, message_id="x")),  # answers nothing of ours
        encode(Unbind(sequence_number=13)),
    ]
    out = []
    for step in (0, 1, 7, 16):
        out.append(bytes([step << 1 | 1]) + b"".join(smsc))
        out.append(bytes([step << 1]) + b"".join(esme))
    out.append(bytes([1]) + smsc[0] + b"\x00\x00\x00\x05\x00\x00\x00\x04")  # then an impossible command_length
    out.append(bytes([0]) + esme[0] + struct.pack(">IIII", 17, 0x15, 0, 5) + b"\x00")  # enquire_link with a body octet
    out.append(bytes([0]) + esme[0] + struct.pack(">IIII", 16, 0x1234, 0, 6))  # unknown command
    return out


def deliver_input(esm: int, dc: int, flags: int, state: int, selector: int, text: bytes, rid: bytes = b"", src: bytes = b"819012345678", dst: bytes = b"0120000002", nec: bytes = b"") -> bytes:
    """An input of targets.deliver_pdu's layout."""
    return bytes([esm, dc, flags, state, selector]) + b"".join(bytes([len(f)]) + f for f in (rid, src, dst, nec)) + text


def _receipts() -> list[bytes]:
    udh = bytes([5, 0, 3, 0x42, 2, 1])
    return [
        deliver_input(0x04, 0, 2 | 4 | 8, 2, 0, RECEIPT % (b"16fee0e525", b"DELIVRD"), b"16fee0e525", nec=b"\x03\x00\x0b"),
        deliver_input(0x04, 0, 0, 0, 1, RECEIPT % (b"98765432101", b"UNDELIV")),
        deliver_input(0x04, 0, 0, 0, 2, b"ID:abc-123 Sub:1 Dlvrd:0 Submit_Date:20261121120000 Done_date:2611211201 Stat:expired Err:x1 Text:a b:c"),
        deliver_input(0x04, 0, 0, 0, 3, b"id:7 stat:ENROUTE"),
        deliver_input(0x20, 0, 2, 0, 0, b"", b"0A1B"),
        deliver_input(0x04, 0, 4, 7, 1, b"id:00000042 submit date:2611211200 done date:2611211201 stat:UNKNOWN err:000"),
        deliver_input(0x04, 8, 0, 0, 2, (RECEIPT % (b"1", b"DELIVRD")).decode().encode("utf-16-be")),
        deliver_input(0x04, 0, 1, 0, 3, RECEIPT % (b"55", b"REJECTD")),
        deliver_input(0x04, 0, 16 | 2, 0, 0, RECEIPT % (b"5", b"DELIVRD"), b"5"),
        deliver_input(0x00, 8, 0, 0, 1, "こんにちは".encode("utf-16-be")),  # MO
        deliver_input(0x40, 8, 0, 0, 1, udh + "前半".encode("utf-16-be")),  # MO part 1 of 2
        deliver_input(0x40, 8, 0, 0, 1, bytes([5, 0, 3, 0x42, 2, 2]) + "後半".encode("utf-16-be")),
        deliver_input(0x00, 0, 0, 0, 0, b"STOP", src=b"09012345678", dst=b"0120000001"),
        deliver_input(0x00, 0, 1, 0, 2, b"hello " * 60, src=b"+819012345678", dst=b"0120000002"),
    ]


_MSG = b'{"to": "090-1234-5678", "text": "\\u304a\\u5c4a\\u3051\\u7269\\u306e\\u3054\\u6848\\u5185\\u3067\\u3059", "carrier": "docomo"}'
_JSON = {"content-type": "application/json"}


def _api() -> list[bytes]:
    batch = b'{"messages": [%s, {"to": "080-1111-2222", "text": "x", "priority": "high", "client_ref": "r-1"}, {"to": "03-1234-5678", "text": "y"}]}' % _MSG
    return [
        join_request("POST", "/v1/messages", _JSON, _MSG),
        join_request("POST", "/v1/messages", _JSON, b'{"to": "+81 70 3456 7890", "text": "a\\nb \\ud83d\\ude00", "carrier": "au", "sender": "0120000001", "client_ref": "c-9", "validity": 60, "send_at": "2030-01-01T00:00:00+09:00"}'),
        join_request("POST", "/v1/messages", _JSON, b'{"to": "09012345678", "text": "no carrier: the lookup decides", "send_at": 1.5e9}'),
        join_request("POST", "/v1/messages/batch", _JSON, batch),
        join_request("GET", "/v1/messages/01ARZ3NDEKTSV4RRFFQ69G5FAV"),
        join_request("GET", "/v1/messages/$ID"),
        join_request("DELETE", "/v1/messages/$ID"),
        join_request("GET", "/v1/messages/$ID", {"authorization": f"Bearer {OTHER_TOKEN}", "x-forwarded-for": "192.0.2.7"}),
        join_request("DELETE", "/v1/messages/000000000000001"),
        join_request("GET", "/v1/notifications?state=dead&limit=5"),
        join_request("GET", f"/cgi-bin/sendsms?username=demo&password={TOKEN}&to=09012345678+08011112222&text=%82%A0&charset=SJIS&smsc=docomo&dlr-mask=3&dlr-url=http%3A%2F%2Fexample.com%2Fd"),
        join_request("POST", "/cgi-bin/sendsms", {"content-type": "application/x-www-form-urlencoded"}, f"username=demo&password={TOKEN}&to=09012345678&text=0042&coding=2&validity=10&deferred=1".encode()),
        join_request("GET", f"/cgi-bin/sendsms?username=other&password={OTHER_TOKEN}&to=09012345678&text=hi"),
        join_request("GET", "/healthz"),
        join_request("GET", "/readyz?carrier=au"),
        join_request("GET", "/metrics", {"accept": "application/openmetrics-text; version=1.0.0"}),
        join_request("GET", "/openapi.json"),
        join_request("POST", "/v1/messages", {"authorization": "Bearer nope", "content-type": "application/json"}, _MSG),
        join_request("POST", "/v1/messages", {"x-forwarded-for": "203.0.113.9, 127.0.0.1", "content-type": "application/merge-patch+json; charset=utf-8"}, _MSG),
        join_request("PUT", "/v1/messages/%41%42"),
    ]


def _server() -> list[bytes]:
    body = b'{"to": "090-1234-5678", "text": "x"}'
    return [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body),
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n3;ext=1\r\n!!!\r\n0\r\nTrailer: t\r\n\r\n",
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\nabcd",
        b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b?q=1 HTTP/1.1\r\nHost: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\n\r\nGET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        b"GET http://example.com/v1/messages/%E3%81%82?x=%zz HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n",
        b"GET /" + b"a" * 250 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-Long: " + b"b" * 450 + b"\r\n\r\n",
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # a TLS ClientHello on the plain port
    ]


def _texts() -> list[bytes]:
    def t(profile: int, s: str, *, ref: int = 0, dc: int = 8, flags: int = 0) -> bytes:
        return bytes([profile | flags]) + ref.to_bytes(2, "big") + bytes([dc]) + s.encode("utf-8", "surrogatepass")

    return [
        t(0, "ご予約ありがとうございます。"),
        t(1, "お届け物のご案内です\n" * 10, ref=7),
        t(2, "SoftBank 😀 " * 40),
        t(3, "あ" * 661),
        t(4, "Hello {world} [€] ^ ~ |", dc=0),
        t(4, "x" * 400, ref=300, dc=0),
        t(0, "line\r\nline\rline\n"),
        bytes([0x40 | 4, 0, 1, 8]) + bytes([5, 0, 3, 1, 2, 1]) + "あい".encode("utf-16-be"),
        bytes([0x80 | 1, 0, 0, 8]) + "\ud83d".encode("utf-16-le", "surrogatepass") + "a".encode("utf-16-le"),
    ]


SEEDS: dict[str, Callable[[], list[bytes]]] = {
    "smpp_codec": _pdus,
    "smpp_session": _session,
    "dlr_receipt": _receipts,
    "engine_deliver": _receipts,
    "http_api": _api,
    "http_server": _server,
    "text": _texts,
}


# --- hypothesis ------------------------------------------------------------------------------

_INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, ord("\n"), ord(":"), ord("%"), ord('"'), ord("\\"), ord("{"), ord("}"), ord("\r")]


@st.composite
def _mutated(draw: st.DrawFn, seeds: list[bytes], max_len: int) -> bytes:
    b = bytearray(draw(st.sampled_from(seeds)))
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.integers(0, 5))
        i = draw(st.integers(0, len(b))) if b else 0
        if op == 0 and b:  # flip or replace an octet
            i = min(i, len(b) - 1)
            b[i] = draw(st.one_of(st.integers(0, 255), st.sampled_from(_INTERESTING)))
        elif op == 1:  # insert octets
            b[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2 and b:  # delete a run
            del b[i : i + draw(st.integers(1, 16))]
        elif op == 3:  # truncate
            del b[i:]
        elif op == 4 and b:  # copy a run elsewhere
            j = draw(st.integers(0, len(b) - 1))
            b[i:i] = b[j : j + draw(st.integers(1, 32))]
        elif op == 5 and len(b) >= 4:  # a big-endian length-ish field
            i = min(i, len(b) - 2)
            b[i : i + 2] = struct.pack(">H", draw(st.sampled_from([0, 1, 2, 3, 4, 16, 255, 256, 0xFFFF])))
    return bytes(b[:max_len])


def fuzz_input(seeds: list[bytes], max_len: int) -> st.SearchStrategy[bytes]:
    """Arbitrary octets, a seed as it is, or a seed with a few mutations."""
    return st.one_of(
        st.binary(max_size=min(max_len, 512)),
        st.sampled_from(seeds),
        _mutated(seeds, max_len),
    )
