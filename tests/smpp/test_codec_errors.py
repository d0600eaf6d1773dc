"""Every class of malformed input → SmppProtocolError with the right fields; our own bad values → SmppEncodeError."""

from __future__ import annotations

import struct

import pytest

from engine.smpp.codec import DEFAULT_MAX_FRAME, PduDecoder, decode, encode
from engine.smpp.constants import CommandId, Status, Tag
from engine.smpp.errors import SmppEncodeError, SmppProtocolError
from engine.smpp.pdu import (
    PDU_TYPES,
    BindTransmitter,
    DataSm,
    DeliverSm,
    DistributionList,
    EnquireLink,
    GenericNack,
    NetworkErrorCode,
    QuerySmResp,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    UnsuccessSme,
)

from .strategies import wire_fields

ENQ = encode(EnquireLink(sequence_number=99))


def frame(command_id: int, seq: int, body: bytes = b"", status: int = 0, length: int | None = None) -> bytes:
    return struct.pack(">IIII", 16 + len(body) if length is None else length, command_id, status, seq) + body


def stream_error(data: bytes, **kw) -> tuple[SmppProtocolError, PduDecoder]:
    dec = PduDecoder(**kw)
    dec.feed(data)
    with pytest.raises(SmppProtocolError) as info:
        dec.next_pdu()
    return info.value, dec


def assert_error(err: SmppProtocolError, *, status: int, seq, command_id, fatal: bool) -> None:
    assert (err.status, err.sequence_number, err.command_id, err.fatal) == (int(status), seq, command_id, fatal), err


# --- framing: command_length -------------------------------------------------------


# How the 4 octets of command_length arrive: in one read, split over reads, or
# after a complete frame in the same read.
SPLITS = {
    "one-read": (b"", (4,)),
    "byte-by-byte": (b"", (1, 1, 1, 1)),
    "2+2": (b"", (2, 2)),
    "after-a-frame-1+3": (ENQ, (1, 3)),
}


def _feed_length_field(dec: PduDecoder, length: int, split: str) -> list:
    """Feed the 4 octets as ``split`` says; return the PDUs seen before the last piece."""
    prefix, pieces = SPLITS[split]
    head = struct.pack(">I", length)
    seen = []
    pos = 0
    for i, n in enumerate(pieces):
        dec.feed((prefix if i == 0 else b"") + head[pos : pos + n])
        pos += n
        if i < len(pieces) - 1:  # not decidable yet: drain what is complete
            while (pdu := dec.next_pdu()) is not None:
                seen.append(pdu)
    return seen


def _assert_stays_broken(dec: PduDecoder) -> None:
    """The stream is lost: every later call raises again, whatever is fed."""
    for _ in range(3):
        dec.feed(ENQ)
        with pytest.raises(SmppProtocolError) as again:
            dec.next_pdu()
        assert again.value.fatal


@pytest.mark.parametrize("length", [0, 1, 4, 15])
def test_command_length_below_header_is_fatal_as_soon_as_4_octets_arrive(length: int) -> None:
    dec = PduDecoder()
    _feed_length_field(dec, length, "one-read")
    with pytest.raises(SmppProtocolError) as info:
        dec.next_pdu()
    assert_error(info.value, status=Status.ESME_RINVCMDLEN, seq=None, command_id=None, fatal=True)
    _assert_stays_broken(dec)


@pytest.mark.parametrize("length", [0, 8, 15])
def test_command_length_below_header_with_full_header_reports_seq(length: int) -> None:
    err, dec = stream_error(frame(CommandId.SUBMIT_SM, 1234, length=length) + ENQ)
    assert_error(err, status=Status.ESME_RINVCMDLEN, seq=1234, command_id=CommandId.SUBMIT_SM, fatal=True)
    with pytest.raises(SmppProtocolError):
        dec.next_pdu()
    with pytest.raises(SmppProtocolError) as info:
        decode(frame(CommandId.SUBMIT_SM, 1234, length=length))
    assert info.value.fatal and info.value.status == Status.ESME_RINVCMDLEN


