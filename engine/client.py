"""A small awaitable SMPP client (ESME) for tools, demos and tests.

One future per request makes it pleasant to script against, and too slow
for the dispatch path: the engine's binds live in engine/pool, with no task
or future per message.  Delivered PDUs (receipts, MO) are acknowledged at
once and collected in :attr:`SimpleEsme.delivered`.

    async with await SimpleEsme.connect("127.0.0.1", 2775, system_id="x", password="y") as esme:
        resp = await esme.request(SubmitSm(destination_addr="819012345678", short_message=b"hi"))
        receipt = await esme.next_delivered()
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from engine.smpp.constants import CommandId, Status
from engine.smpp.errors import SmppError
from engine.smpp.pdu import BindReceiver, BindTransceiver, BindTransmitter, DataSmResp, DeliverSmResp, Pdu, Unbind
from engine.smpp.session import Event, ProtocolError, Request, Response, Role, Session, Timeout, Unbound
from engine.transport import SmppConnection

__all__ = ["SimpleEsme", "BindError"]

_BIND = {"transmitter": BindTransmitter, "receiver": BindReceiver, "transceiver": BindTransceiver}


class BindError(SmppError):
    def __init__(self, status: int) -> None:
        from engine.smpp.constants import status_name

        self.status = status
        super().__init__(f"bind refused: {status_name(status)}")


class SimpleEsme:
    def __init__(self, *, window: int = 10, response_timeout: float = 10.0, enquire_link_interval: float | None = 30.0) -> None:
        self._session = Session(
            Role.ESME, window=window, response_timeout=response_timeout, enquire_link_interval=enquire_link_interval
        )
        self.conn: SmppConnection | None = None
        self.delivered: asyncio.Queue[Pdu] = asyncio.Queue()
        self.events: list[Event] = []  # everything that was not a response or a deliver_sm
        self.lost = asyncio.Event()
        self.ack_status = Status.ESME_ROK  # what deliver_sm is answered with
        self._slots = asyncio.Semaphore(window)

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        system_id: str = "denpo",
        password: str = "",
        bind: Literal["transmitter", "receiver", "transceiver"] = "transceiver",
        **options: Any,
    ) -> "SimpleEsme":
        """Connect and bind; raises :class:`BindError` with the status when refused."""
        esme = cls(**options)
        loop = asyncio.get_running_loop()
        _transport, conn = await loop.create_connection(lambda: SmppConnection(esme._session, esme), host, port)
        esme.conn = conn
        resp = await esme.request(_BIND[bind](system_id=system_id, password=password))
        if resp.command_status not in (Status.ESME_ROK, Status.ESME_RALYBND):
            conn.close()
            raise BindError(resp.command_status)
        return esme

    async def __aenter__(self) -> "SimpleEsme":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def session(self) -> Session:
        return self._session

    async def request(self, pdu: Pdu, *, timeout: float | None = None) -> Pdu:
        """Send a request and wait for its response (or generic_nack)."""
        assert self.conn is not None
        future: asyncio.Future[Pdu] = asyncio.get_running_loop().create_future()
        async with self._slots:
            self.conn.send(pdu, future)
            if timeout is None:
                return await future
            return await asyncio.wait_for(future, timeout)

    async def next_delivered(self, timeout: float | None = None) -> Pdu:
        return await asyncio.wait_for(self.delivered.get(), timeout)

    async def close(self) -> None:
        """Unbind (when bound) and close."""
        conn = self.conn
        if conn is None or conn.transport is None:
            return
        if self._session.is_bound:
            try:
                await self.request(Unbind(), timeout=5.0)
            except (asyncio.TimeoutError, SmppError, ConnectionError):
                pass
        conn.close()
        await conn.closed.wait()

    # --- SmppHandler ------------------------------------------------------------

    def connection_made(self, conn: SmppConnection) -> None:
        pass

    def handle_events(self, conn: SmppConnection, events: list[Event]) -> None:
        for ev in events:
            if isinstance(ev, Response):
                if isinstance(ev.context, asyncio.Future) and not ev.context.done():
                    ev.context.set_result(ev.pdu)
            elif isinstance(ev, Request):
                pdu = ev.pdu
                if pdu.command_id == CommandId.DELIVER_SM:
                    conn.send(DeliverSmResp(sequence_number=pdu.sequence_number, command_status=self.ack_status))
                    self.delivered.put_nowait(pdu)
                elif pdu.command_id == CommandId.DATA_SM:
                    conn.send(DataSmResp(sequence_number=pdu.sequence_number))
                    self.delivered.put_nowait(pdu)
                else:
                    self.events.append(ev)
            elif isinstance(ev, Timeout):
                if isinstance(ev.context, asyncio.Future) and not ev.context.done():
                    ev.context.set_exception(asyncio.TimeoutError(f"no response to seq {ev.sequence_number}"))
                self.events.append(ev)
            elif isinstance(ev, (Unbound, ProtocolError)):
                self.events.append(ev)
            else:
                self.events.append(ev)

    def connection_lost(self, conn: SmppConnection, exc: Exception | None) -> None:
        for _seq, _cmd, ctx, _t in self._session.abandon_outstanding():
            if isinstance(ctx, asyncio.Future) and not ctx.done():
                ctx.set_exception(ConnectionError("connection lost before the response"))
        self.lost.set()
