"""Hypothesis strategies for SMPP PDUs, built from the annotations in engine.smpp.pdu.

Every strategy here generates values that are *valid* for the encoder (the
spec's sizes, ranges and types), so ``decode(encode(p)) == p`` must hold for
whatever it draws — with the one spec exception of response bodies omitted on
error (see :func:`expected_after_roundtrip`).
"""

from __future__ import annotations

import typing

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from engine.smpp.codec import TLV_KINDS
from engine.smpp.constants import CommandId, Tag
from engine.smpp.pdu import (
    PDU_TYPES,
    CStr,
    DestAddresses,
    DistributionList,
    Int,
    NetworkErrorCode,
    Pdu,
    ShortMessage,
    SmeAddress,
    Time,
    UnsuccessSme,
    UnsuccessSmes,
)

__all__ = [
    "PROPERTY_SETTINGS",
    "BODY_OMITTED_ON_ERROR",
    "wire_fields",
    "cstr",
    "time_field",
    "tlv_dicts",
    "pdus_of",
    "any_pdu",
    "expected_after_roundtrip",
]

PROPERTY_SETTINGS = settings(
    max_examples=50,  # per test; hypothesis costs ~2-5 ms an example here, and there are 27 PDU types
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# SMPP 3.4 §4.1.2/§4.1.4/§4.1.6 (bind_*_resp) and §4.4.2 (submit_sm_resp): the body
# is not returned when command_status is non-zero.  Written out here, not taken
# from the codec, so that the test is an independent statement of the spec.
BODY_OMITTED_ON_ERROR = frozenset(
    {
        CommandId.BIND_TRANSMITTER_RESP,
        CommandId.BIND_RECEIVER_RESP,
        CommandId.BIND_TRANSCEIVER_RESP,
        CommandId.SUBMIT_SM_RESP,
    }
)

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)

# C-Octet strings are decoded as Latin-1: any octet but NUL is a valid character.
def _latin1_without_nul(raw: bytes) -> str:
    return raw.replace(b"\x00", b"\x01").decode("latin-1")


def cstr(max_chars: int, min_chars: int = 0) -> st.SearchStrategy[str]:
    """Latin-1 text without NUL (drawn as bytes: much cheaper than st.text)."""
    return st.binary(min_size=min_chars, max_size=max_chars).map(_latin1_without_nul)


# Realistic SMPP times (absolute YYMMDDhhmmsstnnp and relative ...000R) plus any
# 16 Latin-1 characters: the codec only promises "empty or 16 characters".
_REALISTIC_TIME = st.builds(
    lambda y, mo, d, h, mi, s, t, nn, p: f"{y:02}{mo:02}{d:02}{h:02}{mi:02}{s:02}{t}{nn:02}{p}",
    st.integers(0, 99),
    st.integers(1, 12),
    st.integers(1, 28),
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.integers(0, 9),
    st.integers(0, 48),
    st.sampled_from("+-R"),
)


def time_field() -> st.SearchStrategy[str]:
    return st.one_of(st.just(""), _REALISTIC_TIME, cstr(16, 16))


def wire_fields(cls: type[Pdu]) -> list[tuple[str, object]]:
    """(name, wire kind) of the mandatory body fields of ``cls``, in wire order."""
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for name in cls.__struct_fields__:
        if name in ("sequence_number", "command_status", "tlvs"):
            continue
        (kind,) = hints[name].__metadata__
        out.append((name, kind))
    return out


_SME_ADDRESS = st.builds(SmeAddress, address=cstr(20), ton=U8, npi=U8)
_DISTRIBUTION_LIST = st.builds(DistributionList, name=cstr(20))
_UNSUCCESS = st.builds(UnsuccessSme, address=cstr(20), error_status_code=U32, ton=U8, npi=U8)


def _kind_strategy(kind: object) -> st.SearchStrategy[object]:
    if isinstance(kind, CStr):
        return cstr(kind.size - 1)
    if isinstance(kind, Time):
        return time_field()
    if isinstance(kind, Int):
        return {1: U8, 4: U32}[kind.size]
    if isinstance(kind, ShortMessage):
        return st.binary(max_size=254)
    if isinstance(kind, DestAddresses):
        return st.lists(st.one_of(_SME_ADDRESS, _DISTRIBUTION_LIST), max_size=6).map(tuple)
    if isinstance(kind, UnsuccessSmes):
        return st.lists(_UNSUCCESS, max_size=6).map(tuple)
    raise TypeError(f"no strategy for wire kind {kind!r}")  # a new kind: extend the tests


