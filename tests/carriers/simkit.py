"""Helpers for the simulator tests: start a simulator on 127.0.0.1 (port 0),
bind clients, build realistic submits with engine.text, read receipts.

Every protocol test talks to the simulator over real TCP.  Tests that assert
timing run under looptime (``@pytest.mark.looptime``) and start the simulator
inside the test body, so the simulator, the clients and the test share one
virtual clock (``asyncio.get_running_loop().time()``).
"""

from __future__ import annotations

import asyncio
import re
import struct
from contextlib import asynccontextmanager
from typing import Any, AsyncIterator, Iterable

from carriers.smsc import SmscSimulator
from engine.client import SimpleEsme
from engine.ops.config import simulator_settings
from engine.smpp.codec import decode, encode
from engine.smpp.constants import CommandId, EsmClass, Status, Tag
from engine.smpp.pdu import DataSm, DeliverSmResp, Pdu, SubmitSm
from engine.smpp.session import Request
from engine.text import plan
from tests.vtime import elapse

HOST = "127.0.0.1"
SOURCE = "0120123456"  # the enterprise's sender number (submit source_addr)
FIXED_WALL = 1735689615.0  # 2025-01-01 00:00:15 UTC = 09:00:15 JST

ROK = Status.ESME_ROK


def now() -> float:
    return asyncio.get_running_loop().time()


@asynccontextmanager
async def running(carrier: str = "docomo", *, wallclock: Any = None, **knobs: Any) -> AsyncIterator[SmscSimulator]:
    """A started simulator on 127.0.0.1, a free port; stopped on exit.  Seeded (0)
    unless the test names a seed, so random defaults (docomo's partial failures)
    are reproducible."""
    knobs.setdefault("seed", 0)
    settings = simulator_settings(carrier=carrier, port=0, **knobs)
    extra = {"wallclock": wallclock} if wallclock is not None else {}
    sim = SmscSimulator(settings, **extra)
    await sim.start()
    try:
        yield sim
    finally:
        await sim.stop()


class TimedEsme(SimpleEsme):
    """SimpleEsme that notes when (loop time) each deliver_sm arrived: :meth:`arrival`."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.arrivals: dict[int, float] = {}

    def handle_events(self, conn: Any, events: list[Any]) -> None:
        t = now()
        for ev in events:
            if isinstance(ev, Request) and ev.pdu.command_id == CommandId.DELIVER_SM:
                self.arrivals[id(ev.pdu)] = t
        super().handle_events(conn, events)

    def arrival(self, pdu: Pdu) -> float:
        return self.arrivals[id(pdu)]


async def bind(sim: SmscSimulator, bind: str = "transceiver", *, system_id: str = "denpo", password: str = "", cls: type = TimedEsme, **options: Any) -> Any:
    options.setdefault("window", 100)
    return await cls.connect(HOST, sim.port, system_id=system_id, password=password, bind=bind, **options)


class SilentEsme(TimedEsme):
    """An ESME that collects deliver_sm but answers none of them until told to (:meth:`ack`)."""

    def handle_events(self, conn: Any, events: list[Any]) -> None:
        t = now()
        rest = []
        for ev in events:
            if isinstance(ev, Request) and ev.pdu.command_id == CommandId.DELIVER_SM:
                self.arrivals[id(ev.pdu)] = t
                self.delivered.put_nowait(ev.pdu)
            else:
                rest.append(ev)
        if rest:
            SimpleEsme.handle_events(self, conn, rest)

    def ack(self, pdu: Pdu, status: int = 0) -> None:
        assert self.conn is not None
        self.conn.send(DeliverSmResp(sequence_number=pdu.sequence_number, command_status=status))

    def drop(self) -> None:
        """Lose the connection abruptly (no unbind, nothing flushed)."""
        assert self.conn is not None and self.conn.transport is not None
        self.conn.transport.abort()


# --- building submits -----------------------------------------------------------------


def sm(dest: str, text: bytes = b"hello", *, rd: int = 1, dc: int = 0, esm: int = 0, source: str = SOURCE, tlvs: dict | None = None) -> SubmitSm:
    return SubmitSm(
        source_addr=source,
        destination_addr=dest,
        esm_class=esm,
        data_coding=dc,
        registered_delivery=rd,
        short_message=text,
        tlvs=dict(tlvs or {}),
    )


def payload_sm(dest: str, text: str, *, rd: int = 1, source: str = SOURCE) -> SubmitSm:
    """One submit_sm with the whole UCS-2 text in message_payload (short_message empty)."""
    return sm(dest, b"", rd=rd, dc=0x08, source=source, tlvs={Tag.MESSAGE_PAYLOAD: text.encode("utf-16-be")})


def data_sm(dest: str, text: str = "hello", *, rd: int = 1, source: str = SOURCE) -> DataSm:
    return DataSm(
        source_addr=source,
        destination_addr=dest,
        registered_delivery=rd,
        data_coding=0x08,
        tlvs={Tag.MESSAGE_PAYLOAD: text.encode("utf-16-be")},
    )


def text_pdus(carrier: str, dest: str, text: str, *, ref: int = 1, rd: int = 1, source: str = SOURCE) -> list[SubmitSm]:
    """The submit_sm PDUs engine.text plans for ``text`` to ``carrier`` (UDH, SAR or payload)."""
    p = plan(text, carrier, ref=ref)
    pdus = []
    for i, segment in enumerate(p.segments):
        tlvs: dict[int, Any] = {}
        body = segment
        if p.use_message_payload:
            tlvs[Tag.MESSAGE_PAYLOAD] = segment
            body = b""
        elif p.concatenation == "sar" and p.sar:
            r, total, seq = p.sar[i]
            tlvs.update({Tag.SAR_MSG_REF_NUM: r, Tag.SAR_TOTAL_SEGMENTS: total, Tag.SAR_SEGMENT_SEQNUM: seq})
        pdus.append(sm(dest, body, rd=rd, dc=p.data_coding, esm=p.esm_class, source=source, tlvs=tlvs))
    return pdus


def udh_parts(dest: str, texts: list[str], *, kind: str = "udh8", ref: int = 7, rd: int = 1, total: int | None = None, order: Iterable[int] | None = None) -> list[tuple[int, SubmitSm]]:
    """Hand-built concatenated parts (UCS-2), numbered from 1, in ``order`` (default 1..n):
    ``[(part_number, pdu), …]``.  ``kind``: udh8, udh16 or sar."""
    n = len(texts)
    total = n if total is None else total
    out = []
    for seq in order or range(1, n + 1):
        body = texts[seq - 1].encode("utf-16-be")
        if kind == "udh8":
            pdu = sm(dest, bytes([5, 0, 3, ref & 0xFF, total, seq]) + body, dc=8, esm=0x40, rd=rd)
        elif kind == "udh16":
            pdu = sm(dest, bytes([6, 8, 4, ref >> 8, ref & 0xFF, total, seq]) + body, dc=8, esm=0x40, rd=rd)
        elif kind == "sar":
            tlvs = {Tag.SAR_MSG_REF_NUM: ref, Tag.SAR_TOTAL_SEGMENTS: total, Tag.SAR_SEGMENT_SEQNUM: seq}
            pdu = sm(dest, body, dc=8, rd=rd, tlvs=tlvs)
        else:
            raise ValueError(kind)
        out.append((seq, pdu))
    return out


async def submit_all(esme: SimpleEsme, pdus: Iterable[Pdu], timeout: float = 30.0) -> list[Pdu]:
    """Submit one after another (each waits for its response)."""
    return [await esme.request(p, timeout=timeout) for p in pdus]


# --- reading receipts ------------------------------------------------------------------

RECEIPT_RE = re.compile(
    rb"^id:(?P<id>\S+) sub:(?P<sub>\d{3}) dlvrd:(?P<dlvrd>\d{3}) submit date:(?P<submit>\d{10}) "
    rb"done date:(?P<done>\d{10}) stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) text:(?P<text>.*)$",
    re.S,
)


def is_receipt(pdu: Pdu) -> bool:
    return pdu.command_id == CommandId.DELIVER_SM and (pdu.esm_class & EsmClass.TYPE_MASK) == EsmClass.SMSC_DELIVERY_RECEIPT


def fields(pdu: Pdu) -> dict[str, str]:
    """The Appendix B fields of a receipt's text (AssertionError when it does not parse)."""
    assert is_receipt(pdu), f"not a delivery receipt: esm_class=0x{pdu.esm_class:02x}"
    m = RECEIPT_RE.match(pdu.short_message)
    assert m is not None, f"receipt text is not Appendix B: {pdu.short_message!r}"
    return {k: v.decode("latin-1") for k, v in m.groupdict().items()}


