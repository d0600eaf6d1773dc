"""Codec round trips (hypothesis, every PDU type), exact wire bytes from the spec, TLV typing, framing."""

from __future__ import annotations

import struct

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.smpp.codec import HEADER_SIZE, TLV_KINDS, PduDecoder, decode, encode, generated_source
from engine.smpp.constants import CommandId, Status, Tag
from engine.smpp.pdu import (
    PDU_TYPES,
    AlertNotification,
    BindReceiverResp,
    BindTransceiverResp,
    BindTransmitter,
    BindTransmitterResp,
    CancelSm,
    DataSm,
    DeliverSm,
    DistributionList,
    EnquireLink,
    GenericNack,
    NetworkErrorCode,
    Outbind,
    QuerySmResp,
    ReplaceSm,
    SmeAddress,
    SubmitMulti,
    SubmitMultiResp,
    SubmitSm,
    SubmitSmResp,
    UnsuccessSme,
)

from .strategies import (
    BODY_OMITTED_ON_ERROR,
    PROPERTY_SETTINGS,
    any_pdu,
    expected_after_roundtrip,
    pdus_of,
    tlv_dicts,
    wire_fields,
)


def _header(data: bytes) -> tuple[int, int, int, int]:
    return struct.unpack_from(">IIII", data)


def test_every_pdu_type_of_smpp_34_is_covered() -> None:
    """If a PDU type is added, the strategies (and these tests) must learn about it."""
    ids = {cls.command_id for cls in PDU_TYPES}
    assert ids == {int(c) for c in CommandId}
    assert len(PDU_TYPES) == len(ids) == 27
    for cls in PDU_TYPES:
        assert f"_decode_{cls.__name__}" in generated_source(cls)
        pdus_of(cls)  # raises TypeError for a wire kind the strategies do not know


# --- property: decode(encode(p)) == p, per PDU type -------------------------------


@pytest.mark.parametrize("cls", PDU_TYPES, ids=lambda c: c.__name__)
@PROPERTY_SETTINGS
@given(data=st.data())
def test_roundtrip(cls: type, data: st.DataObject) -> None:
    pdu = data.draw(pdus_of(cls), label="pdu")
    wire = encode(pdu)
    # deterministic: same object twice, and an equal copy, give the same octets
    assert encode(pdu) == wire
    assert encode(msgspec.structs.replace(pdu)) == wire
    length, command_id, status, seq = _header(wire)
    assert length == len(wire) >= HEADER_SIZE
    assert (command_id, status, seq) == (cls.command_id, pdu.command_status, pdu.sequence_number)

    back = decode(wire)
    assert type(back) is cls
    assert back == expected_after_roundtrip(pdu)
    assert encode(back) == wire  # nothing lost: re-encoding is byte-identical

    if cls.command_id in BODY_OMITTED_ON_ERROR and pdu.command_status:
        # SMPP 3.4 §4.1.2 / §4.4.2: no body at all on error; decoded body fields are the defaults
        assert len(wire) == HEADER_SIZE
        defaults = cls()
        for name, _kind in wire_fields(cls):
            assert getattr(back, name) == getattr(defaults, name)
        assert back.tlvs == {}


@settings(PROPERTY_SETTINGS, max_examples=200)
@given(pdu=any_pdu())
def test_tlv_values_come_back_with_their_types(pdu) -> None:
    back = decode(encode(pdu))
    expected = expected_after_roundtrip(pdu)  # error responses without body carry no TLVs
    assert list(back.tlvs) == list(expected.tlvs)  # wire order kept
    for tag, value in expected.tlvs.items():
        assert type(back.tlvs[tag]) is type(value), (hex(tag), value, back.tlvs[tag])


