"""Receipt path throughput and memory: parse_receipt, Correlator register+match, bytes per entry.

* ``parse_per_s``: :func:`engine.dlr.parse_receipt` on a decoded deliver_sm as
  our simulator writes it (Appendix B text + receipted_message_id and
  message_state TLVs);
* ``parse_variant_per_s``: the same receipt with its fields in another order
  and no TLVs (the general label scan instead of the canonical fast path);
* ``register_match_per_s``: one ``register`` (hex response id) + one ``match``
  (decimal text id, no TLV, so both id readings are in play) per message,
  followed by ``forget``; the index stays at its steady size;
  ``register_match_tlv_per_s``: the same with the receipted_message_id TLV
  (what our simulator and most SMSCs send);
* ``held_first_per_s``: receipt first (held), then ``register`` hands it back;
* ``*_bytes_per_entry``: tracemalloc over ``entries`` registered ids / held
  receipts (the id strings and Receipt objects counted separately).

Each rate is the median of ``repeats`` runs of ``n`` operations, one core.

    .venv/bin/python -m bench.dlr_bench [--n 100000] [--repeats 3] [--entries 50000]
"""

from __future__ import annotations

import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

from engine.dlr import Correlator, IdScheme, Receipt, parse_receipt
from engine.smpp.codec import decode, encode
from engine.smpp.constants import EsmClass, MessageState, Tag
from engine.smpp.pdu import DeliverSm

__all__ = ["run", "sample_receipt"]

BASE = 1763700000123456


def sample_receipt(n: int = BASE, *, tlvs: bool = True, reorder: bool = False) -> DeliverSm:
    text = b"id:%d sub:001 dlvrd:001 submit date:2611211200 done date:2611211201 stat:DELIVRD err:000 text:Your code is 1234" % n
    if reorder:
        text = b"stat:DELIVRD err:000 ID:%d Submit Date:2611211200 Done Date:2611211201 text:Your code is 1234" % n
    pdu = DeliverSm(
        sequence_number=1,
        source_addr_ton=1,
        source_addr_npi=1,
        source_addr="819012345678",
        dest_addr_ton=2,
        dest_addr_npi=1,
        destination_addr="0120123456",
        esm_class=EsmClass.SMSC_DELIVERY_RECEIPT,
        short_message=text,
        tlvs={Tag.RECEIPTED_MESSAGE_ID: "%x" % n, Tag.MESSAGE_STATE: int(MessageState.DELIVERED)} if tlvs else {},
    )
    out = decode(encode(pdu))
    assert isinstance(out, DeliverSm)
    return out


def _rate(fn: Callable[[], int], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t = time.perf_counter()
        ops = fn()
        rates.append(ops / (time.perf_counter() - t))
    return statistics.median(rates)


def _bytes(fn: Callable[[], Any]) -> float:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        keep = fn()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    del keep
    return sum(s.size_diff for s in after.compare_to(before, "filename"))


def run(*, n: int = 100_000, repeats: int = 3, entries: int = 50_000) -> dict[str, Any]:
    pdu = sample_receipt()
    variant = sample_receipt(tlvs=False, reorder=True)

    def parse(p: DeliverSm) -> Callable[[], int]:
        def go() -> int:
            for _ in range(n):
                parse_receipt(p)
            return n

        return go

    scheme = IdScheme(response="hex")
    resp_ids = ["%x" % (BASE + i) for i in range(n)]
    receipts = [
        Receipt(message_id=str(BASE + i), text_id=str(BASE + i), state=2, stat="DELIVRD", final=True, delivered=True)
        for i in range(n)
    ]

    def register_match() -> int:
        c = Correlator(schemes={"au": scheme})
        reg, match, forget = c.register, c.match, c.forget
        for i in range(n):
            reg("au", resp_ids[i], i, 0.0)
            match("au", receipts[i], 0.0)
            forget("au", resp_ids[i])
        assert c.stats()["matched"] == n
        return n

    tlv_receipts = [
        Receipt(message_id=resp_ids[i], tlv_id=resp_ids[i], text_id=str(BASE + i), state=2, final=True, delivered=True)
        for i in range(n)
    ]

    def register_match_tlv() -> int:
        c = Correlator(schemes={"au": scheme})
        reg, match, forget = c.register, c.match, c.forget
        for i in range(n):
            reg("au", resp_ids[i], i, 0.0)
            match("au", tlv_receipts[i], 0.0)
            forget("au", resp_ids[i])
        return n

    def held_first() -> int:
        c = Correlator(schemes={"au": scheme})
        for i in range(n):
            c.match("au", receipts[i], 0.0)
            c.register("au", resp_ids[i], i, 0.0)
        assert c.stats()["released"] == n
        return n

    figures: dict[str, Any] = {
        "n": n,
        "repeats": repeats,
        "parse_per_s": round(_rate(parse(pdu), repeats)),
        "parse_variant_per_s": round(_rate(parse(variant), repeats)),
        "register_match_per_s": round(_rate(register_match, repeats)),
        "register_match_tlv_per_s": round(_rate(register_match_tlv, repeats)),
        "held_first_per_s": round(_rate(held_first, repeats)),
    }
    figures["parse_us"] = round(1e6 / figures["parse_per_s"], 2)

    # memory: index entries alone (ids and receipts made beforehand)
    ids = [str(BASE + i) for i in range(entries)]
    c = Correlator(default_scheme=IdScheme(response="decimal"))
    figures["registered_bytes_per_entry"] = round(
        _bytes(lambda: [c.register("d", ids[i], i, 0.0) for i in range(entries)] and None) / entries
    )
    figures["id_string_bytes"] = round(_bytes(lambda: [str(BASE + 10**9 + i) for i in range(entries)]) / entries)
    held = [parse_receipt(sample_receipt(BASE + 10**10 + i)) for i in range(entries)]
    c2 = Correlator(default_scheme=IdScheme(response="hex"))
    figures["held_bytes_per_entry"] = round(_bytes(lambda: [c2.match("d", r, 0.0) for r in held] and None) / entries)
    figures["receipt_bytes"] = round(
        _bytes(lambda: [parse_receipt(sample_receipt(BASE + 10**11 + i)) for i in range(entries)]) / entries
    )
    return figures


if __name__ == "__main__":  # pragma: no cover
    import argparse
    import json

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--entries", type=int, default=50_000)
    args = parser.parse_args()
    from bench._harness import machine

    print(json.dumps({**run(n=args.n, repeats=args.repeats, entries=args.entries), "machine": machine()}))