@pytest.mark.parametrize(("max_frame", "length"), [(DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME + 1), (1000, 1001), (64, 0xFFFFFFFF)])
def test_command_length_above_max_frame_is_fatal_as_soon_as_4_octets_arrive(max_frame: int, length: int) -> None:
    dec = PduDecoder(max_frame=max_frame)
    _feed_length_field(dec, length, "one-read")
    with pytest.raises(SmppProtocolError) as info:
        dec.next_pdu()
    assert_error(info.value, status=Status.ESME_RINVCMDLEN, seq=None, command_id=None, fatal=True)
    _assert_stays_broken(dec)
    with pytest.raises(SmppProtocolError) as one_shot:
        decode(frame(CommandId.DATA_SM, 5, length=length), max_frame=max_frame)
    assert_error(one_shot.value, status=Status.ESME_RINVCMDLEN, seq=5, command_id=CommandId.DATA_SM, fatal=True)


def test_bad_length_field_split_over_reads_is_fatal_as_soon_as_4_octets_arrive() -> None:
    """Same check as the two tests above, with the 4 octets arriving in pieces.

    PRODUCT BUG (engine/smpp/codec.py, PduDecoder.feed + _stash): when fewer
    than 4 octets were stashed in ``_partial`` (``_need = 16``), later octets
    stay in ``_partial`` until 16 have arrived, so next_pdu() never sees the
    completed length field and returns None instead of raising: a peer that
    sends a bogus command_length in a short segment is not refused until 16
    octets are buffered."""
    wrong = []
    for split in ("byte-by-byte", "2+2", "after-a-frame-1+3"):
        for max_frame, length in [(DEFAULT_MAX_FRAME, 0), (DEFAULT_MAX_FRAME, 15), (DEFAULT_MAX_FRAME, DEFAULT_MAX_FRAME + 1), (64, 0xFFFFFFFF)]:
            dec = PduDecoder(max_frame=max_frame)
            seen = _feed_length_field(dec, length, split)
            assert seen == ([EnquireLink(sequence_number=99)] if SPLITS[split][0] else [])
            try:
                got = dec.next_pdu()
            except SmppProtocolError as exc:
                if (exc.status, exc.fatal) != (Status.ESME_RINVCMDLEN, True):
                    wrong.append(f"{split}, command_length {length}: {exc!r}")
                continue
            wrong.append(f"{split}, command_length {length}: next_pdu() returned {got!r} (buffered={dec.buffered})")
    assert not wrong, "\n".join(wrong)


def test_frame_at_max_frame_is_accepted() -> None:
    pdu = DataSm(sequence_number=1, tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 200})
    wire = encode(pdu)
    dec = PduDecoder(max_frame=len(wire))
    dec.feed(wire)
    assert dec.next_pdu() == pdu
    assert decode(wire, max_frame=len(wire)) == pdu


def test_oversized_frame_is_refused_even_when_it_arrives_in_one_read() -> None:
    """max_frame must not depend on how the bytes were chunked (decode() refuses this frame).

    PRODUCT BUG (engine/smpp/codec.py, PduDecoder.next_pdu, the check
    ``if length > avail or length < HEADER_SIZE``): the length is only checked
    against max_frame while the frame is incomplete, so a frame longer than
    max_frame that is already wholly in the buffer is decoded."""
    wire = encode(DataSm(sequence_number=8, tlvs={Tag.MESSAGE_PAYLOAD: b"x" * 200}))
    with pytest.raises(SmppProtocolError):
        decode(wire, max_frame=100)
    err, _dec = stream_error(wire, max_frame=100)
    assert_error(err, status=Status.ESME_RINVCMDLEN, seq=8, command_id=CommandId.DATA_SM, fatal=True)


# --- unknown command_id ------------------------------------------------------------


@pytest.mark.parametrize("command_id", [0x00000000, 0x0000000A, 0x00000099, 0x80000099, 0x00010200, 0x80000104, 0xFFFFFFFF])
def test_unknown_command_id_is_not_fatal_and_the_next_frame_decodes(command_id: int) -> None:
    bad = frame(command_id, 42, b"\x01\x02\x03")
    err, dec = stream_error(bad + ENQ)
    assert_error(err, status=Status.ESME_RINVCMDID, seq=42, command_id=command_id, fatal=False)
    assert err.status == 0x03
    assert dec.next_pdu() == EnquireLink(sequence_number=99)
    assert dec.buffered == 0
    with pytest.raises(SmppProtocolError) as info:
        decode(bad)
    assert_error(info.value, status=Status.ESME_RINVCMDID, seq=42, command_id=command_id, fatal=False)