@pytest.mark.parametrize("cls", sorted((c for c in PDU_TYPES if c.command_id in BODY_OMITTED_ON_ERROR), key=str))
def test_error_response_is_header_only(cls: type) -> None:
    kwargs = {"message_id": "12345"} if cls is SubmitSmResp else {"system_id": "SMSC"}
    pdu = cls(sequence_number=77, command_status=Status.ESME_RINVPASWD, tlvs={Tag.SC_INTERFACE_VERSION: 0x34}, **kwargs)
    wire = encode(pdu)
    assert wire == struct.pack(">IIII", 16, cls.command_id, 0x0E, 77)
    assert decode(wire) == cls(sequence_number=77, command_status=0x0E)
    # the same response with status 0 carries its body
    ok = msgspec.structs.replace(pdu, command_status=0)
    assert len(encode(ok)) > 16 and decode(encode(ok)) == ok


@pytest.mark.parametrize("cls", [BindTransmitterResp, BindReceiverResp, BindTransceiverResp, SubmitSmResp])
def test_error_response_with_a_body_anyway_is_still_decoded(cls: type) -> None:
    """Lenient decoding: some SMSCs send the body despite the error status."""
    field = "message_id" if cls is SubmitSmResp else "system_id"
    body = b"X1\x00"
    wire = struct.pack(">IIII", 16 + len(body), cls.command_id, 0x45, 3) + body
    assert decode(wire) == cls(sequence_number=3, command_status=0x45, **{field: "X1"})


# --- exact bytes -----------------------------------------------------------------


def test_spec_bind_transmitter_header_example() -> None:
    """SMPP 3.4 §3.2.2: 00 00 00 2F 00 00 00 02 00 00 00 00 00 00 00 01 = 47-octet bind_transmitter, seq 1."""
    pdu = BindTransmitter(sequence_number=1, system_id="SMPP3TEST", password="secret08", system_type="SUBMIT1")
    wire = encode(pdu)
    assert len(wire) == 47
    assert wire[:16] == bytes.fromhex("0000002F 00000002 00000000 00000001")
    assert wire[16:] == b"SMPP3TEST\x00secret08\x00SUBMIT1\x00\x34\x00\x00\x00"
    assert decode(wire) == pdu
    assert pdu.interface_version == 0x34


def test_spec_enquire_link_example() -> None:
    wire = encode(EnquireLink(sequence_number=1))
    assert wire == bytes.fromhex("00000010 00000015 00000000 00000001")
    assert decode(wire) == EnquireLink(sequence_number=1)


UDH = bytes.fromhex("050003A70201")  # IEI 00 (8-bit ref concatenation): ref 0xA7, 2 parts, part 1
UCS2_TEXT = "こんにちは".encode("utf-16-be")

