"""parse_receipt: our simulator's output, Appendix B, every DOMAIN.md §2.1 variation, garbage."""

from __future__ import annotations

import datetime as dt
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.dlr import (
    FINAL_STATES,
    JST,
    Receipt,
    parse_receipt,
    receipt_datetime,
    stat_for_state,
    state_for_stat,
)
from engine.smpp.codec import decode
from engine.smpp.constants import EsmClass, MessageState, Tag
from engine.smpp.pdu import DataSm, DeliverSm, NetworkErrorCode, SubmitSm

from ._sim import sim_receipt, text_receipt

STD = "id:{id} sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:{stat} err:000 text:Hello"


# --- our simulator ------------------------------------------------------------------


def test_simulator_delivered_receipt():
    r = parse_receipt(sim_receipt("1763700000123456", sample=b"Your code is 123456"))
    assert r == Receipt(
        message_id="1763700000123456",
        tlv_id="1763700000123456",
        text_id="1763700000123456",
        state=2,
        stat="DELIVRD",
        err="000",
        network_error=None,
        submit_date="2611211200",
        done_date="2611211201",
        sub="001",
        dlvrd="001",
        text="Your code is 123456",
        final=True,
        delivered=True,
        source_addr="819012345678",
        destination_addr="0120123456",
    )


@pytest.mark.parametrize("state", [s for s in MessageState])
def test_simulator_every_state(state):
    r = parse_receipt(sim_receipt("16fee0e525", n=0x16FEE0E525, style="decimal", state=int(state), err=11))
    assert r is not None
    assert r.message_id == "16fee0e525"  # the TLV, as the response wrote it
    assert r.text_id == "98765432101"
    assert r.state == int(state) and r.stat == state.stat
    assert r.final == (state.stat in {"DELIVRD", "EXPIRED", "DELETED", "UNDELIV", "REJECTD"})
    assert r.delivered == (state is MessageState.DELIVERED)
    if r.final and not r.delivered:
        assert r.network_error == (3, 11) and r.err == "011" and r.dlvrd == "000"


def test_real_simulator_encoder():
    """The simulator's own encode_body (UCS-2 submit, hex id, decimal text id), framed and decoded."""
    smsc = pytest.importorskip("carriers.smsc")
    rec = smsc._Receipt("denpo", None)
    rec.submit = SubmitSm(
        source_addr="0120123456", destination_addr="819012345678", data_coding=8, short_message="Hi there".encode("utf-16-be")
    )
    rec.message_id = "16fee0e525"
    rec.n = 98765432101
    rec.state = int(MessageState.UNDELIVERABLE)
    rec.err = 1
    rec.text = rec.submit.short_message
    body = rec.encode_body(b"98765432101", b"2611211200", b"2611211203")
    pdu = decode(struct.pack(">IIII", 16 + len(body), 0x00000005, 0, 1) + body)
    r = parse_receipt(pdu)
    assert r is not None
    assert (r.message_id, r.tlv_id, r.text_id) == ("16fee0e525", "16fee0e525", "98765432101")
    assert (r.state, r.stat, r.err, r.network_error) == (5, "UNDELIV", "001", (3, 1))
    assert r.final and not r.delivered
    assert r.text == "Hi there"
    assert (r.source_addr, r.destination_addr) == ("819012345678", "0120123456")


# --- Appendix B ---------------------------------------------------------------------


def test_appendix_b_template_literally():
    """The spec's 'typical example' itself, with its capitalised Text: label."""
    r = parse_receipt(
        text_receipt(
            "id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD err:E Text: . . . . . . . . ."
        )
    )
    assert r is not None
    assert (r.message_id, r.sub, r.dlvrd, r.submit_date, r.done_date, r.stat, r.err) == (
        "IIIIIIIIII", "SSS", "DDD", "YYMMDDhhmm", "YYMMDDhhmm", "DDDDDDD", "E",
    )
    assert r.text == " . . . . . . . . ."
    assert r.state is None and not r.final  # "DDDDDDD" is no state word


def test_appendix_b_example():
    r = parse_receipt(
        text_receipt("id:0123456789 sub:001 dlvrd:001 submit date:0610191018 done date:0610191018 stat:DELIVRD err:000 Text:Hello World")
    )
    assert r is not None
    assert (r.message_id, r.tlv_id, r.text_id, r.state, r.text) == ("0123456789", None, "0123456789", 2, "Hello World")
    assert receipt_datetime(r.done_date) == dt.datetime(2006, 10, 19, 10, 18, tzinfo=JST)