# --- TLVs -----------------------------------------------------------------------

_CSTR_TLV_MAX_CHARS = {Tag.ADDITIONAL_STATUS_INFO_TEXT: 255, Tag.RECEIPTED_MESSAGE_ID: 64}
_KIND_SIZE = {"u8": 1, "u16": 2, "u32": 4, "nec": 3}


def _typed_tlv_value(tag: int, kind: str) -> st.SearchStrategy[object]:
    if kind == "u8":
        return U8
    if kind == "u16":
        return U16
    if kind == "u32":
        return U32
    if kind == "cstr":
        return cstr(min(_CSTR_TLV_MAX_CHARS.get(tag, 64), 64))
    if kind == "nec":
        return st.builds(NetworkErrorCode, U8, U16)
    if kind == "octets":
        return st.binary(max_size=48)
    raise TypeError(kind)


def _is_wellformed_cstr(raw: bytes) -> bool:
    """True when ``raw`` is text + exactly one NUL at the end (the codec then gives str)."""
    return 0 in raw and raw.index(0) == len(raw) - 1


def _raw_oddly_sized(kind: str) -> st.SearchStrategy[bytes]:
    """Raw bytes that the codec must keep as bytes for a known tag of ``kind``."""
    if kind in _KIND_SIZE:
        size = _KIND_SIZE[kind]
        return st.binary(max_size=8).filter(lambda b: len(b) != size)
    if kind == "cstr":
        return st.binary(max_size=12).filter(lambda b: not _is_wellformed_cstr(b))
    return st.binary(max_size=8)  # octets: bytes is the proper type anyway


_KNOWN_TAGS = sorted(TLV_KINDS)


@st.composite
def _tlv_item(draw: st.DrawFn) -> tuple[int, object]:
    choice = draw(st.integers(0, 9))
    if choice < 6:  # a standard tag with a properly typed value
        tag = draw(st.sampled_from(_KNOWN_TAGS))
        return tag, draw(_typed_tlv_value(tag, TLV_KINDS[tag]))
    if choice < 8:  # an unknown (vendor / reserved) tag: bytes only
        tag = draw(st.integers(0, 0xFFFF).filter(lambda t: t not in TLV_KINDS))
        return tag, draw(st.binary(max_size=32))
    tag = draw(st.sampled_from(_KNOWN_TAGS))  # a known tag with an oddly sized raw value
    return tag, draw(_raw_oddly_sized(TLV_KINDS[tag]))


def tlv_dicts(max_size: int = 6) -> st.SearchStrategy[dict[int, object]]:
    return st.lists(_tlv_item(), max_size=max_size, unique_by=lambda kv: kv[0]).map(dict)


# --- whole PDUs -----------------------------------------------------------------


def _status_for(cls: type[Pdu]) -> st.SearchStrategy[int]:
    if cls.command_id & 0x80000000:
        return st.one_of(st.just(0), st.sampled_from([0x01, 0x08, 0x0E, 0x45, 0x58, 0x400]), U32)
    return st.one_of(st.just(0), U32)  # requests "should" carry 0, but any value is encodable


def pdus_of(cls: type[Pdu]) -> st.SearchStrategy[Pdu]:
    kwargs: dict[str, st.SearchStrategy[object]] = {
        "sequence_number": st.one_of(st.integers(1, 0x7FFFFFFF), U32),
        "command_status": _status_for(cls),
        "tlvs": tlv_dicts(),
    }
    for name, kind in wire_fields(cls):
        kwargs[name] = _kind_strategy(kind)
    return st.builds(cls, **kwargs)


def any_pdu() -> st.SearchStrategy[Pdu]:
    return st.one_of([pdus_of(cls) for cls in PDU_TYPES])


def expected_after_roundtrip(pdu: Pdu) -> Pdu:
    """What ``decode(encode(pdu))`` must give."""
    cls = type(pdu)
    if cls.command_id in BODY_OMITTED_ON_ERROR and pdu.command_status != 0:
        return cls(sequence_number=pdu.sequence_number, command_status=pdu.command_status)
    return pdu
