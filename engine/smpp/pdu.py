"""SMPP 3.4 PDU types.

Each PDU is a msgspec Struct whose annotated fields *are* the wire layout:
the mandatory body fields in spec order, each annotated with its wire kind
(:class:`CStr` with the spec's maximum size including the NUL, :class:`Time`,
:class:`Int` of 1 or 4 octets, :class:`ShortMessage`, …), then ``tlvs``.
The codec (``engine.smpp.codec``) generates its encoder and decoder from
these annotations, so this file is the single source of truth for the layout.

Conventions:

* C-Octet strings are ``str`` (decoded as Latin-1, so any byte round-trips).
* ``sm_length``, ``number_of_dests`` and ``no_unsuccess`` are not fields:
  they are derived from ``short_message``, ``dest_addresses`` and
  ``unsuccess_smes``.
* ``tlvs`` maps a tag (see :class:`~engine.smpp.constants.Tag`) to a value:
  ``int`` for Integer TLVs, ``str`` for C-Octet TLVs, ``bytes`` for Octet
  TLVs, :class:`NetworkErrorCode` for network_error_code.  Unknown tags, and
  known tags whose value has an unexpected size, are kept as raw ``bytes`` so
  that nothing the peer sent is lost or rejected.
* ``sequence_number`` and ``command_status`` come first so the decoder can
  build a PDU positionally; build PDUs by keyword.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, NamedTuple, Union

import msgspec

from engine.smpp.constants import CommandId

__all__ = [
    "CStr",
    "Time",
    "Int",
    "ShortMessage",
    "NetworkErrorCode",
    "SmeAddress",
    "DistributionList",
    "UnsuccessSme",
    "Pdu",
    "GenericNack",
    "BindTransmitter",
    "BindTransmitterResp",
    "BindReceiver",
    "BindReceiverResp",
    "BindTransceiver",
    "BindTransceiverResp",
    "Outbind",
    "Unbind",
    "UnbindResp",
    "EnquireLink",
    "EnquireLinkResp",
    "SubmitSm",
    "SubmitSmResp",
    "SubmitMulti",
    "SubmitMultiResp",
    "DeliverSm",
    "DeliverSmResp",
    "DataSm",
    "DataSmResp",
    "QuerySm",
    "QuerySmResp",
    "CancelSm",
    "CancelSmResp",
    "ReplaceSm",
    "ReplaceSmResp",
    "AlertNotification",
    "PDU_TYPES",
    "TlvValue",
]


# --- wire kinds used as Annotated metadata --------------------------------------


class CStr:
    """C-Octet String; ``size`` is the spec's maximum *including* the NUL."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class Time:
    """Time field: a C-Octet String that is empty or exactly 16 characters."""

    __slots__ = ()
    size = 17


class Int:
    """Unsigned big-endian integer of ``size`` octets (1 or 4)."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size


class ShortMessage:
    """``sm_length`` (1 octet, 0..254) followed by that many octets."""

    __slots__ = ()
    max = 254


class DestAddresses:
    """submit_multi's ``number_of_dests`` + ``dest_address`` list."""

    __slots__ = ()


class UnsuccessSmes:
    """submit_multi_resp's ``no_unsuccess`` + ``unsuccess_sme`` list."""

    __slots__ = ()


def _c(size: int) -> CStr:
    return CStr(size)


U8 = Annotated[int, Int(1)]
U32 = Annotated[int, Int(4)]
TIME = Annotated[str, Time()]
SM = Annotated[bytes, ShortMessage()]


class NetworkErrorCode(NamedTuple):
    """network_error_code TLV: network type (1 = ANSI-136, 2 = IS-95, 3 = GSM) + code."""

    network_type: int
    error_code: int


class SmeAddress(msgspec.Struct, frozen=True, gc=False):
    """A submit_multi destination that is an SME address (dest_flag 1)."""

    address: str
    ton: int = 0
    npi: int = 0


class DistributionList(msgspec.Struct, frozen=True, gc=False):
    """A submit_multi destination that is a distribution list (dest_flag 2)."""

    name: str


class UnsuccessSme(msgspec.Struct, frozen=True, gc=False):
    """One failed destination in submit_multi_resp."""

    address: str
    error_status_code: int
    ton: int = 0
    npi: int = 0