# --- variations (DOMAIN.md §2.1) -----------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "ID:42 SUB:001 DLVRD:001 SUBMIT DATE:2611211200 DONE DATE:2611211201 STAT:DELIVRD ERR:000 TEXT:x",
        "Id:42 Sub:001 Dlvrd:001 Submit Date:2611211200 Done Date:2611211201 Stat:delivrd Err:000 Text:x",
        "id:42 sub:001 dlvrd:001 submit_date:2611211200 done_date:2611211201 stat:DELIVRD err:000 text:x",
        "id:42 submitdate:2611211200 donedate:2611211201 stat:DELIVRD sub:999 err:000 text:x",
        "stat:DELIVRD err:000 id:42 done date:2611211201 submit date:2611211200 text:x",
        "id : 42  stat :DELIVRD\terr:000\tdone date:2611211201  submit date:2611211200 text:x",
    ],
)
def test_label_case_order_and_spelling(body):
    r = parse_receipt(text_receipt(body))
    assert r is not None
    assert (r.message_id, r.state, r.err, r.submit_date, r.done_date, r.text) == ("42", 2, "000", "2611211200", "2611211201", "x")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2611211200", dt.datetime(2026, 11, 21, 12, 0, tzinfo=JST)),
        ("261121120059", dt.datetime(2026, 11, 21, 12, 0, 59, tzinfo=JST)),
        ("20261121120059", dt.datetime(2026, 11, 21, 12, 0, 59, tzinfo=JST)),
        ("2613211200", None),  # month 13
        ("26112112", None),  # 8 digits
        ("2026-11-21", None),
        ("", None),
        (None, None),
    ],
)
def test_dates(raw, expected):
    if raw:
        r = parse_receipt(text_receipt(f"id:1 submit date:{raw} done date:{raw} stat:DELIVRD"))
        assert r is not None and r.submit_date == raw and r.done_date == raw
    assert receipt_datetime(raw) == expected


