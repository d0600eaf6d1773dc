"""Codec throughput: encode and decode of submit_sm, submit_sm_resp and a receipt deliver_sm.

Decoding goes through :class:`PduDecoder` fed 100 frames at a time, as a
coalesced read delivers them.  Each figure is the median of ``repeats`` runs
of about ``seconds`` each, on one core (this process).

    denpo bench codec [--repeats 5] [--seconds 0.5]
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

from engine.smpp.codec import PduDecoder, encode
from engine.smpp.constants import EsmClass, MessageState, Tag
from engine.smpp.pdu import DeliverSm, Pdu, SubmitSm, SubmitSmResp

__all__ = ["run", "sample_pdus"]

BATCH = 100


def sample_pdus() -> dict[str, Pdu]:
    """The three PDUs of one message's life, as the engine sends and receives them."""
    text = ("お客様の認証コードは 123456 です。有効期限は10分です。" * 3)[:67]
    udh = bytes((0x05, 0x00, 0x03, 0x2A, 0x02, 0x01))
    submit = SubmitSm(
        sequence_number=123456,
        source_addr_ton=2,
        source_addr_npi=1,
        source_addr="0120123456",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr="819012345678",
        esm_class=EsmClass.UDHI,
        registered_delivery=1,
        data_coding=8,
        short_message=udh + text.encode("utf-16-be"),
    )
    resp = SubmitSmResp(sequence_number=123456, message_id="1763700000123456")
    receipt = DeliverSm(
        sequence_number=99,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="819012345678",
        dest_addr_ton=2,
        dest_addr_npi=1,
        destination_addr="0120123456",
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        short_message=b"id:1763700000123456 sub:001 dlvrd:001 submit date:2611211200 "
        b"done date:2611211200 stat:DELIVRD err:000 text:",
        tlvs={Tag.RECEIPTED_MESSAGE_ID: "1763700000123456", Tag.MESSAGE_STATE: int(MessageState.DELIVERED)},
    )
    return {"submit_sm": submit, "submit_sm_resp": resp, "receipt": receipt}


def _rate(fn: Callable[[], None], per_call: int, seconds: float) -> float:
    n = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        n += per_call
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def _measure(pdu: Pdu, seconds: float) -> dict[str, float]:
    frames = encode(pdu) * BATCH
    decoder = PduDecoder()

    def do_encode() -> None:
        for _ in range(BATCH):
            encode(pdu)

    def do_decode() -> None:
        decoder.feed(frames)
        nxt = decoder.next_pdu
        while nxt() is not None:
            pass

    def do_both() -> None:
        decoder.feed(b"".join([encode(pdu) for _ in range(BATCH)]))
        nxt = decoder.next_pdu
        while nxt() is not None:
            pass

    return {
        "encode_per_s": _rate(do_encode, BATCH, seconds),
        "decode_per_s": _rate(do_decode, BATCH, seconds),
        "encode_decode_per_s": _rate(do_both, BATCH, seconds),
    }


def run(*, repeats: int = 5, seconds: float = 0.5) -> dict[str, Any]:
    figures: dict[str, Any] = {"repeats": repeats}
    for name, pdu in sample_pdus().items():
        runs = [_measure(pdu, seconds) for _ in range(repeats)]
        for key in runs[0]:
            figures[f"{name}_{key}"] = round(statistics.median(r[key] for r in runs))
    figures["submit_sm_encode_decode_us"] = round(1e6 / figures["submit_sm_encode_decode_per_s"], 2)
    return figures