# --- body shorter than its mandatory fields -----------------------------------------


def _full_request(cls) -> bytes:
    """An encoding whose every mandatory field is non-empty (so each cut is inside a field)."""
    values = {}
    for name, kind in wire_fields(cls):
        kname = type(kind).__name__
        if kname == "CStr":
            values[name] = "A" * min(5, kind.size - 1)
        elif kname == "Time":
            values[name] = "000001000000000R"
        elif kname == "Int":
            values[name] = 7
        elif kname == "ShortMessage":
            values[name] = b"hello"
        elif kname == "DestAddresses":
            values[name] = (SmeAddress("8190", 1, 1), DistributionList("dl"))
        elif kname == "UnsuccessSmes":
            values[name] = (UnsuccessSme("8190", 0x0B, 1, 1),)
    return encode(cls(sequence_number=31337, **values))


WITH_BODY = [c for c in PDU_TYPES if wire_fields(c)]


@pytest.mark.parametrize("cls", WITH_BODY, ids=lambda c: c.__name__)
def test_every_truncation_of_the_mandatory_body_is_rejected(cls) -> None:
    full = _full_request(cls)
    body = full[16:]
    # responses may omit the whole body (cut 0); any other cut leaves a field incomplete
    first = 1 if cls.command_id & 0x80000000 else 0
    for cut in range(first, len(body)):
        bad = frame(cls.command_id, 31337, body[:cut])
        with pytest.raises(SmppProtocolError) as info:
            decode(bad)
        assert_error(info.value, status=Status.ESME_RINVCMDLEN, seq=31337, command_id=cls.command_id, fatal=False)
        err, dec = stream_error(bad + ENQ)
        assert_error(err, status=Status.ESME_RINVCMDLEN, seq=31337, command_id=cls.command_id, fatal=False)
        assert dec.next_pdu() == EnquireLink(sequence_number=99), cut  # the next frame is intact


@pytest.mark.parametrize(
    "body",
    [
        b"SMPP3TEST",  # system_id without its NUL, nothing else
        b"SMPP3TEST\x00secret08\x00SUBMIT1\x00\x34\x00\x00",  # address_range missing entirely
        b"SMPP3TEST\x00secret08\x00SUBMIT1\x00\x34\x00\x00^81",  # address_range without its NUL
    ],
)
def test_missing_nul_is_rejected(body: bytes) -> None:
    bad = frame(CommandId.BIND_TRANSMITTER, 7, body)
    with pytest.raises(SmppProtocolError) as info:
        decode(bad)
    assert_error(info.value, status=Status.ESME_RINVCMDLEN, seq=7, command_id=CommandId.BIND_TRANSMITTER, fatal=False)
    err, dec = stream_error(bad + ENQ)
    assert_error(err, status=Status.ESME_RINVCMDLEN, seq=7, command_id=CommandId.BIND_TRANSMITTER, fatal=False)
    assert dec.next_pdu() == EnquireLink(sequence_number=99)


def test_short_message_longer_than_the_frame_is_rejected() -> None:
    body = encode(SubmitSm(short_message=b"abc"))[16:]
    sm_len_at = len(body) - 4
    assert body[sm_len_at] == 3
    bad_body = body[:sm_len_at] + b"\x09" + body[sm_len_at + 1 :]  # sm_length 9, 3 octets follow
    with pytest.raises(SmppProtocolError) as info:
        decode(frame(CommandId.SUBMIT_SM, 5, bad_body))
    assert_error(info.value, status=Status.ESME_RINVCMDLEN, seq=5, command_id=CommandId.SUBMIT_SM, fatal=False)


# --- TLV stream ----------------------------------------------------------------------


BASE = encode(DeliverSm(sequence_number=12, short_message=b"x"))[16:]