EXACT = [
    pytest.param(
        SubmitSm(
            sequence_number=2,
            source_addr_ton=5,
            source_addr="DENPO",
            dest_addr_ton=1,
            dest_addr_npi=1,
            destination_addr="819012345678",
            esm_class=0x40,
            registered_delivery=1,
            data_coding=8,
            short_message=UDH + UCS2_TEXT,
        ),
        "00000042 00000004 00000000 00000002"
        "00 0500 44454E504F00 0101 38313930313233343536373800"
        "40 00 00 00 00 01 00 08 00"
        "10 050003A70201 3053 3093 306B 3061 306F",
        id="submit_sm_with_udh",
    ),
    pytest.param(
        # every 1-octet field distinct, so a swap of two fields in pdu.py shows
        SubmitMulti(
            sequence_number=5,
            service_type="CMT",
            source_addr_ton=5,
            source_addr_npi=9,
            source_addr="DENPO",
            dest_addresses=(SmeAddress("819011112222", 1, 6), DistributionList("staff")),
            esm_class=0x03,
            protocol_id=0x41,
            priority_flag=2,
            validity_period="000001000000000R",
            registered_delivery=0x11,
            replace_if_present_flag=1,
            data_coding=8,
            sm_default_msg_id=6,
            short_message=b"hi",
        ),
        "00000050 00000021 00000000 00000005"
        "434D5400 0509 44454E504F00"
        "02 01 01 06 38313930313131313232323200 02 737461666600"
        "03 41 02 00 3030303030313030303030303030305200 11 01 08 06 02 6869",
        id="submit_multi",
    ),
    pytest.param(
        SubmitMultiResp(
            sequence_number=5, message_id="abc", unsuccess_smes=(UnsuccessSme("819011112222", 0x0B, 2, 1),)
        ),
        "00000028 80000021 00000000 00000005 61626300 01 02 01 38313930313131313232323200 0000000B",
        id="submit_multi_resp",
    ),
    pytest.param(
        CancelSm(
            sequence_number=6,
            message_id="12345",
            source_addr_ton=5,
            source_addr="DENPO",
            dest_addr_ton=2,
            dest_addr_npi=1,
            destination_addr="81901",
        ),
        "00000027 00000008 00000000 00000006 00 313233343500 0500 44454E504F00 0201 383139303100",
        id="cancel_sm",
    ),
    pytest.param(
        ReplaceSm(
            sequence_number=7,
            message_id="12345",
            source_addr_ton=5,
            source_addr="DENPO",
            validity_period="000001000000000R",
            registered_delivery=1,
            short_message=b"new",
        ),
        "00000036 00000007 00000000 00000007 313233343500 0500 44454E504F00 00"
        "30303030303130303030303030303052 00 01 00 03 6E6577",
        id="replace_sm",
    ),
    pytest.param(
        Outbind(sequence_number=1, system_id="SMSC", password="pw"),
        "00000018 0000000B 00000000 00000001 534D534300 707700",
        id="outbind",
    ),
    pytest.param(
        AlertNotification(
            sequence_number=9,
            source_addr_ton=1,
            source_addr_npi=8,
            source_addr="81901",
            esme_addr_ton=5,
            esme_addr="DENPO",
            tlvs={Tag.MS_AVAILABILITY_STATUS: 0},
        ),
        "00000025 00000102 00000000 00000009 0108 383139303100 0500 44454E504F00 0422 0001 00",
        id="alert_notification",
    ),
    pytest.param(
        QuerySmResp(sequence_number=4, message_id="12345", final_date="250101120000036+", message_state=2),
        "00000029 80000003 00000000 00000004 313233343500"
        "3235303130313132303030303033362B 00 02 00",
        id="query_sm_resp",
    ),
    pytest.param(
        DataSm(
            sequence_number=3,
            service_type="WAP",
            source_addr_ton=2,
            source_addr_npi=1,
            source_addr="81901",
            dest_addr_ton=1,
            dest_addr_npi=6,
            destination_addr="81902",
            registered_delivery=1,
            data_coding=4,
            tlvs={Tag.MESSAGE_PAYLOAD: b"\x01\x02", Tag.SOURCE_PORT: 9200},
        ),
        "00000033 00000103 00000000 00000003 57415000 0201 383139303100 0106 383139303200 00 01 04"
        "0424 0002 0102 020A 0002 23F0",
        id="data_sm_with_tlvs",
    ),
    pytest.param(
        GenericNack(sequence_number=1, command_status=Status.ESME_RINVCMDID),
        "00000010 80000000 00000003 00000001",
        id="generic_nack",
    ),
]


@pytest.mark.parametrize(("pdu", "hex_wire"), EXACT)
def test_exact_wire_bytes(pdu, hex_wire: str) -> None:
    """Hand-assembled from the body layouts of SMPP 3.4 chapter 4 (independent of pdu.py)."""
    expected = bytes.fromhex(hex_wire)
    assert _header(expected)[0] == len(expected)  # the vector itself is consistent
    assert encode(pdu) == expected
    assert decode(expected) == pdu


def test_submit_sm_with_udh_decodes_to_its_parts() -> None:
    wire = bytes.fromhex(EXACT[0].values[1])
    pdu = decode(wire)
    assert isinstance(pdu, SubmitSm)
    assert pdu.esm_class & 0x40
    sm = pdu.short_message
    assert sm[0] == 5 and sm[1 : 1 + sm[0]] == UDH[1:]
    assert sm[1 + sm[0] :].decode("utf-16-be") == "こんにちは"


# --- TLV typing ------------------------------------------------------------------


