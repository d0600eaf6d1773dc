"""Inputs the fuzzers found (tests/fuzz/run.py), each held to what it must do now.

Every test here failed before its fix.  The inputs are the fuzzers' own (shrunk
where that kept them readable); ``run(target, data)`` is the whole oracle of
the target, the assertions after it say what the fix promises.

Findings in engine/engine.py were strict xfails until fixed (its MO and receipt
paths: commit after dd9cf24); tests/fuzz/targets.py's KNOWN_ENGINE_ISSUES lets the
fuzzer pass over an engine finding not fixed yet — it is empty now.
"""

from __future__ import annotations

import gc
import os
import struct

import msgspec
import pytest

from engine.api.http import Request
from engine.smpp.session import ProtocolError, Role, Session
from tests.fuzz import targets
from tests.fuzz.seeds import deliver_input
from tests.fuzz.targets import TARGETS, engine_harness, join_request


@pytest.fixture(scope="module", autouse=True)
def _harness():
    yield
    targets.close_harnesses()


def run(target: str, data: bytes) -> None:
    TARGETS[target].run(data)


def api(data: bytes):
    method, path, query, headers, body = targets.split_request(data)
    h = engine_harness()
    return h.run(h.api.handle(Request(method, path, query, headers, body, "127.0.0.1:40000")))


# --- smpp_session ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        struct.pack(">IIII", 16, 0x1234, 0, 5),  # unknown command_id
        struct.pack(">IIII", 21, 0x15, 0, 6) + b"\x00\x01\x00\x09\x00",  # a TLV overrunning the PDU (raised in an except)
        struct.pack(">IIII", 5, 0x15, 0, 7),  # impossible command_length (fatal)
    ],
)
def test_a_session_that_reported_a_protocol_error_is_freed(frame):
    # found by atheris (the smpp_session run's RSS reached 1 GB): the ProtocolError event held
    # the exception, whose traceback (or __context__'s) held receive_data's frame, which held the
    # event list and the session: a cycle through a gc=False struct, which the collector cannot
    # see through — every malformed PDU from a carrier kept its session and read buffer for ever
    # (counted among the collector's objects: a natively built Session takes no weak reference)
    def live() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is Session)

    before = live()
    session = Session(Role.SMSC)
    events = session.receive_data(frame, 0.0)
    assert [type(e) for e in events] == [ProtocolError]
    assert "seq=" in str(events[0].error)  # what the pool logs is all still there
    assert live() == before + 1
    del session, events
    assert live() == before


# --- http_api ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "route, body",
    [
        # found by atheris: invalid UTF-8 inside a JSON string made msgspec raise UnicodeDecodeError
        # (not DecodeError; msgspec issue #714), which the API did not catch: 500
        ("/v1/messages", b'{"to": "+81 70 \xef\xbf3456 7890", "text": "a"}'),
        ("/v1/messages", b'{"to": "090-1234-5678", "text": "x", "carri\x91\x8d": "do"}'),
        ("/v1/messages/batch", b'{"messages": [{"to": "090-1234-5678", "text": "\xff"}]}'),
    ],
)
def test_invalid_utf8_in_a_json_string_is_400_malformed_json(route, body):
    data = join_request("POST", route, {"content-type": "application/json"}, body)
    run("http_api", data)
    reply = api(data)
    problem = msgspec.json.decode(reply.body)
    assert reply.status == 400, problem
    assert problem["type"] == "urn:denpo:problem:malformed_json"
    assert [e["reason"] for e in problem["errors"]] == ["malformed_json"]
    assert "UTF-8" in problem["detail"]


def test_a_batch_read_item_by_item_after_a_validation_error_meets_invalid_utf8():
    # the whole batch failed validation first (messages: 5), then the item-by-item reading
    # decoded the body again and met the bad octet: 500 before the fix
    data = join_request("POST", "/v1/messages/batch", {"content-type": "application/json"}, b'{"messages": 5, "x": "\xc3"}')
    run("http_api", data)
    reply = api(data)
    assert reply.status == 422  # the envelope is what is wrong, as for any other batch like it
    assert msgspec.json.decode(reply.body)["errors"][0]["field"] == "messages"