TlvValue = Union[int, str, bytes, NetworkErrorCode]


class Pdu(msgspec.Struct, gc=False):
    """Common header fields; ``command_id`` is a class constant."""

    command_id: ClassVar[int]
    sequence_number: int = 0
    command_status: int = 0

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & 0x80000000)


# --- header-only PDUs -----------------------------------------------------------


class GenericNack(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.GENERIC_NACK)
    tlvs: dict[int, TlvValue] = {}


class Unbind(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.UNBIND)
    tlvs: dict[int, TlvValue] = {}


class UnbindResp(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.UNBIND_RESP)
    tlvs: dict[int, TlvValue] = {}


class EnquireLink(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.ENQUIRE_LINK)
    tlvs: dict[int, TlvValue] = {}


class EnquireLinkResp(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.ENQUIRE_LINK_RESP)
    tlvs: dict[int, TlvValue] = {}


class CancelSmResp(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.CANCEL_SM_RESP)
    tlvs: dict[int, TlvValue] = {}


class ReplaceSmResp(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.REPLACE_SM_RESP)
    tlvs: dict[int, TlvValue] = {}


# --- binds ----------------------------------------------------------------------


class _Bind(Pdu, gc=False):
    system_id: Annotated[str, _c(16)] = ""
    password: Annotated[str, _c(9)] = ""
    system_type: Annotated[str, _c(13)] = ""
    interface_version: U8 = 0x34
    addr_ton: U8 = 0
    addr_npi: U8 = 0
    address_range: Annotated[str, _c(41)] = ""
    tlvs: dict[int, TlvValue] = {}


class _BindResp(Pdu, gc=False):
    system_id: Annotated[str, _c(16)] = ""
    tlvs: dict[int, TlvValue] = {}


class BindTransmitter(_Bind, gc=False):
    command_id: ClassVar[int] = int(CommandId.BIND_TRANSMITTER)


class BindTransmitterResp(_BindResp, gc=False):
    command_id: ClassVar[int] = int(CommandId.BIND_TRANSMITTER_RESP)


class BindReceiver(_Bind, gc=False):
    command_id: ClassVar[int] = int(CommandId.BIND_RECEIVER)


class BindReceiverResp(_BindResp, gc=False):
    command_id: ClassVar[int] = int(CommandId.BIND_RECEIVER_RESP)


class BindTransceiver(_Bind, gc=False):
    command_id: ClassVar[int] = int(CommandId.BIND_TRANSCEIVER)


class BindTransceiverResp(_BindResp, gc=False):
    command_id: ClassVar[int] = int(CommandId.BIND_TRANSCEIVER_RESP)


class Outbind(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.OUTBIND)
    system_id: Annotated[str, _c(16)] = ""
    password: Annotated[str, _c(9)] = ""
    tlvs: dict[int, TlvValue] = {}


# --- messages -------------------------------------------------------------------


class _ShortMessagePdu(Pdu, gc=False):
    """submit_sm / deliver_sm layout (§4.4.1, §4.6.1)."""

    service_type: Annotated[str, _c(6)] = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: Annotated[str, _c(21)] = ""
    dest_addr_ton: U8 = 0
    dest_addr_npi: U8 = 0
    destination_addr: Annotated[str, _c(21)] = ""
    esm_class: U8 = 0
    protocol_id: U8 = 0
    priority_flag: U8 = 0
    schedule_delivery_time: TIME = ""
    validity_period: TIME = ""
    registered_delivery: U8 = 0
    replace_if_present_flag: U8 = 0
    data_coding: U8 = 0
    sm_default_msg_id: U8 = 0
    short_message: SM = b""
    tlvs: dict[int, TlvValue] = {}


class SubmitSm(_ShortMessagePdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.SUBMIT_SM)


class DeliverSm(_ShortMessagePdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.DELIVER_SM)


class _MessageIdResp(Pdu, gc=False):
    message_id: Annotated[str, _c(65)] = ""
    tlvs: dict[int, TlvValue] = {}


class SubmitSmResp(_MessageIdResp, gc=False):
    command_id: ClassVar[int] = int(CommandId.SUBMIT_SM_RESP)