def _deliver_sm_with_raw_tlvs(raw_tlvs: bytes, seq: int = 9) -> bytes:
    body = encode(DeliverSm(sequence_number=seq, esm_class=0x04, short_message=b"id:1"))[16:] + raw_tlvs
    return struct.pack(">IIII", 16 + len(body), CommandId.DELIVER_SM, 0, seq) + body


def test_tlv_values_are_typed_by_kind() -> None:
    raw = bytes.fromhex(
        "0427 0001 02"  # message_state u8
        "020C 0002 1234"  # sar_msg_ref_num u16
        "0017 0004 00010000"  # qos_time_to_live u32
        "001E 0004 61626300"  # receipted_message_id cstr "abc"
        "0423 0003 03 000C"  # network_error_code: GSM, 12
        "0424 0003 414243"  # message_payload octets
        "001D 0001 00"  # additional_status_info_text: the empty C-string
    )
    pdu = decode(_deliver_sm_with_raw_tlvs(raw))
    t = pdu.tlvs
    assert t == {
        Tag.MESSAGE_STATE: 2,
        Tag.SAR_MSG_REF_NUM: 0x1234,
        Tag.QOS_TIME_TO_LIVE: 0x10000,
        Tag.RECEIPTED_MESSAGE_ID: "abc",
        Tag.NETWORK_ERROR_CODE: NetworkErrorCode(3, 12),
        Tag.MESSAGE_PAYLOAD: b"ABC",
        Tag.ADDITIONAL_STATUS_INFO_TEXT: "",
    }
    assert type(t[Tag.MESSAGE_STATE]) is int
    assert type(t[Tag.SAR_MSG_REF_NUM]) is int
    assert type(t[Tag.QOS_TIME_TO_LIVE]) is int
    assert type(t[Tag.RECEIPTED_MESSAGE_ID]) is str
    assert type(t[Tag.NETWORK_ERROR_CODE]) is NetworkErrorCode
    assert t[Tag.NETWORK_ERROR_CODE].network_type == 3 and t[Tag.NETWORK_ERROR_CODE].error_code == 12
    assert type(t[Tag.MESSAGE_PAYLOAD]) is bytes
    assert encode(pdu)[-len(raw) :] == raw


def test_tlv_kinds_follow_the_spec_sizes() -> None:
    """A few sizes from SMPP 3.4 §5.3.2 (a wrong kind would silently turn values into raw bytes)."""
    spec = {
        Tag.DEST_ADDR_SUBUNIT: "u8",
        Tag.DEST_TELEMATICS_ID: "u16",
        Tag.QOS_TIME_TO_LIVE: "u32",
        Tag.RECEIPTED_MESSAGE_ID: "cstr",
        Tag.ADDITIONAL_STATUS_INFO_TEXT: "cstr",
        Tag.USER_MESSAGE_REFERENCE: "u16",
        Tag.SOURCE_PORT: "u16",
        Tag.DESTINATION_PORT: "u16",
        Tag.SAR_MSG_REF_NUM: "u16",
        Tag.SAR_TOTAL_SEGMENTS: "u8",
        Tag.SAR_SEGMENT_SEQNUM: "u8",
        Tag.SC_INTERFACE_VERSION: "u8",
        Tag.NETWORK_ERROR_CODE: "nec",
        Tag.MESSAGE_PAYLOAD: "octets",
        Tag.MESSAGE_STATE: "u8",
        Tag.DELIVERY_FAILURE_REASON: "u8",
        Tag.MORE_MESSAGES_TO_SEND: "u8",
        Tag.SMS_SIGNAL: "u16",
        Tag.CALLBACK_NUM: "octets",
        Tag.ITS_SESSION_INFO: "octets",
    }
    for tag, kind in spec.items():
        assert TLV_KINDS[tag] == kind, hex(tag)
    assert set(TLV_KINDS) == {int(t) for t in Tag}


