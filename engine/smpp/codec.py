"""SMPP 3.4 codec: PDU objects ↔ bytes, with incremental framing.  No I/O.

The encoder and decoder of every PDU type are generated once, at import,
from the annotated fields in :mod:`engine.smpp.pdu` (see ``_compile``): a
straight-line Python function per type, so the hot path pays no
per-field interpretation (see bench/RESULTS.md for the figures).  Call
:func:`generated_source` to read what was generated.

Decoding is lenient where that loses nothing (maximum string sizes are not
enforced; unknown TLVs and oddly sized known TLVs are kept raw; response
bodies may be omitted) and strict where the frame is inconsistent.  The only
exception the decoder raises is :class:`SmppProtocolError`.

Encoding is strict: a value that the spec does not allow (a C-Octet string
longer than its maximum or containing NUL, an integer out of range, a
short_message over 254 octets) raises :class:`SmppEncodeError` — our bug,
never the peer's.
"""

from __future__ import annotations

import struct
import typing
from typing import Any, Callable

from engine.smpp.constants import CommandId, Status, Tag
from engine.smpp.errors import SmppEncodeError, SmppProtocolError
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
    "pack_header",
    "DEFAULT_MAX_FRAME",
    "HEADER_SIZE",
    "encode",
    "submit_sm_body",
    "decode",
    "PduDecoder",
    "generated_source",
]

HEADER_SIZE = 16
DEFAULT_MAX_FRAME = 65_536
"""Largest command_length accepted by default: room for a full message_payload."""

_HEADER = struct.Struct(">IIII")
_pack_header = _HEADER.pack
pack_header = _pack_header
"""``pack_header(command_length, command_id, command_status, sequence_number) -> bytes``"""
_unpack_header = _HEADER.unpack_from
_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_TLV_HEAD = struct.Struct(">HH")

# Response PDUs whose body the spec says is not returned when command_status != 0.
_BODY_OMITTED_ON_ERROR = {
    CommandId.BIND_TRANSMITTER_RESP,
    CommandId.BIND_RECEIVER_RESP,
    CommandId.BIND_TRANSCEIVER_RESP,
    CommandId.SUBMIT_SM_RESP,
}


class _TlvStreamError(ValueError):
    """The optional-parameter part of a body does not parse."""