class DeliverSmResp(_MessageIdResp, gc=False):
    command_id: ClassVar[int] = int(CommandId.DELIVER_SM_RESP)


class DataSmResp(_MessageIdResp, gc=False):
    command_id: ClassVar[int] = int(CommandId.DATA_SM_RESP)


class SubmitMulti(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.SUBMIT_MULTI)
    service_type: Annotated[str, _c(6)] = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: Annotated[str, _c(21)] = ""
    dest_addresses: Annotated[tuple[Union[SmeAddress, DistributionList], ...], DestAddresses()] = ()
    esm_class: U8 = 0
    protocol_id: U8 = 0
    priority_flag: U8 = 0
    schedule_delivery_time: TIME = ""
    validity_period: TIME = ""
    registered_delivery: U8 = 0
    replace_if_present_flag: U8 = 0
    data_coding: U8 = 0
    sm_default_msg_id: U8 = 0
    short_message: SM = b""
    tlvs: dict[int, TlvValue] = {}


class SubmitMultiResp(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.SUBMIT_MULTI_RESP)
    message_id: Annotated[str, _c(65)] = ""
    unsuccess_smes: Annotated[tuple[UnsuccessSme, ...], UnsuccessSmes()] = ()
    tlvs: dict[int, TlvValue] = {}


class DataSm(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.DATA_SM)
    service_type: Annotated[str, _c(6)] = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: Annotated[str, _c(65)] = ""
    dest_addr_ton: U8 = 0
    dest_addr_npi: U8 = 0
    destination_addr: Annotated[str, _c(65)] = ""
    esm_class: U8 = 0
    registered_delivery: U8 = 0
    data_coding: U8 = 0
    tlvs: dict[int, TlvValue] = {}


class QuerySm(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.QUERY_SM)
    message_id: Annotated[str, _c(65)] = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: Annotated[str, _c(21)] = ""
    tlvs: dict[int, TlvValue] = {}


class QuerySmResp(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.QUERY_SM_RESP)
    message_id: Annotated[str, _c(65)] = ""
    final_date: TIME = ""
    message_state: U8 = 0
    error_code: U8 = 0
    tlvs: dict[int, TlvValue] = {}


class CancelSm(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.CANCEL_SM)
    service_type: Annotated[str, _c(6)] = ""
    message_id: Annotated[str, _c(65)] = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: Annotated[str, _c(21)] = ""
    dest_addr_ton: U8 = 0
    dest_addr_npi: U8 = 0
    destination_addr: Annotated[str, _c(21)] = ""
    tlvs: dict[int, TlvValue] = {}


class ReplaceSm(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.REPLACE_SM)
    message_id: Annotated[str, _c(65)] = ""
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: Annotated[str, _c(21)] = ""
    schedule_delivery_time: TIME = ""
    validity_period: TIME = ""
    registered_delivery: U8 = 0
    sm_default_msg_id: U8 = 0
    short_message: SM = b""
    tlvs: dict[int, TlvValue] = {}


class AlertNotification(Pdu, gc=False):
    command_id: ClassVar[int] = int(CommandId.ALERT_NOTIFICATION)
    source_addr_ton: U8 = 0
    source_addr_npi: U8 = 0
    source_addr: Annotated[str, _c(65)] = ""
    esme_addr_ton: U8 = 0
    esme_addr_npi: U8 = 0
    esme_addr: Annotated[str, _c(65)] = ""
    tlvs: dict[int, TlvValue] = {}


PDU_TYPES: tuple[type[Pdu], ...] = (
    GenericNack,
    BindTransmitter,
    BindTransmitterResp,
    BindReceiver,
    BindReceiverResp,
    BindTransceiver,
    BindTransceiverResp,
    Outbind,
    Unbind,
    UnbindResp,
    EnquireLink,
    EnquireLinkResp,
    SubmitSm,
    SubmitSmResp,
    SubmitMulti,
    SubmitMultiResp,
    DeliverSm,
    DeliverSmResp,
    DataSm,
    DataSmResp,
    QuerySm,
    QuerySmResp,
    CancelSm,
    CancelSmResp,
    ReplaceSm,
    ReplaceSmResp,
    AlertNotification,
)
"""Every PDU of SMPP 3.4, one class each."""