@pytest.mark.parametrize("charset, text", [("SJIS%00", "%82%A0"), ("undefined", "a"), ("punycode", "%40E%1B")])
def test_kannel_charset_that_python_cannot_use_is_400(charset, text):
    # found by atheris: a NUL in the charset name (ValueError: embedded null character), or a
    # codec that fails with UnicodeError rather than UnicodeDecodeError, escaped: 500
    data = join_request("GET", f"/cgi-bin/sendsms?username=demo&password={targets.TOKEN}&to=09012345678&text={text}&charset={charset}")
    run("http_api", data)
    reply = api(data)
    assert reply.status == 400, reply
    assert reply.body.startswith(b"Rejected: text: cannot be read as ")


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=`.0.0", "text/plain; version=1.x"])
def test_metrics_with_a_version_that_is_not_a_number_is_the_default_exposition(accept):
    # found by atheris: prometheus_client 0.26's choose_encoder compares the Accept header's
    # version parts as ints and raises TypeError for a part that is not a number: 500
    data = join_request("GET", "/metrics", {"accept": accept})
    run("http_api", data)
    reply = api(data)
    assert reply.status == 200
    assert reply.content_type.startswith("text/plain; version=0.0.4")
    assert b"denpo_backlog_messages" in reply.body


# --- http_server -------------------------------------------------------------------------------------


def serve(data: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    import asyncio

    loop = asyncio.new_event_loop()
    try:
        transport, _api, _errors = loop.run_until_complete(targets._serve_octets([data]))
    finally:
        loop.close()
    reader = targets._ResponseReader()
    reader.parser.feed_data(bytes(transport.out))
    return reader.responses


@pytest.mark.parametrize(
    "data",
    [b"GET http://ehttp://example.com\r\n\r\n", b"GET http://c-%E3%8\n\r\n\r\n", b"GET http:// HTTP/1.1\r\nHost: x\r\n\r\n"],
)
def test_an_absolute_form_target_that_does_not_parse_is_400(data, caplog):
    # found by atheris: httptools.parse_url raised inside the parser callback, which the server
    # took for its own failure: logged as an error and answered 500
    run("http_server", data)
    ((status, headers, body),) = serve(data)
    assert status == 400 and headers["connection"] == "close"
    assert msgspec.json.decode(body)["type"] == "urn:denpo:problem:malformed_request"
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


@pytest.mark.parametrize("accept", ["application/openmetrics-text; version=2.0\x00\x00", "application/openmetrics-text; version=2.0\xd2"])
def test_metrics_does_not_echo_an_accept_version_that_cannot_be_a_header(accept):
    # found by atheris: prometheus_client copies the asked version into Content-Type; a NUL (or
    # another character the server will not put in a header) made the reply unsendable: 500
    data = join_request("GET", "/metrics", {"accept": accept})
    run("http_api", data)
    reply = api(data)
    assert reply.status == 200
    assert reply.content_type.isascii() and reply.content_type.isprintable()


# --- engine_deliver (fixed in engine/engine.py by its owner, commit 9788a8b) -------------------------

@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setenv("DENPO_FUZZ_STRICT", "1")


@pytest.mark.parametrize("source", [b"", b"NTTDOCOMO", b"8190123456789012345"])
def test_mo_from_a_source_address_that_is_not_a_number_is_taken(strict, source):
    # _mo: from_smpp(pdu.source_addr) raises NumberError; the pool answers ESME_RX_T_APPN, for ever
    run("engine_deliver", deliver_input(0x00, 0, 0, 0, 1, b"hello", src=source))


def test_mo_with_udhi_and_a_malformed_udh_is_taken(strict):
    # _mo: parse_concat_udh(short_message) raises TextError outside the decode's try
    run("engine_deliver", deliver_input(0x40, 8, 0, 0, 1, bytes([9, 0, 3]) + "あ".encode("utf-16-be")))


def test_data_sm_mo_is_taken(strict):
    # _mo reads pdu.short_message, which data_sm does not have: AttributeError
    run("engine_deliver", deliver_input(0x00, 8, 16, 0, 1, "こんにちは".encode("utf-16-be")))


def test_unmatched_final_au_receipt_from_a_source_address_that_is_not_a_number_is_taken(strict):
    # delivered: the au pacer is pushed for from_smpp(pdu.source_addr), which raises NumberError
    receipt = b"id:123 sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:"
    run("engine_deliver", deliver_input(0x04, 0, 0, 0, 0, receipt, src=b""))


def test_ucs2_mo_with_a_lone_surrogate_is_taken(strict):
    # _mo: decode_wire keeps a lone surrogate (surrogatepass); the MO notification's JSON
    # cannot encode it (UnicodeEncodeError) — after the event was recorded, so every re-send
    # by the carrier records it again
    run("engine_deliver", deliver_input(0x00, 8, 0, 0, 1, b"\xd8\x00\x00a", dst=b"0120000002"))


def test_mo_with_an_emoji_split_across_its_parts_is_taken(strict):
    # the same, from a legitimate MO: the carrier cut a surrogate pair at the part boundary;
    # each part decodes to a lone surrogate and the joined str keeps them as two code points
    wire = "a\U0001F600b".encode("utf-16-be")
    run("engine_deliver", deliver_input(0x40, 8, 0, 0, 1, bytes([5, 0, 3, 0x77, 2, 1]) + wire[:4], dst=b"0120000002"))
    run("engine_deliver", deliver_input(0x40, 8, 0, 0, 1, bytes([5, 0, 3, 0x77, 2, 2]) + wire[4:], dst=b"0120000002"))


def test_no_engine_finding_is_waved_through():
    assert not os.environ.get("DENPO_FUZZ_STRICT")
    assert targets.KNOWN_ENGINE_ISSUES == {}


def test_mo_text_and_originator_as_reported(strict):
    # the emoji cut across two UCS-2 parts is joined whole; an alphanumeric originator is kept as given
    h = engine_harness()
    before = len(h.engine._events)
    wire = "a\U0001F600b".encode("utf-16-be")
    run("engine_deliver", deliver_input(0x40, 8, 0, 0, 1, bytes([5, 0, 3, 0x78, 2, 1]) + wire[:4], dst=b"0120000002"))
    run("engine_deliver", deliver_input(0x40, 8, 0, 0, 1, bytes([5, 0, 3, 0x78, 2, 2]) + wire[4:], dst=b"0120000002"))
    run("engine_deliver", deliver_input(0x00, 8, 0, 0, 1, b"\xd8\x00\x00a", src=b"NTTDOCOMO", dst=b"0120000002"))
    events = list(h.engine._events)[before:]
    assert [e.text for e in events][-2:] == ["a\U0001F600b", "\ufffda"]
    assert events[-1].from_ == "NTTDOCOMO"