@pytest.mark.parametrize(
    "raw_tlv",
    [
        "0427 0002 0002",  # message_state (u8) with 2 octets
        "0427 0000",  # ... with none
        "020C 0001 12",  # sar_msg_ref_num (u16) with 1 octet
        "020C 0003 123456",
        "0017 0002 0001",  # qos_time_to_live (u32) with 2 octets
        "0423 0002 0300",  # network_error_code with 2 octets
        "0423 0004 0300000C",
        "001E 0003 616263",  # receipted_message_id without its NUL
        "001E 0004 61006200",  # ... with an embedded NUL
        "001E 0000",  # ... empty (not even the NUL)
    ],
)
def test_known_tlv_with_wrong_size_is_kept_raw(raw_tlv: str) -> None:
    raw = bytes.fromhex(raw_tlv)
    wire = _deliver_sm_with_raw_tlvs(raw)
    pdu = decode(wire)
    tag = struct.unpack_from(">H", raw)[0]
    assert pdu.tlvs == {tag: raw[4:]}
    assert type(pdu.tlvs[tag]) is bytes
    assert encode(pdu) == wire  # byte-identical


def test_unknown_tlvs_are_kept_in_wire_order() -> None:
    raw = bytes.fromhex(
        "1400 0002 ABCD"  # vendor range
        "0005 0001 07"  # dest_addr_subunit (known)
        "FFFF 0000"  # empty unknown
        "1401 0001 00"
        "0001 0003 010203"  # reserved
    )
    wire = _deliver_sm_with_raw_tlvs(raw)
    pdu = decode(wire)
    assert list(pdu.tlvs.items()) == [
        (0x1400, b"\xab\xcd"),
        (0x0005, 7),
        (0xFFFF, b""),
        (0x1401, b"\x00"),
        (0x0001, b"\x01\x02\x03"),
    ]
    assert encode(pdu) == wire


@PROPERTY_SETTINGS
@given(tlvs=tlv_dicts(max_size=10))
def test_tlv_encoding_keeps_dict_order(tlvs: dict) -> None:
    wire = encode(GenericNack(sequence_number=1, tlvs=tlvs))
    tags = []
    p = 16
    while p < len(wire):
        tag, length = struct.unpack_from(">HH", wire, p)
        tags.append(tag)
        p += 4 + length
    assert p == len(wire)
    assert tags == list(tlvs)
    assert list(decode(wire).tlvs) == list(tlvs)


# --- framing ---------------------------------------------------------------------


def _drain(dec: PduDecoder, out: list) -> None:
    while (pdu := dec.next_pdu()) is not None:
        out.append(pdu)


@settings(PROPERTY_SETTINGS, max_examples=80)
@given(pdus=st.lists(any_pdu(), min_size=1, max_size=8), data=st.data())
def test_stream_in_random_chunks_yields_the_same_pdus(pdus: list, data: st.DataObject) -> None:
    frames = [encode(p) for p in pdus]
    stream = b"".join(frames)
    cuts = sorted(data.draw(st.sets(st.integers(1, len(stream) - 1), max_size=40), label="cuts"))
    chunks = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
    dec = PduDecoder()
    out: list = []
    fed = 0
    for chunk in chunks:
        dec.feed(chunk)
        fed += len(chunk)
        _drain(dec, out)
        # every complete frame came out at once; what is left is the incomplete tail
        done = sum(len(f) for f in frames[: len(out)])
        assert dec.buffered == fed - done
        assert done <= fed < done + (len(frames[len(out)]) if len(out) < len(frames) else 1)
    assert out == [expected_after_roundtrip(p) for p in pdus]
    assert dec.buffered == 0
    assert dec.next_pdu() is None