@pytest.mark.parametrize(
    "tlv_part",
    [
        "04",  # 1 octet of a TLV header
        "0424",
        "042400",  # 3 octets
        "0427 0001 02 04",  # a good TLV, then a truncated header
        "0424 000A 010203",  # length 10, 3 octets follow
        "001E 0005 616263",  # cstr overrun
        "0427 0001",  # u8 TLV with its value missing
        "0427 0001 02 FFFF FFFF 00",  # a good TLV, then a 65,535-octet length
    ],
)
def test_bad_tlv_stream(tlv_part: str) -> None:
    bad = frame(CommandId.DELIVER_SM, 12, BASE + bytes.fromhex(tlv_part))
    with pytest.raises(SmppProtocolError) as info:
        decode(bad)
    assert_error(info.value, status=Status.ESME_RINVOPTPARSTREAM, seq=12, command_id=CommandId.DELIVER_SM, fatal=False)
    assert info.value.status == 0xC0
    err, dec = stream_error(bad + ENQ)
    assert_error(err, status=Status.ESME_RINVOPTPARSTREAM, seq=12, command_id=CommandId.DELIVER_SM, fatal=False)
    assert dec.next_pdu() == EnquireLink(sequence_number=99)


def test_bad_tlv_stream_on_a_header_only_pdu() -> None:
    bad = frame(CommandId.ENQUIRE_LINK, 3, b"\x00\x05\x00")
    with pytest.raises(SmppProtocolError) as info:
        decode(bad)
    assert_error(info.value, status=Status.ESME_RINVOPTPARSTREAM, seq=3, command_id=CommandId.ENQUIRE_LINK, fatal=False)


# --- submit_multi lists --------------------------------------------------------------


def test_bad_submit_multi_dest_flag() -> None:
    """SMPP 3.4 §5.2.25: dest_flag is 1 (SME address) or 2 (distribution list).

    Table 5-2 has a status for exactly this case, ESME_RINVDESTFLAG (0x40,
    "Destination flag is invalid (submit_multi)"), so that is the status the
    session should answer with.  PRODUCT BUG: codec._decode_dests raises a plain
    ValueError that _decode_frame maps to ESME_RINVCMDLEN (0x02)."""
    good = encode(SubmitMulti(sequence_number=21, dest_addresses=(SmeAddress("819011112222", 1, 1),), short_message=b"hi"))
    at = good.index(bytes.fromhex("01 01 01 01") + b"819011112222")  # number_of_dests, dest_flag, ton, npi
    statuses = {}
    for flag in (0, 3, 0xFF):
        bad = bytearray(good)
        bad[at + 1] = flag
        bad = bytes(bad)
        err, dec = stream_error(bad + ENQ)
        assert (err.sequence_number, err.command_id, err.fatal) == (21, CommandId.SUBMIT_MULTI, False)
        assert dec.next_pdu() == EnquireLink(sequence_number=99)  # not fatal: the stream goes on
        with pytest.raises(SmppProtocolError) as info:
            decode(bad)
        assert (info.value.sequence_number, info.value.command_id, info.value.fatal) == (21, CommandId.SUBMIT_MULTI, False)
        statuses[flag] = (hex(err.status), hex(info.value.status))
    assert statuses == {flag: ("0x40", "0x40") for flag in (0, 3, 0xFF)}  # ESME_RINVDESTFLAG


def test_submit_multi_with_more_dests_than_present() -> None:
    good = encode(SubmitMulti(sequence_number=22, dest_addresses=(SmeAddress("8190"),)))
    at = good.index(b"\x01\x01\x00\x008190")
    bad = good[:at] + b"\x05" + good[at + 1 :]  # number_of_dests 5, one present
    with pytest.raises(SmppProtocolError) as info:
        decode(bad)
    assert (info.value.sequence_number, info.value.command_id, info.value.fatal) == (22, CommandId.SUBMIT_MULTI, False)


