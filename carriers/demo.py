"""``denpo sim-demo``: the four carrier simulators and a real SMPP exchange, in one process.

Until the engine's ``denpo serve`` exists this is what the README's first
command runs: it starts au, docomo, SoftBank and Rakuten simulators on free
ports, binds a transceiver to each, plans a mixed batch with the text layer
(Japanese, long, emoji, newlines, two messages to one au number), submits
every part, waits for every receipt and prints what happened.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from carriers.smsc import SmscSimulator
from engine.client import SimpleEsme
from engine.ops.config import CARRIERS, simulator_settings
from engine.smpp.constants import MessageState, Tag
from engine.smpp.pdu import SubmitSm
from engine.text import plan

__all__ = ["run_demo", "DEMO_BATCH"]

DEMO_BATCH: list[tuple[str, str, str]] = [
    ("au", "+819011110001", "【denpo】認証コードは 482913 です。10分以内に入力してください。"),
    ("au", "+819011110001", "同じ au 番号への2通目。12秒待たずに送ると au は受け付けません。"),
    ("docomo", "+818022220002", "ご予約ありがとうございます。\n日時: 12月1日 10:00\n場所: 東京本店" * 3),
    ("softbank", "+817033330003", "SoftBank は 670 文字まで 1 通として課金されます。" * 8),
    ("rakuten", "+819044440004", "Rakuten: emoji 🎉 count as two characters. 絵文字は2文字です。"),
    ("docomo", "+818022220005", "Plain ASCII still goes as UCS-2 to Japanese carriers."),
]


def _national_to_wire(number: str) -> str:
    return number.lstrip("+")


async def run_demo(*, dlr_delay_ms: float = 200.0, out: Any = print) -> int:
    sims = {c: SmscSimulator(simulator_settings(carrier=c, port=0, dlr_delay_ms=dlr_delay_ms, seed=7)) for c in CARRIERS}
    for sim in sims.values():
        await sim.start()
    out("simulators: " + ", ".join(f"{c} on 127.0.0.1:{s.port}" for c, s in sims.items()))
    esmes = {c: await SimpleEsme.connect("127.0.0.1", s.port, system_id="demo", password="demo", window=50) for c, s in sims.items()}
    started = time.perf_counter()
    rows = []
    waiting: dict[str, dict[str, Any]] = {}  # message id -> row
    try:
        for i, (carrier, number, text) in enumerate(DEMO_BATCH):
            text_plan = plan(text, carrier, ref=i + 1)
            row = {
                "carrier": carrier,
                "to": number,
                "characters": text_plan.characters,
                "parts": len(text_plan.segments),
                "billing_units": text_plan.billing_units,
                "concatenation": text_plan.concatenation,
                "receipts": [],
                "submit": [],
            }
            rows.append(row)
            for segment in text_plan.segments:
                pdu = SubmitSm(
                    source_addr_ton=2,
                    source_addr_npi=1,
                    source_addr="0120000000",
                    dest_addr_ton=1,
                    dest_addr_npi=1,
                    destination_addr=_national_to_wire(number),
                    esm_class=text_plan.esm_class,
                    registered_delivery=1,
                    data_coding=text_plan.data_coding,
                    short_message=b"" if text_plan.use_message_payload else segment,
                    tlvs={Tag.MESSAGE_PAYLOAD: segment} if text_plan.use_message_payload else {},
                )
                resp = await esmes[carrier].request(pdu, timeout=10)
                row["submit"].append(resp.command_status)
                if resp.command_status == 0:
                    waiting[resp.message_id] = row
        deadline = time.monotonic() + 10 + dlr_delay_ms / 1000
        while waiting and time.monotonic() < deadline:
            for esme in esmes.values():
                while not esme.delivered.empty():
                    receipt = esme.delivered.get_nowait()
                    message_id = receipt.tlvs.get(Tag.RECEIPTED_MESSAGE_ID)
                    row = waiting.pop(message_id, None)
                    if row is not None:
                        row["receipts"].append(MessageState(receipt.tlvs[Tag.MESSAGE_STATE]).stat)
            await asyncio.sleep(0.02)
        seconds = time.perf_counter() - started
    finally:
        for esme in esmes.values():
            await esme.close()
        stats = {c: s.stats() for c, s in sims.items()}
        for sim in sims.values():
            await sim.stop()

    header = f"{'carrier':9} {'to':15} {'chars':>5} {'parts':>5} {'units':>5} {'concat':8} receipts"
    out("")
    out(header)
    out("-" * len(header))
    for row in rows:
        receipts = " ".join(row["receipts"]) or "(none)"
        out(
            f"{row['carrier']:9} {row['to']:15} {row['characters']:5} {row['parts']:5} "
            f"{row['billing_units']:5} {row['concatenation']:8} {receipts}"
        )
    out("")
    au = stats["au"]
    out(
        f"{sum(r['parts'] for r in rows)} PDUs submitted, "
        f"{sum(s['receipts_sent'] for s in stats.values())} receipts in {seconds:.2f} s; "
        f"au pacing violations seen by the au simulator: {au['violations']} "
        "(the demo sends two messages to one au number back to back; this demo speaks SMPP without the engine, which paces them: see examples/embedded.py)"
    )
    missing = len(waiting)
    if missing:
        out(f"{missing} receipt(s) did not arrive")
    return 1 if missing else 0