def test_partial_frames_are_held_until_complete() -> None:
    a = encode(SubmitSm(sequence_number=1, destination_addr="8190", short_message=b"hello"))
    b = encode(EnquireLink(sequence_number=2))
    dec = PduDecoder()
    for i in range(len(a) - 1):  # a byte at a time, up to one short of the frame
        dec.feed(a[i : i + 1])
        assert dec.next_pdu() is None
        assert dec.buffered == i + 1
    dec.feed(a[-1:] + b[:3])  # completes a, starts b with less than a length field
    assert dec.next_pdu() == decode(a)
    assert dec.buffered == 3
    assert dec.next_pdu() is None
    dec.feed(b[3:10])
    assert dec.next_pdu() is None
    assert dec.buffered == 10
    dec.feed(b[10:])
    assert dec.next_pdu() == EnquireLink(sequence_number=2)
    assert dec.buffered == 0
    assert dec.next_pdu() is None


def test_many_frames_in_one_feed_and_feeds_without_draining() -> None:
    pdus = [EnquireLink(sequence_number=i) for i in range(1, 501)]
    stream = b"".join(encode(p) for p in pdus)
    dec = PduDecoder()
    dec.feed(stream[:1000])
    dec.feed(stream[1000:5001])  # fed twice before any next_pdu
    dec.feed(stream[5001:])
    out: list = []
    _drain(dec, out)
    assert out == pdus
    assert dec.buffered == 0


def test_largest_default_frame_in_small_chunks() -> None:
    """A full-size message_payload frame arriving in 1 KiB reads."""
    payload = bytes(range(256)) * 255  # 65,280 octets
    pdu = DataSm(sequence_number=1, destination_addr="81901", tlvs={Tag.MESSAGE_PAYLOAD: payload})
    wire = encode(pdu)
    assert len(wire) <= 65_536
    dec = PduDecoder()
    out: list = []
    for i in range(0, len(wire), 1024):
        dec.feed(wire[i : i + 1024])
        _drain(dec, out)
    assert out == [pdu]
    assert dec.buffered == 0


_ADDR = st.text(alphabet="0123456789ABCDEFGHabc", max_size=20)


@given(
    source=_ADDR, destination=_ADDR, ton=st.integers(0, 6), npi=st.integers(0, 18),
    esm=st.integers(0, 255), reg=st.integers(0, 31), dcs=st.integers(0, 255),
    sm=st.binary(max_size=254),
    sar=st.none() | st.tuples(st.integers(0, 0xFFFF), st.integers(1, 255), st.integers(1, 255)),
    payload=st.none() | st.binary(max_size=2000),
)
@settings(max_examples=300, deadline=None)
def test_submit_sm_body_equals_the_generated_encoder(
    source: str, destination: str, ton: int, npi: int, esm: int, reg: int, dcs: int, sm: bytes,
    sar: tuple[int, int, int] | None, payload: bytes | None,
) -> None:
    from engine.smpp.codec import submit_sm_body

    tlvs: dict[int, object] = {}
    if sar is not None:
        tlvs = {Tag.SAR_MSG_REF_NUM: sar[0], Tag.SAR_TOTAL_SEGMENTS: sar[1], Tag.SAR_SEGMENT_SEQNUM: sar[2]}
    if payload is not None:
        tlvs[Tag.MESSAGE_PAYLOAD] = payload
    body = submit_sm_body(ton, npi, source, destination, esm_class=esm, registered_delivery=reg, data_coding=dcs, short_message=sm, tlvs=tlvs)
    pdu = SubmitSm(
        source_addr_ton=ton, source_addr_npi=npi, source_addr=source, dest_addr_ton=1, dest_addr_npi=1,
        destination_addr=destination, esm_class=esm, registered_delivery=reg, data_coding=dcs, short_message=sm, tlvs=tlvs,
    )
    assert body == encode(pdu)[HEADER_SIZE:]


def test_submit_sm_body_refuses_what_the_encoder_refuses() -> None:
    from engine.smpp.codec import submit_sm_body
    from engine.smpp.errors import SmppEncodeError

    for source, destination, sm in (("1" * 21, "81", b""), ("1", "8" * 21, b""), ("1", "81", b"x" * 255), ("1\x00", "81", b"")):
        with pytest.raises(SmppEncodeError):
            submit_sm_body(1, 1, source, destination, esm_class=0, registered_delivery=1, data_coding=0, short_message=sm)