def test_submit_multi_resp_with_truncated_unsuccess_entry() -> None:
    good = encode(SubmitMultiResp(sequence_number=23, message_id="1", unsuccess_smes=(UnsuccessSme("8190", 0x0B),)))
    for cut in range(1, 9):  # into error_status_code, the address NUL, the address
        bad = frame(CommandId.SUBMIT_MULTI_RESP, 23, good[16:-cut])
        with pytest.raises(SmppProtocolError) as info:
            decode(bad)
        assert_error(info.value, status=Status.ESME_RINVCMDLEN, seq=23, command_id=CommandId.SUBMIT_MULTI_RESP, fatal=False)


# --- decode(): one complete frame only ----------------------------------------------


@pytest.mark.parametrize("delta", [-1, +1, +16])
def test_decode_frame_whose_length_differs_from_command_length(delta: int) -> None:
    good = encode(QuerySmResp(sequence_number=61, message_id="1", message_state=2))
    data = good[:delta] if delta < 0 else good + b"\x00" * delta
    with pytest.raises(SmppProtocolError) as info:
        decode(data)
    err = info.value
    assert err.sequence_number == 61
    assert err.status == Status.ESME_RINVCMDLEN
    assert err.fatal


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x00\x00\x00"])
def test_decode_less_than_a_length_field(data: bytes) -> None:
    with pytest.raises(SmppProtocolError) as info:
        decode(data)
    assert info.value.fatal and info.value.sequence_number is None


def test_decode_accepts_bytearray_and_memoryview() -> None:
    assert decode(bytearray(ENQ)) == EnquireLink(sequence_number=99)
    assert decode(memoryview(ENQ)) == EnquireLink(sequence_number=99)


def test_protocol_error_message_names_the_pdu() -> None:
    try:
        decode(frame(0x99, 5))
    except SmppProtocolError as exc:
        assert "seq=5" in str(exc) and "ESME_RINVCMDID" in str(exc)
    else:  # pragma: no cover
        pytest.fail("no error")


# --- encoder errors ------------------------------------------------------------------


def _encode_error(pdu) -> SmppEncodeError:
    with pytest.raises(SmppEncodeError) as info:
        encode(pdu)
    assert not isinstance(info.value, SmppProtocolError)
    assert isinstance(info.value, ValueError)
    return info.value


@pytest.mark.parametrize(
    ("field", "size"),
    [("system_id", 16), ("password", 9), ("system_type", 13), ("address_range", 41)],
)
def test_encode_cstr_one_octet_too_long(field: str, size: int) -> None:
    ok = BindTransmitter(**{field: "x" * (size - 1)})
    assert len(encode(ok)) == 16 + 3 + 3 + size  # the longest legal value + its NUL
    _encode_error(BindTransmitter(**{field: "x" * size}))


@pytest.mark.parametrize(
    "pdu",
    [
        pytest.param(BindTransmitter(system_id="ab\x00c"), id="nul-in-system_id"),
        pytest.param(SubmitSm(destination_addr="8190\x00"), id="trailing-nul"),
        pytest.param(SubmitSm(destination_addr="81901234567890123456" + "7"), id="destination_addr-21-chars"),
        pytest.param(SubmitSm(source_addr="電話"), id="not-latin-1"),
        pytest.param(SubmitSm(source_addr=b"8190"), id="bytes-not-str"),
        pytest.param(SubmitMulti(dest_addresses=(SmeAddress("x" * 21),)), id="dest-address-too-long"),
        pytest.param(SubmitMulti(dest_addresses=(DistributionList("a\x00b"),)), id="dl-name-nul"),
        pytest.param(SubmitMulti(dest_addresses=("8190",)), id="dest-not-an-address"),
        pytest.param(SubmitMulti(dest_addresses=(SmeAddress("1"),) * 256), id="256-dests"),
        pytest.param(SubmitMultiResp(unsuccess_smes=(UnsuccessSme("1", 2**32),)), id="error-status-2**32"),
    ],
)
def test_encode_bad_strings_and_lists(pdu) -> None:
    _encode_error(pdu)


@pytest.mark.parametrize("value", ["2501011200000", "250101120000036+0", "250101120000036", "25010112000\x00036+"])
def test_encode_time_field_of_wrong_length(value: str) -> None:
    assert len(encode(SubmitSm(schedule_delivery_time="250101120000036+"))) == len(encode(SubmitSm())) + 16
    _encode_error(SubmitSm(schedule_delivery_time=value))
    _encode_error(QuerySmResp(final_date=value))