def rid(pdu: Pdu) -> str:
    """receipted_message_id TLV."""
    return pdu.tlvs[Tag.RECEIPTED_MESSAGE_ID]


def stat(pdu: Pdu) -> str:
    return fields(pdu)["stat"]


async def collect(esme: SimpleEsme, n: int, timeout: float = 120.0) -> list[Pdu]:
    """The next ``n`` delivered PDUs (fails with TimeoutError when they do not come)."""
    return [await esme.next_delivered(timeout) for _ in range(n)]


async def collect_timed(esme: Any, n: int, timeout: float = 120.0) -> list[tuple[float, Pdu]]:
    """The next ``n`` delivered PDUs with the loop time each arrived at (a :class:`TimedEsme`)."""
    return [(esme.arrival(p), p) for p in await collect(esme, n, timeout)]


async def nothing_for(esme: SimpleEsme, seconds: float) -> None:
    """Under looptime: let ``seconds`` of virtual time pass and assert nothing was delivered."""
    await elapse(seconds)
    assert esme.delivered.empty(), f"unexpected deliveries: {[p for p in esme.delivered._queue]}"  # type: ignore[attr-defined]


# --- a raw SMPP client (to see exactly what the simulator sends, EOF included) ----------


class Raw:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.seq = 0

    @classmethod
    async def open(cls, port: int) -> "Raw":
        reader, writer = await asyncio.open_connection(HOST, port)
        return cls(reader, writer)

    def send(self, pdu: Pdu) -> int:
        if not pdu.is_response:
            self.seq += 1
            pdu.sequence_number = self.seq
        self.writer.write(encode(pdu))
        return pdu.sequence_number

    async def read(self, timeout: float = 10.0) -> Pdu | None:
        """The next PDU, or None at EOF."""
        try:
            head = await asyncio.wait_for(self.reader.readexactly(4), timeout)
        except asyncio.IncompleteReadError as exc:
            assert exc.partial == b"", "connection closed mid-frame"
            return None
        except ConnectionResetError:
            return None
        (length,) = struct.unpack(">I", head)
        rest = await asyncio.wait_for(self.reader.readexactly(length - 4), timeout)
        return decode(head + rest)

    def close(self) -> None:
        self.writer.close()