class _FieldError(ValueError):
    """A mandatory field holds a value the spec gives its own status for."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


# --- TLVs -----------------------------------------------------------------------

# kind per standard tag: "u8", "u16", "u32", "cstr", "octets", "nec" (network_error_code)
TLV_KINDS: dict[int, str] = {
    Tag.DEST_ADDR_SUBUNIT: "u8",
    Tag.DEST_NETWORK_TYPE: "u8",
    Tag.DEST_BEARER_TYPE: "u8",
    Tag.DEST_TELEMATICS_ID: "u16",
    Tag.SOURCE_ADDR_SUBUNIT: "u8",
    Tag.SOURCE_NETWORK_TYPE: "u8",
    Tag.SOURCE_BEARER_TYPE: "u8",
    Tag.SOURCE_TELEMATICS_ID: "u8",
    Tag.QOS_TIME_TO_LIVE: "u32",
    Tag.PAYLOAD_TYPE: "u8",
    Tag.ADDITIONAL_STATUS_INFO_TEXT: "cstr",
    Tag.RECEIPTED_MESSAGE_ID: "cstr",
    Tag.MS_MSG_WAIT_FACILITIES: "u8",
    Tag.PRIVACY_INDICATOR: "u8",
    Tag.SOURCE_SUBADDRESS: "octets",
    Tag.DEST_SUBADDRESS: "octets",
    Tag.USER_MESSAGE_REFERENCE: "u16",
    Tag.USER_RESPONSE_CODE: "u8",
    Tag.SOURCE_PORT: "u16",
    Tag.DESTINATION_PORT: "u16",
    Tag.SAR_MSG_REF_NUM: "u16",
    Tag.LANGUAGE_INDICATOR: "u8",
    Tag.SAR_TOTAL_SEGMENTS: "u8",
    Tag.SAR_SEGMENT_SEQNUM: "u8",
    Tag.SC_INTERFACE_VERSION: "u8",
    Tag.CALLBACK_NUM_PRES_IND: "u8",
    Tag.CALLBACK_NUM_ATAG: "octets",
    Tag.NUMBER_OF_MESSAGES: "u8",
    Tag.CALLBACK_NUM: "octets",
    Tag.DPF_RESULT: "u8",
    Tag.SET_DPF: "u8",
    Tag.MS_AVAILABILITY_STATUS: "u8",
    Tag.NETWORK_ERROR_CODE: "nec",
    Tag.MESSAGE_PAYLOAD: "octets",
    Tag.DELIVERY_FAILURE_REASON: "u8",
    Tag.MORE_MESSAGES_TO_SEND: "u8",
    Tag.MESSAGE_STATE: "u8",
    Tag.USSD_SERVICE_OP: "u8",
    Tag.DISPLAY_TIME: "u8",
    Tag.SMS_SIGNAL: "u16",
    Tag.MS_VALIDITY: "u8",
    Tag.ALERT_ON_MESSAGE_DELIVERY: "octets",
    Tag.ITS_REPLY_TYPE: "u8",
    Tag.ITS_SESSION_INFO: "octets",
}
_TLV_CSTR_MAX: dict[int, int] = {Tag.ADDITIONAL_STATUS_INFO_TEXT: 256, Tag.RECEIPTED_MESSAGE_ID: 65}


def _tlv_u8(v: bytes) -> int | bytes:
    return v[0] if len(v) == 1 else v


def _tlv_u16(v: bytes) -> int | bytes:
    return _U16.unpack(v)[0] if len(v) == 2 else v


def _tlv_u32(v: bytes) -> int | bytes:
    return _U32.unpack(v)[0] if len(v) == 4 else v


def _tlv_cstr(v: bytes) -> str | bytes:
    if v and v[-1] == 0 and v.index(0) == len(v) - 1:
        return v[:-1].decode("latin-1")
    return v


def _tlv_nec(v: bytes) -> NetworkErrorCode | bytes:
    if len(v) == 3:
        return NetworkErrorCode(v[0], _U16.unpack_from(v, 1)[0])
    return v


_TLV_DECODERS: dict[int, Callable[[bytes], Any]] = {
    tag: {"u8": _tlv_u8, "u16": _tlv_u16, "u32": _tlv_u32, "cstr": _tlv_cstr, "nec": _tlv_nec}[kind]
    for tag, kind in TLV_KINDS.items()
    if kind != "octets"
}


def _decode_tlvs(b: bytes, p: int, end: int) -> dict[int, Any]:
    tlvs: dict[int, Any] = {}
    get = _TLV_DECODERS.get
    unpack = _TLV_HEAD.unpack_from
    while p < end:
        if p + 4 > end:
            raise _TlvStreamError("truncated TLV header")
        tag, length = unpack(b, p)
        p += 4 + length
        if p > end:
            raise _TlvStreamError(f"TLV 0x{tag:04X} length {length} overruns the PDU")
        value = b[p - length : p]
        conv = get(tag)
        tlvs[tag] = value if conv is None else conv(value)
    return tlvs


def _tlv_encoder(tag: int, kind: str) -> Callable[[Any], bytes]:
    """A function that encodes one value of ``tag`` as a complete TLV."""
    head = _TLV_HEAD.pack
    if kind == "u8":
        prefix = head(tag, 1)
        return lambda v: prefix + _U8.pack(v)
    if kind == "u16":
        prefix = head(tag, 2)
        return lambda v: prefix + _U16.pack(v)
    if kind == "u32":
        prefix = head(tag, 4)
        return lambda v: prefix + _U32.pack(v)
    if kind == "cstr":
        limit = _TLV_CSTR_MAX.get(tag, 65536)

        def cstr(v: str) -> bytes:
            raw = v.encode("latin-1")
            if len(raw) >= limit or 0 in raw:
                raise SmppEncodeError(f"TLV 0x{tag:04X}: at most {limit - 1} octets and no NUL, got {v!r}")
            return head(tag, len(raw) + 1) + raw + b"\x00"

        return cstr
    if kind == "nec":
        prefix = head(tag, 3)
        return lambda v: prefix + _U8.pack(v[0]) + _U16.pack(v[1])
    return lambda v: head(tag, len(v)) + bytes(v)  # octets


_TLV_ENCODERS: dict[int, Callable[[Any], bytes]] = {tag: _tlv_encoder(tag, kind) for tag, kind in TLV_KINDS.items()}


def _encode_tlvs(tlvs: dict[int, Any]) -> bytes:
    out = []
    for tag, value in tlvs.items():
        if type(value) is bytes:  # octet TLVs, and raw values kept from decoding
            out.append(_TLV_HEAD.pack(tag, len(value)) + value)
            continue
        encoder = _TLV_ENCODERS.get(tag)
        if encoder is None:
            if isinstance(value, (bytearray, memoryview)):
                out.append(_TLV_HEAD.pack(tag, len(value)) + bytes(value))
                continue
            raise SmppEncodeError(f"TLV 0x{tag:04X} is not a standard tag: give its value as bytes")
        out.append(encoder(value))
    return b"".join(out)


# --- submit_multi lists ---------------------------------------------------------


def _decode_dests(b: bytes, p: int, end: int) -> tuple[tuple[SmeAddress | DistributionList, ...], int]:
    count = b[p]
    p += 1
    dests: list[SmeAddress | DistributionList] = []
    for _ in range(count):
        if p >= end:
            raise ValueError("dest_address list overruns command_length")
        flag = b[p]
        if flag == 1:
            ton = b[p + 1]
            npi = b[p + 2]
            z = b.index(0, p + 3, end)
            dests.append(SmeAddress(b[p + 3 : z].decode("latin-1"), ton, npi))
        elif flag == 2:
            z = b.index(0, p + 1, end)
            dests.append(DistributionList(b[p + 1 : z].decode("latin-1")))
        else:
            raise _FieldError(f"dest_flag {flag} is neither 1 (SME) nor 2 (distribution list)", Status.ESME_RINVDESTFLAG)
        p = z + 1
    return tuple(dests), p


def _cstr_bytes(value: str, size: int, name: str) -> bytes:
    raw = value.encode("latin-1")
    if len(raw) >= size or 0 in raw:
        raise SmppEncodeError(f"{name}: at most {size - 1} octets and no NUL, got {value!r}")
    return raw


def _encode_dests(dests: tuple[SmeAddress | DistributionList, ...]) -> bytes:
    out = [bytes((len(dests),))]
    for d in dests:
        if type(d) is SmeAddress:
            out.append(bytes((1, d.ton, d.npi)) + _cstr_bytes(d.address, 21, "dest_address") + b"\x00")
        elif type(d) is DistributionList:
            out.append(b"\x02" + _cstr_bytes(d.name, 21, "dl_name") + b"\x00")
        else:
            raise SmppEncodeError(f"dest_addresses holds {type(d).__name__}")
    return b"".join(out)


def _decode_unsuccess(b: bytes, p: int, end: int) -> tuple[tuple[UnsuccessSme, ...], int]:
    count = b[p]
    p += 1
    items = []
    for _ in range(count):
        if p + 2 > end:
            raise ValueError("unsuccess_sme list overruns command_length")
        ton = b[p]
        npi = b[p + 1]
        z = b.index(0, p + 2, end)
        address = b[p + 2 : z].decode("latin-1")
        (status,) = _U32.unpack_from(b, z + 1)
        items.append(UnsuccessSme(address, status, ton, npi))
        p = z + 5
    return tuple(items), p


def _encode_unsuccess(items: tuple[UnsuccessSme, ...]) -> bytes:
    out = [bytes((len(items),))]
    for u in items:
        out.append(
            bytes((u.ton, u.npi))
            + _cstr_bytes(u.address, 21, "unsuccess_sme.address")
            + b"\x00"
            + _U32.pack(u.error_status_code)
        )
    return b"".join(out)


# --- code generation ------------------------------------------------------------


def _wire_fields(cls: type[Pdu]) -> list[tuple[str, Any]]:
    """(name, kind) for the body fields of ``cls`` in wire order, without tlvs."""
    hints = typing.get_type_hints(cls, include_extras=True)
    fields = []
    for name in cls.__struct_fields__:
        if name in ("sequence_number", "command_status", "tlvs"):
            continue
        (kind,) = hints[name].__metadata__
        fields.append((name, kind))
    return fields


def _decoder_source(cls: type[Pdu]) -> str:
    fields = _wire_fields(cls)
    name = cls.__name__
    lines = [f"def _decode_{name}(b, p, end, seq, status):"]
    if cls.command_id & 0x80000000 and fields:
        lines.append(f"    if p == end: return {name}(seq, status)")
    args = []
    pending_u8: list[str] = []

    def flush_u8() -> None:
        if pending_u8:
            for i, var in enumerate(pending_u8):
                lines.append(f"    {var} = b[p + {i}]" if i else f"    {var} = b[p]")
            lines.append(f"    p += {len(pending_u8)}")
            pending_u8.clear()

    for i, (fname, kind) in enumerate(fields):
        var = f"f{i}_{fname}"
        args.append(var)
        if isinstance(kind, Int) and kind.size == 1:
            pending_u8.append(var)
            continue
        flush_u8()
        if isinstance(kind, (CStr, Time)):
            # Empty strings are common (service_type, the time fields): skip the search.
            lines.append("    if b[p]:")
            lines.append("        z = b.index(0, p, end)")
            lines.append(f"        {var} = b[p:z].decode('latin-1')")
            lines.append("        p = z + 1")
            lines.append("    else:")
            lines.append(f"        {var} = ''")
            lines.append("        p += 1")
        elif isinstance(kind, Int):
            lines.append(f"    ({var},) = _U32.unpack_from(b, p)")
            lines.append("    p += 4")
        elif isinstance(kind, ShortMessage):
            lines.append("    n = b[p]")
            lines.append(f"    {var} = b[p + 1:p + 1 + n]")
            lines.append("    p += 1 + n")
        elif isinstance(kind, DestAddresses):
            lines.append(f"    {var}, p = _decode_dests(b, p, end)")
        elif isinstance(kind, UnsuccessSmes):
            lines.append(f"    {var}, p = _decode_unsuccess(b, p, end)")
        else:  # pragma: no cover - a new kind without a decoder
            raise TypeError(f"{name}.{fname}: unknown wire kind {kind!r}")
    flush_u8()
    lines.append("    if p > end: raise ValueError('mandatory fields overrun command_length')")
    lines.append("    tlvs = _decode_tlvs(b, p, end) if p < end else {}")
    lines.append(f"    return {name}(seq, status, {''.join(a + ', ' for a in args)}tlvs)")
    return "\n".join(lines) + "\n"


def _encoder_source(cls: type[Pdu]) -> str:
    fields = _wire_fields(cls)
    name = cls.__name__
    cmd = int(cls.command_id)
    lines = [f"def _encode_{name}(pdu):"]
    if cmd in _BODY_OMITTED_ON_ERROR:
        lines.append(f"    if pdu.command_status: return _pack_header(16, {cmd}, pdu.command_status, pdu.sequence_number)")
    fmt: list[str] = []
    values: list[str] = []
    for i, (fname, kind) in enumerate(fields):
        var = f"f{i}"
        if isinstance(kind, CStr):
            lines.append(f"    {var} = pdu.{fname}")
            lines.append(f"    if {var}:")
            lines.append(f"        {var} = {var}.encode('latin-1')")
            lines.append(f"        if len({var}) > {kind.size - 1} or 0 in {var}: _too_long({fname!r}, pdu.{fname}, {kind.size})")
            lines.append(f"    elif {var} == '':")
            lines.append(f"        {var} = b''")
            lines.append("    else:")
            lines.append(f"        _not_text({fname!r}, {var})")
            fmt.append("%s\\x00")
            values.append(var)
        elif isinstance(kind, Time):
            lines.append(f"    {var} = pdu.{fname}")
            lines.append(f"    if {var}:")
            lines.append(f"        {var} = {var}.encode('latin-1')")
            lines.append(f"        if len({var}) != 16 or 0 in {var}: _bad_time({fname!r}, pdu.{fname})")
            lines.append(f"    elif {var} == '':")
            lines.append(f"        {var} = b''")
            lines.append("    else:")
            lines.append(f"        _not_text({fname!r}, {var})")
            fmt.append("%s\\x00")
            values.append(var)
        elif isinstance(kind, Int) and kind.size == 1:
            fmt.append("%c")
            values.append(f"pdu.{fname}")
        elif isinstance(kind, Int):
            fmt.append("%s")
            values.append(f"_U32.pack(pdu.{fname})")
        elif isinstance(kind, ShortMessage):
            lines.append(f"    {var} = pdu.{fname}")
            lines.append(f"    if len({var}) > 254: _too_long_sm(len({var}))")
            fmt.append("%c%s")
            values.append(f"len({var})")
            values.append(var)
        elif isinstance(kind, DestAddresses):
            fmt.append("%s")
            values.append(f"_encode_dests(pdu.{fname})")
        elif isinstance(kind, UnsuccessSmes):
            fmt.append("%s")
            values.append(f"_encode_unsuccess(pdu.{fname})")
        else:  # pragma: no cover
            raise TypeError(f"{name}.{fname}: unknown wire kind {kind!r}")
    if fmt:
        lines.append(f"    body = b'{''.join(fmt)}' % ({''.join(v + ', ' for v in values)})")
        lines.append("    if pdu.tlvs: body += _encode_tlvs(pdu.tlvs)")
    else:
        lines.append("    body = _encode_tlvs(pdu.tlvs) if pdu.tlvs else b''")
    lines.append(f"    return _pack_header(16 + len(body), {cmd}, pdu.command_status, pdu.sequence_number) + body")
    return "\n".join(lines) + "\n"


def _too_long(field: str, value: Any, size: int) -> None:
    raise SmppEncodeError(f"{field}: at most {size - 1} octets and no NUL, got {value!r}")


def _bad_time(field: str, value: Any) -> None:
    raise SmppEncodeError(f"{field}: empty or 16 characters (YYMMDDhhmmsstnnp), got {value!r}")


def _not_text(field: str, value: Any) -> None:
    raise SmppEncodeError(f"{field}: expected str, got {type(value).__name__} {value!r}")


def _too_long_sm(length: int) -> None:
    raise SmppEncodeError(f"short_message: at most 254 octets (use message_payload), got {length}")


_SOURCES: dict[type[Pdu], str] = {}


def _compile() -> tuple[dict[int, Callable[..., Pdu]], dict[type[Pdu], Callable[[Pdu], bytes]]]:
    namespace: dict[str, Any] = {
        "_U32": _U32,
        "_pack_header": _pack_header,
        "_decode_tlvs": _decode_tlvs,
        "_encode_tlvs": _encode_tlvs,
        "_decode_dests": _decode_dests,
        "_encode_dests": _encode_dests,
        "_decode_unsuccess": _decode_unsuccess,
        "_encode_unsuccess": _encode_unsuccess,
        "_too_long": _too_long,
        "_bad_time": _bad_time,
        "_too_long_sm": _too_long_sm,
        "_not_text": _not_text,
    }
    namespace.update({cls.__name__: cls for cls in PDU_TYPES})
    decoders: dict[int, Callable[..., Pdu]] = {}
    encoders: dict[type[Pdu], Callable[[Pdu], bytes]] = {}
    for cls in PDU_TYPES:
        source = _decoder_source(cls) + "\n" + _encoder_source(cls)
        _SOURCES[cls] = source
        exec(compile(source, f"<smpp codec: {cls.__name__}>", "exec"), namespace)  # noqa: S102
        decoders[int(cls.command_id)] = namespace[f"_decode_{cls.__name__}"]
        encoders[cls] = namespace[f"_encode_{cls.__name__}"]
    return decoders, encoders


_DECODERS, _ENCODERS = _compile()


def generated_source(cls: type[Pdu]) -> str:
    """The generated decoder and encoder of one PDU type, for reading and debugging."""
    return _SOURCES[cls]


# --- public API -----------------------------------------------------------------


def encode(pdu: Pdu) -> bytes:
    """The complete wire form of ``pdu`` (header included)."""
    try:
        return _ENCODERS[type(pdu)](pdu)
    except SmppEncodeError:
        raise
    except KeyError:
        raise SmppEncodeError(f"not an SMPP PDU: {type(pdu).__name__}") from None
    except (struct.error, OverflowError, ValueError, TypeError, AttributeError, IndexError, UnicodeEncodeError) as exc:
        raise SmppEncodeError(f"{type(pdu).__name__}: {exc}") from exc


def submit_sm_body(
    source_ton: int, source_npi: int, source: str, destination: str, *, esm_class: int, registered_delivery: int,
    data_coding: int, short_message: bytes, tlvs: dict[int, Any] | None = None,
) -> bytes:
    """The body of a submit_sm (no header) with the other fields at their
    defaults (service_type, protocol_id, priority, schedule, validity,
    replace flag, sm_default_msg_id empty or 0) — what ``encode(SubmitSm(…))[16:]``
    gives, built directly for the send path (tests hold the two equal)."""
    src = source.encode("latin-1")
    dst = destination.encode("latin-1")
    if len(src) > 20 or len(dst) > 20 or 0 in src or 0 in dst:
        raise SmppEncodeError(f"submit_sm: addresses are at most 20 octets without NUL: {source!r}, {destination!r}")
    n = len(short_message)
    if n > 254:
        raise SmppEncodeError(f"submit_sm: short_message is at most 254 octets, got {n}")
    return b"".join((
        b"\x00", bytes((source_ton, source_npi)), src, b"\x00\x01\x01", dst,
        bytes((0, esm_class, 0, 0, 0, 0, registered_delivery, 0, data_coding, 0, n)),
        short_message, _encode_tlvs(tlvs) if tlvs else b"",
    ))


def _decode_frame(b: bytes, start: int, end: int) -> Pdu:
    """Decode the frame ``b[start:end]`` whose header was already validated."""
    _length, cmd, status, seq = _unpack_header(b, start)
    decoder = _DECODERS.get(cmd)
    if decoder is None:
        raise SmppProtocolError(
            f"unknown command_id 0x{cmd:08X}", sequence_number=seq, command_id=cmd, status=Status.ESME_RINVCMDID
        )
    # one name per exception type: compiled (mypyc), a name keeps the type of its first binding
    try:
        return decoder(b, start + 16, end, seq, status)
    except _TlvStreamError as bad_tlvs:
        raise SmppProtocolError(
            str(bad_tlvs), sequence_number=seq, command_id=cmd, status=Status.ESME_RINVOPTPARSTREAM
        ) from None
    except _FieldError as bad_field:
        raise SmppProtocolError(str(bad_field), sequence_number=seq, command_id=cmd, status=bad_field.status) from None
    except (IndexError, ValueError, struct.error) as exc:
        raise SmppProtocolError(
            f"body does not fit command_length: {exc}", sequence_number=seq, command_id=cmd
        ) from None


def _check_length(length: int, max_frame: int, b: bytes, start: int) -> None:
    if length < HEADER_SIZE or length > max_frame:
        seq = cmd = None
        if len(b) - start >= HEADER_SIZE:
            _l, cmd, _s, seq = _unpack_header(b, start)
        raise SmppProtocolError(
            f"command_length {length} outside {HEADER_SIZE}..{max_frame}",
            sequence_number=seq,
            command_id=cmd,
            status=Status.ESME_RINVCMDLEN,
            fatal=True,
        )


def decode(frame: bytes | bytearray | memoryview, *, max_frame: int = DEFAULT_MAX_FRAME) -> Pdu:
    """Decode exactly one complete PDU."""
    frame = bytes(frame)
    if len(frame) < 4:
        raise SmppProtocolError(f"{len(frame)} octets is shorter than a header", fatal=True)
    (length,) = _U32.unpack_from(frame, 0)
    _check_length(length, max_frame, frame, 0)
    if length != len(frame):
        raise SmppProtocolError(
            f"command_length {length} but {len(frame)} octets given",
            sequence_number=_unpack_header(frame, 0)[3] if len(frame) >= HEADER_SIZE else None,
            fatal=True,
        )
    return _decode_frame(frame, 0, length)


class PduDecoder:
    """Incremental framing: feed bytes as they arrive, take PDUs out.

    >>> dec = PduDecoder()
    >>> dec.feed(data)
    >>> while (pdu := dec.next_pdu()) is not None: ...

    A partial frame is held until the rest arrives; at most one frame of
    ``max_frame`` octets plus one read is buffered.  A malformed frame raises
    :class:`SmppProtocolError`; when its ``fatal`` is False the frame has been
    consumed and decoding can continue with the next one, when True the
    stream has lost framing and every later call raises again.
    """

    __slots__ = ("max_frame", "_buf", "_pos", "_partial", "_need", "_broken")

    def __init__(self, *, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = b""  # bytes being parsed, from _pos on
        self._pos = 0
        self._partial = bytearray()  # an incomplete frame waiting for more data
        self._need = 0  # octets _partial must reach before it is worth parsing
        self._broken: SmppProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Octets received but not yet returned as PDUs."""
        return len(self._buf) - self._pos + len(self._partial)

    def feed(self, data: bytes) -> None:
        if self._broken is not None:
            return
        if self._partial:
            self._partial += data
            if len(self._partial) < self._need:
                return
            data = bytes(self._partial)
            self._partial.clear()
        if self._pos < len(self._buf):
            self._buf = self._buf[self._pos :] + data
        else:
            self._buf = data
        self._pos = 0

    def next_pdu(self) -> Pdu | None:
        """The next complete PDU, or None until more data is fed."""
        if self._broken is not None:
            raise self._broken
        b = self._buf
        pos = self._pos
        avail = len(b) - pos
        if avail < HEADER_SIZE:
            if avail >= 4:
                (length,) = _U32.unpack_from(b, pos)
                self._guard(length, b, pos)
                self._stash(b, pos, HEADER_SIZE)
            else:
                self._stash(b, pos, 4)  # the length field decides whether the stream is sane
            return None
        length, cmd, status, seq = _unpack_header(b, pos)
        if length > avail or length < HEADER_SIZE or length > self.max_frame:
            self._guard(length, b, pos)
            self._stash(b, pos, length)
            return None
        end = pos + length
        self._pos = end
        decoder = _DECODERS.get(cmd)
        if decoder is not None:
            try:
                return decoder(b, pos + 16, end, seq, status)
            except Exception:
                pass  # re-decoded below to build the precise error, off the hot path
        return _decode_frame(b, pos, end)

    def _guard(self, length: int, b: bytes, pos: int) -> None:
        try:
            _check_length(length, self.max_frame, b, pos)
        except SmppProtocolError as exc:
            self._broken = exc
            self._buf = b""
            self._pos = 0
            self._partial.clear()
            raise

    def _stash(self, b: bytes, pos: int, need: int) -> None:
        if pos < len(b):
            self._partial += memoryview(b)[pos:]
        self._need = need
        self._buf = b""
        self._pos = 0