def test_encode_short_message_of_255_octets() -> None:
    assert decode(encode(SubmitSm(short_message=b"x" * 254))).short_message == b"x" * 254
    _encode_error(SubmitSm(short_message=b"x" * 255))
    _encode_error(DeliverSm(short_message=b"x" * 255))


@pytest.mark.parametrize("value", [256, -1, 1000])
def test_encode_u8_field_out_of_range(value: int) -> None:
    _encode_error(SubmitSm(esm_class=value))
    _encode_error(BindTransmitter(interface_version=value))
    _encode_error(SubmitMulti(dest_addresses=(SmeAddress("1", ton=value),)))


@pytest.mark.parametrize(
    "pdu",
    [
        pytest.param(EnquireLink(sequence_number=2**32), id="seq-2**32"),
        pytest.param(EnquireLink(sequence_number=-1), id="seq-negative"),
        pytest.param(GenericNack(command_status=2**32), id="status-2**32"),
        pytest.param(SubmitMultiResp(unsuccess_smes=(UnsuccessSme("1", -1),)), id="u32-negative"),
    ],
)
def test_encode_u32_out_of_range(pdu) -> None:
    _encode_error(pdu)


@pytest.mark.parametrize(
    "tlvs",
    [
        pytest.param({Tag.MESSAGE_STATE: 256}, id="u8-256"),
        pytest.param({Tag.MESSAGE_STATE: -1}, id="u8-negative"),
        pytest.param({Tag.SAR_MSG_REF_NUM: 0x10000}, id="u16-65536"),
        pytest.param({Tag.QOS_TIME_TO_LIVE: 2**32}, id="u32-2**32"),
        pytest.param({Tag.NETWORK_ERROR_CODE: NetworkErrorCode(256, 1)}, id="nec-type-256"),
        pytest.param({Tag.NETWORK_ERROR_CODE: NetworkErrorCode(3, 0x10000)}, id="nec-code-65536"),
        pytest.param({Tag.RECEIPTED_MESSAGE_ID: "x" * 65}, id="cstr-too-long"),
        pytest.param({Tag.RECEIPTED_MESSAGE_ID: "a\x00b"}, id="cstr-nul"),
        pytest.param({Tag.ADDITIONAL_STATUS_INFO_TEXT: "x" * 256}, id="cstr-256"),
        pytest.param({Tag.MESSAGE_STATE: "2"}, id="u8-str"),
        pytest.param({0x1400: 5}, id="unknown-tag-int"),
        pytest.param({0x1400: "text"}, id="unknown-tag-str"),
        pytest.param({0x1400: NetworkErrorCode(3, 1)}, id="unknown-tag-tuple"),
        pytest.param({0x10000: b""}, id="tag-over-16-bits"),
        pytest.param({Tag.MESSAGE_PAYLOAD: b"x" * 65536}, id="value-over-65535-octets"),
    ],
)
def test_encode_bad_tlv_values(tlvs: dict) -> None:
    _encode_error(DeliverSm(tlvs=tlvs))
    _encode_error(EnquireLink(tlvs=tlvs))


def test_encode_tlv_boundaries_are_accepted() -> None:
    tlvs = {
        Tag.MESSAGE_STATE: 255,
        Tag.SAR_MSG_REF_NUM: 0xFFFF,
        Tag.QOS_TIME_TO_LIVE: 0xFFFFFFFF,
        Tag.RECEIPTED_MESSAGE_ID: "x" * 64,
        Tag.ADDITIONAL_STATUS_INFO_TEXT: "y" * 255,
        Tag.NETWORK_ERROR_CODE: NetworkErrorCode(255, 0xFFFF),
        0x1400: b"",
    }
    assert decode(encode(DeliverSm(tlvs=tlvs))).tlvs == tlvs


@pytest.mark.parametrize("obj", [None, object(), b"\x00" * 16, EnquireLink, {"command_id": 0x15}])
def test_encode_non_pdu(obj) -> None:
    _encode_error(obj)
