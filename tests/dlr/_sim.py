"""Receipts as our simulator (carriers/smsc.py ``_Receipt.encode_body``) writes them,
built by hand and passed through the real codec."""

from __future__ import annotations

from engine.smpp.codec import decode, encode
from engine.smpp.constants import EsmClass, MessageState, Tag
from engine.smpp.pdu import DeliverSm, NetworkErrorCode

FAILED = {int(s) for s in (MessageState.EXPIRED, MessageState.DELETED, MessageState.UNDELIVERABLE, MessageState.REJECTED)}


def text_id(message_id: str, n: int, style: str) -> str:
    """The simulator's receipt_id_style: same / decimal / hex."""
    return message_id if style == "same" else str(n) if style == "decimal" else "%x" % n


def sim_receipt(
    message_id: str,
    *,
    n: int | None = None,
    style: str = "same",
    state: int = int(MessageState.DELIVERED),
    err: int = 0,
    sample: bytes = b"",
    submit_date: str = "2611211200",
    done_date: str = "2611211201",
    handset: str = "819012345678",
    esme: str = "0120123456",
) -> DeliverSm:
    if n is None:
        if style != "same":
            raise ValueError("n (the id's integer value) is needed for decimal/hex text ids")
        n = 0
    failed = state in FAILED
    body = b"id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:%03d text:%s" % (
        text_id(message_id, n, style).encode(),
        b"000" if failed else b"001",
        submit_date.encode(),
        done_date.encode(),
        MessageState(state).stat.encode(),
        err,
        sample,
    )
    tlvs: dict = {Tag.RECEIPTED_MESSAGE_ID: message_id, Tag.MESSAGE_STATE: state}
    if failed:
        tlvs[Tag.NETWORK_ERROR_CODE] = NetworkErrorCode(3, err)
    pdu = DeliverSm(
        sequence_number=7,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr=handset,
        dest_addr_ton=2,
        dest_addr_npi=1,
        destination_addr=esme,
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        short_message=body,
        tlvs=tlvs,
    )
    out = decode(encode(pdu))
    assert isinstance(out, DeliverSm)
    return out


def text_receipt(body: bytes | str, *, esm_class: int = 0x04, data_coding: int = 0, tlvs: dict | None = None) -> DeliverSm:
    """A deliver_sm carrying ``body`` (str → Latin-1, or UTF-16BE when data_coding is 8)."""
    if isinstance(body, str):
        body = body.encode("utf-16-be" if data_coding == 8 else "latin-1")
    return DeliverSm(esm_class=esm_class, data_coding=data_coding, short_message=body, tlvs=tlvs or {})