def test_date_time_zone_is_configurable():
    assert receipt_datetime("2611211200", dt.UTC) == dt.datetime(2026, 11, 21, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize("err", ["000", "0", "1234", "ABC", "x-1", "E"])
def test_err_kept_raw(err):
    r = parse_receipt(text_receipt(STD.format(id="1", stat="UNDELIV").replace("err:000", f"err:{err}")))
    assert r is not None and r.err == err and r.state == 5


@pytest.mark.parametrize(
    "mid",
    ["0123456789", "16fee0e525", "16FEE0E525", "a1b2c3d4-e5f6-7890-abcd-ef0123456789", "msg_42-x", "00000000000000000001"],
)
def test_ids(mid):
    r = parse_receipt(text_receipt(STD.format(id=mid, stat="DELIVRD")))
    assert r is not None and r.message_id == mid == r.text_id


def test_values_with_spaces_and_colons():
    r = parse_receipt(
        text_receipt(
            "id:AB 12 sub:001 dlvrd:001 submit date:2026-11-21 12:00:00 done date:2026-11-21 12:00:07 "
            "stat:DELIVRD err:no route: x text:stat:UNDELIV id:999 err:1"
        )
    )
    assert r is not None
    assert r.message_id == "AB 12"
    assert r.submit_date == "2026-11-21 12:00:00" and r.done_date == "2026-11-21 12:00:07"
    assert r.err == "no route: x"
    assert r.state == 2  # labels inside text: are the text's
    assert r.text == "stat:UNDELIV id:999 err:1"


def test_labels_need_a_word_boundary():
    r = parse_receipt(text_receipt("id:7 stat:DELIVRD err:000 text:msgid:5 substat:9"))
    assert r is not None and r.message_id == "7" and r.text == "msgid:5 substat:9"
    r = parse_receipt(text_receipt("id:7 mystat:UNDELIV stat:DELIVRD"))
    assert r is not None and r.message_id == "7 mystat:UNDELIV" and r.state == 2


@pytest.mark.parametrize("body", [b"", b"\x00", b"garbage without labels"])
def test_tlv_only_receipt(body):
    r = parse_receipt(
        DeliverSm(
            esm_class=0x04,
            short_message=body,
            tlvs={Tag.RECEIPTED_MESSAGE_ID: "ABC123", Tag.MESSAGE_STATE: int(MessageState.EXPIRED), Tag.NETWORK_ERROR_CODE: NetworkErrorCode(3, 27)},
        )
    )
    assert r is not None
    assert (r.message_id, r.tlv_id, r.text_id, r.state, r.stat, r.network_error) == ("ABC123", "ABC123", None, 3, None, (3, 27))
    assert r.final and not r.delivered


def test_tlvs_alone_make_a_receipt_even_with_esm_class_zero():
    r = parse_receipt(DeliverSm(esm_class=0, tlvs={Tag.RECEIPTED_MESSAGE_ID: "77"}))
    assert r is not None and r.message_id == "77" and r.state is None and not r.final


@pytest.mark.parametrize("dc", [0, 1, 3])
def test_single_byte_codings(dc):
    r = parse_receipt(text_receipt(STD.format(id="5", stat="REJECTD") + " café", data_coding=dc))
    assert r is not None and r.state == 8 and r.text == "Hello café"


def test_ucs2_receipt_text():
    r = parse_receipt(text_receipt(STD.format(id="5", stat="DELIVRD").replace("Hello", "認証コード"), data_coding=8))
    assert r is not None and r.message_id == "5" and r.state == 2 and r.text == "認証コード"


def test_ucs2_odd_length_and_unlabelled_coding():
    body = STD.format(id="5", stat="DELIVRD").encode("utf-16-be")
    r = parse_receipt(text_receipt(body + b"\x00", data_coding=8))
    assert r is not None and r.state == 2
    r = parse_receipt(text_receipt(body, data_coding=0))  # UCS-2 sent under DC 0
    assert r is not None and r.message_id == "5" and r.state == 2


def test_udhi_header_skipped():
    udh = bytes((0x05, 0x00, 0x03, 0x2A, 0x01, 0x01))
    r = parse_receipt(text_receipt(udh + STD.format(id="5", stat="DELIVRD").encode(), esm_class=0x44))
    assert r is not None and r.message_id == "5" and r.state == 2


def test_data_sm_with_message_payload():
    pdu = DataSm(
        esm_class=0x04,
        source_addr="819012345678",
        tlvs={Tag.MESSAGE_PAYLOAD: STD.format(id="f00d", stat="EXPIRED").encode()},
    )
    r = parse_receipt(pdu)
    assert r is not None and r.message_id == "f00d" and r.state == 3 and r.final and r.source_addr == "819012345678"


def test_intermediate_notification_is_not_final():
    r = parse_receipt(text_receipt(STD.format(id="9", stat="ENROUTE"), esm_class=int(EsmClass.INTERMEDIATE_NOTIFICATION)))
    assert r is not None and r.state == 1 and not r.final and not r.delivered


@pytest.mark.parametrize(("stat", "state"), [("ACCEPTD", 6), ("UNKNOWN", 7), ("ENROUTE", 1)])
def test_non_final_states(stat, state):
    r = parse_receipt(text_receipt(STD.format(id="9", stat=stat)))
    assert r is not None and r.state == state and not r.final


def test_tlv_state_wins_over_text():
    r = parse_receipt(text_receipt(STD.format(id="9", stat="DELIVRD"), tlvs={Tag.MESSAGE_STATE: 5}))
    assert r is not None and r.state == 5 and r.stat == "DELIVRD" and not r.delivered


@pytest.mark.parametrize("bad", [0, 9, 255, b"\x02\x00", "2"])
def test_out_of_range_tlv_state_falls_back_to_text(bad):
    r = parse_receipt(text_receipt(STD.format(id="9", stat="DELIVRD"), tlvs={Tag.MESSAGE_STATE: bad}))
    assert r is not None and r.state == 2


def test_malformed_tlv_id_bytes():
    r = parse_receipt(DeliverSm(esm_class=4, tlvs={Tag.RECEIPTED_MESSAGE_ID: b"AB12", Tag.MESSAGE_STATE: 2}))
    assert r is not None and r.message_id == "AB12"


def test_state_without_id():
    r = parse_receipt(text_receipt("stat:UNDELIV err:001"))
    assert r is not None and r.message_id == "" and r.state == 5


@pytest.mark.parametrize(
    "pdu",
    [
        text_receipt("hello, this is a reply", esm_class=0x00),  # MO
        text_receipt("id:1 stat:DELIVRD", esm_class=0x00),  # MO that looks like a receipt, no TLVs
        text_receipt("id:1 stat:DELIVRD", esm_class=0x08),  # SME delivery ack
        text_receipt("hello", esm_class=0x04),  # receipt type but neither id nor state
        text_receipt(b"", esm_class=0x04),
    ],
)
def test_none(pdu):
    assert parse_receipt(pdu) is None


def test_stat_state_maps_both_ways():
    for s in MessageState:
        assert state_for_stat(s.stat) == int(s)
        assert stat_for_state(int(s)) == s.stat
        assert state_for_stat(s.stat.lower()) == int(s)
    assert state_for_stat(" delivered ") == 2
    assert state_for_stat("UNDELIVERABLE") == 5
    assert state_for_stat("REJECTED") == 8
    assert state_for_stat("nonsense") is None
    assert stat_for_state(0) is None and stat_for_state(9) is None
    assert FINAL_STATES == {2, 3, 4, 5, 8}


# --- garbage never raises -------------------------------------------------------------

_LABEL_WORDS = ["id:", "sub:", "dlvrd:", "submit date:", "done date:", "stat:", "err:", "text:", "ID:", "Stat:", " ", ":", "DELIVRD"]
_tlv_values = st.one_of(
    st.integers(-(2**40), 2**40),
    st.text(max_size=70),
    st.binary(max_size=70),
    st.builds(NetworkErrorCode, st.integers(0, 255), st.integers(0, 65535)),
    st.tuples(st.integers(), st.text()),
    st.none(),
)
_tags = st.sampled_from([int(Tag.RECEIPTED_MESSAGE_ID), int(Tag.MESSAGE_STATE), int(Tag.NETWORK_ERROR_CODE), int(Tag.MESSAGE_PAYLOAD), 0x1234])


def _check(r):
    assert r is None or isinstance(r, Receipt)
    if r is not None:
        assert r.message_id or r.state is not None
        assert r.state is None or 1 <= r.state <= 8
        assert r.final == (r.state in FINAL_STATES)
        assert r.delivered == (r.state == 2)


@settings(max_examples=400)
@given(
    body=st.binary(max_size=300),
    esm=st.integers(0, 255),
    dc=st.integers(0, 255),
    tlvs=st.dictionaries(_tags, _tlv_values, max_size=5),
)
def test_arbitrary_bytes_never_raise(body, esm, dc, tlvs):
    _check(parse_receipt(DeliverSm(esm_class=esm, data_coding=dc, short_message=body, tlvs=tlvs)))
    _check(parse_receipt(DataSm(esm_class=esm, data_coding=dc, tlvs={**tlvs, int(Tag.MESSAGE_PAYLOAD): body})))


@settings(max_examples=400)
@given(parts=st.lists(st.one_of(st.sampled_from(_LABEL_WORDS), st.text(max_size=12)), max_size=30), dc=st.sampled_from([0, 1, 3, 8]))
def test_label_soup_never_raises(parts, dc):
    text = "".join(parts)
    body = text.encode("utf-16-be") if dc == 8 else text.encode("utf-8")
    _check(parse_receipt(text_receipt(body, data_coding=dc)))


def test_non_pdu_objects_never_raise():
    class Odd:
        esm_class = "4"
        tlvs = (1, 2)
        short_message = 12

    for obj in (None, 1, "id:1 stat:DELIVRD", Odd()):
        _check(parse_receipt(obj))


_value = st.text(st.characters(codec="ascii", exclude_categories=("Cc", "Zs")), min_size=1, max_size=16).filter(lambda s: ":" not in s)


@settings(max_examples=300)
@given(
    mid=_value,
    stat=st.sampled_from([s.stat for s in MessageState]),
    err=_value,
    sub=_value,
    upper=st.booleans(),
    sample=st.text(max_size=20),
)
def test_round_trip_of_written_fields(mid, stat, err, sub, upper, sample):
    labels = ["id", "sub", "dlvrd", "submit date", "done date", "stat", "err", "text"]
    if upper:
        labels = [lab.upper() for lab in labels]
    values = [mid, sub, "001", "2611211200", "261121120001", stat, err]
    text = " ".join(f"{lab}:{v}" for lab, v in zip(labels, values)) + f" {labels[-1]}:{sample}"
    r = parse_receipt(text_receipt(text, data_coding=8))
    assert r is not None
    assert (r.message_id, r.sub, r.done_date, r.stat, r.err, r.text) == (mid, sub, "261121120001", stat, err, sample)
    assert r.state == state_for_stat(stat)
