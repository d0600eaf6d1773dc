"""Carries :class:`~engine.api.http.HttpApi` over HTTP/1.1: a lean server on the
asyncio Protocol API (uvloop in production) with httptools' parser (llhttp),
chosen by measurement (``bench/http_choice.py``: a third of aiohttp's CPU per request).

It only moves bytes and guards the door: keep-alive; pipelined requests run
concurrently (a Task each) but are answered strictly in order; bodies by
Content-Length or chunked, never buffered beyond ``api.max_body`` (413);
``Expect: 100-continue``; limits on header bytes (431) and URL length (414);
deadlines for a request's head, gaps in its body and idle keep-alive; 400 and
close for malformed requests; reading stops while the peer does not take our
writes, so no client can make the server buffer without bound.  Every response
carries ``X-Transaction-Id``; responses >= 400 are logged at info.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http
import logging
import socket
import ssl
from typing import Any, Protocol, Self
from urllib.parse import unquote

import httptools

from engine.api.http import PROBLEM, Reply, Request
from engine.api.schema import PROBLEM_TYPES, problem_body

__all__ = ["HttpServer"]

log = logging.getLogger("denpo.http")

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_CLOSE, _KEEP_ALIVE = b"Connection: close\r\n", b"Connection: keep-alive\r\n"
_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}\r\n" for s in http.HTTPStatus}


def _problem(status: int, kind: str, title: str, detail: str) -> Reply:
    """A problem of the transport's own kinds (listed with the API's in engine.api.schema)."""
    assert PROBLEM_TYPES[kind] == title
    return Reply(status, problem_body(kind, status, detail), PROBLEM)


_INTERNAL = _problem(500, "internal", "Internal error", "the request could not be answered")


def _render(reply: Reply, txid: str) -> bytes:
    """Status line and headers, without the blank line; ValueError for a reply that cannot be sent."""
    extra = "".join(f"{name}: {value}\r\n" for name, value in reply.headers) if reply.headers else ""
    if extra.count("\n") != len(reply.headers) or extra.count("\r") != len(reply.headers) or not reply.content_type.isprintable():
        raise ValueError("CR or LF inside a reply header")  # it would split the response
    status = _STATUS_LINES.get(reply.status) or f"HTTP/1.1 {int(reply.status)} Unknown\r\n"
    return (f"{status}Content-Type: {reply.content_type}\r\nContent-Length: {len(reply.body)}\r\n"
            f"X-Transaction-Id: {txid}\r\n{extra}").encode("latin-1")


class _Reject(Exception):
    """Raised inside a parser callback: stop reading, answer ``reply`` and close."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


class _Exchange:
    """One request and, in time, its reply; kept in request order per connection."""

    __slots__ = ("connection", "method", "path", "reply", "request", "task")

    def __init__(self, method: str, path: str, connection: bytes, request: Request | None = None, reply: Reply | None = None) -> None:
        self.method, self.path, self.request, self.reply = method, path, request, reply
        self.connection = connection  # the Connection header line it is answered with, if any
        self.task: asyncio.Task[Reply] | None = None


class _Connection(asyncio.Protocol):
    """One client connection: parses requests, runs them, writes replies in order."""

    def __init__(self, server: HttpServer) -> None:
        self.server, self.api, self.loop = server, server.api, server.loop
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.peer: str | None = None
        self.ready: collections.deque[_Exchange] = collections.deque()  # parsed, waiting for a slot
        self.inflight: collections.deque[_Exchange] = collections.deque()  # running or answered, unwritten
        self.closing = False  # no further request is read (close after the last reply)
        self.write_paused = self.read_paused = False
        self.head = self.in_body = self.began = self.continue_owed = False
        self.head_raw = 0
        self.url = b""
        self.eof_sent = False
        self.due: float | None = None  # deadline, enforced by HttpServer._sweep

    # --- transport events -----------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        if peer:
            self.peer = f"[{peer[0]}]:{peer[1]}" if ":" in peer[0] else f"{peer[0]}:{peer[1]}"
        self.server.conns.add(self)
        self.due = self.loop.time() + self.server.header_timeout  # the first request must come promptly
        if self.server.closing:
            self.expire()

    def connection_lost(self, exc: Exception | None) -> None:
        # Running handlers are not cancelled (an engine submit is not cut halfway); their replies are dropped.
        server = self.server
        server.conns.discard(self)
        if server._gone is not None and not server.conns:
            server._gone.set()
        self.transport, self.closing, self.due = None, True, None
        self.ready.clear()
        self.inflight.clear()

    def eof_received(self) -> bool:
        self.closing = True  # the client sends nothing more; answer what is in flight, then close
        # True keeps the transport half-open for the replies (TLS cannot: it closes either way)
        return bool(self.ready or self.inflight) and self.transport is not None and self.transport.get_extra_info("sslcontext") is None

    def pause_writing(self) -> None:
        self.write_paused = True
        self.server.write_pauses += 1
        self.due = self.loop.time() + self.server.idle_timeout  # a peer that never reads is dropped
        self._flow()

    def resume_writing(self) -> None:
        self.write_paused = False
        reading = self.head or self.in_body or self.closing  # a head, a body, or the linger after the last reply
        self.due = self.loop.time() + self.server.header_timeout if reading else None
        self._pump()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return  # after an error or the last request: discard (bounded by the deadline)
        self.began = False
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as failed:  # (one name per exception type: see codec._decode_frame)
            cause = failed.__context__
            if not isinstance(cause, _Reject):
                log.error("HTTP parser callback failed", exc_info=cause)
            self._reject(cause.reply if isinstance(cause, _Reject) else _INTERNAL)
        except httptools.HttpParserUpgrade:
            self.closing = True  # Upgrade/CONNECT: the request was answered as is; no protocol switch
            self._pump()
        except httptools.HttpParserError as exc:
            self._reject(_problem(400, "malformed_request", "The request is not valid HTTP/1.1", str(exc)))
        else:
            if self.head:
                # httptools keeps an unfinished header line to itself: count the bytes of a head
                # that spans reads (from the read after the one where it began) to bound that too.
                self.head_raw = 0 if self.began else self.head_raw + len(data)
                if self.head_raw > self.server.max_header_bytes + self.server.max_url_bytes:
                    self._reject(_problem(431, "headers_too_large", "Request header fields too large", "the request head is too large"))
            elif self.in_body:
                self.due = self.loop.time() + self.server.header_timeout  # a body may not stall either

    # --- parser callbacks (httptools) ---------------------------------------------
    def on_message_begin(self) -> None:
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.url, self.header_bytes, self.size = b"", 0, 0
        self.head, self.began, self.head_raw = True, True, 0
        self.due = self.loop.time() + self.server.header_timeout

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.server.max_url_bytes:
            raise _Reject(_problem(414, "url_too_long", "URI too long", f"at most {self.server.max_url_bytes} bytes"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value) + 4
        if self.header_bytes > self.server.max_header_bytes:
            raise _Reject(_problem(431, "headers_too_large", "Request header fields too large", f"at most {self.server.max_header_bytes} bytes"))
        key, text = name.decode("latin-1").lower(), value.decode("latin-1")
        self.headers[key] = f"{self.headers[key]}, {text}" if key in self.headers else text

    def on_headers_complete(self) -> None:
        self.head, self.in_body = False, True
        self.due = self.loop.time() + self.server.header_timeout
        length = self.headers.get("content-length")  # llhttp has checked it is a number
        if length is not None and int(length) > self.api.max_body:
            raise _Reject(Reply(413, problem_body("body_too_large", 413, f"{length} bytes; at most {self.api.max_body}"), PROBLEM))
        if self.headers.get("expect", "").lower() == "100-continue":
            self.continue_owed = True  # written once every earlier reply is out (see _pump)
            self._pump()

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.api.max_body:
            raise _Reject(Reply(413, problem_body("body_too_large", 413, f"more than {self.api.max_body} bytes"), PROBLEM))
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.in_body, self.due = False, None
        parser, url = self.parser, self.url
        keep = parser.should_keep_alive()
        if url[:1] == b"/":
            path, _, query = url.partition(b"#")[0].partition(b"?")
        else:  # absolute-form ("http://host/p?q"), or "*"
            try:
                parsed = httptools.parse_url(url) if b"://" in url else None
            except httptools.HttpParserInvalidURLError:
                raise _Reject(_problem(400, "malformed_request", "The request is not valid HTTP/1.1", "the request target is not a valid URL")) from None
            path, query = (parsed.path or b"/", parsed.query or b"") if parsed else (url, b"")
        text = path.decode("latin-1")
        if "%" in text:
            text = unquote(text)
        method = parser.get_method().decode("latin-1")
        body = b"".join(self.body) if len(self.body) != 1 else self.body[0]
        request = Request(method, text, query.decode("latin-1"), self.headers, body, self.peer)
        connection = (_KEEP_ALIVE if parser.get_http_version() == "1.0" else b"") if keep else _CLOSE
        self.closing, self.continue_owed = self.closing or not keep, False  # a 100 not sent yet is moot now
        if self.ready or self.write_paused or len(self.inflight) + 1 >= self.server.max_pipeline:
            self.ready.append(_Exchange(method, text, connection, request))
            self._pump()
        else:  # the common case: straight to a handler
            self._run(_Exchange(method, text, connection), request)

    def _run(self, exchange: _Exchange, request: Request) -> None:
        exchange.task = task = self.loop.create_task(self.api.handle(request))
        self.server.tasks.add(task)
        task.add_done_callback(self._done)
        self.inflight.append(exchange)

    # --- answering, in order --------------------------------------------------------
    def _reject(self, reply: Reply) -> None:
        if self.closing or self.transport is None:
            return
        self.closing, self.head, self.in_body = True, False, False
        self.ready.append(_Exchange("-", self.url.decode("latin-1")[:200] or "-", _CLOSE, reply=reply))
        self._pump()

    def _pump(self) -> None:
        """Write every reply that is due, in order; start waiting requests; then decide what waits for what."""
        transport = self.transport
        if transport is None or self.eof_sent or transport.is_closing():
            return
        inflight, ready, server = self.inflight, self.ready, self.server
        while True:
            while inflight and (inflight[0].task is None or inflight[0].task.done()):
                self._write(transport, inflight.popleft())
            if not ready or self.write_paused or len(inflight) >= server.max_pipeline:
                break
            while ready and len(inflight) < server.max_pipeline:
                exchange = ready.popleft()
                if exchange.reply is None:  # not a ready-made error: run the handler
                    request, exchange.request = exchange.request, None
                    self._run(exchange, request)  # type: ignore[arg-type]
                else:
                    inflight.append(exchange)
        if not (inflight or ready):
            if self.continue_owed:
                self.continue_owed = False
                if not self.closing:
                    transport.write(_CONTINUE)
            if self.closing:
                # Half-close and keep reading (discarding) until the peer closes: closing with
                # unread bytes (say, the rest of a refused body) would reset the connection and
                # could destroy the reply before the client reads it.
                self.due = self.loop.time() + server.header_timeout  # bounds that, and a peer that never reads
                if transport.can_write_eof():
                    self.eof_sent = True
                    transport.write_eof()
                else:
                    transport.close()
            elif not (self.head or self.in_body or self.write_paused):
                self.due = self.loop.time() + server.idle_timeout  # idle keep-alive
        self._flow()

    def _done(self, task: asyncio.Task[Reply]) -> None:
        self.server.tasks.discard(task)
        self._pump()

    def _write(self, transport: asyncio.Transport, exchange: _Exchange) -> None:
        reply, task = exchange.reply, exchange.task
        if task is not None:
            if task.cancelled() or task.exception() is not None:
                log.error("HTTP %s %s: handler failed", exchange.method, exchange.path,
                          exc_info=None if task.cancelled() else task.exception())
                reply = _INTERNAL
            else:
                reply = task.result()
        txid = self.api.transaction_id()
        try:
            head = _render(reply, txid)  # type: ignore[arg-type]
        except Exception:
            log.exception("HTTP %s %s: unusable reply %r", exchange.method, exchange.path, reply, extra={"transaction_id": txid})
            reply, head = _INTERNAL, _render(_INTERNAL, txid)
        if self.closing and not self.inflight and not self.ready:
            head += _CLOSE  # the last reply on this connection
        else:
            head += exchange.connection
        if reply.status >= 400:  # type: ignore[union-attr]
            log.info("HTTP %s %s -> %d", exchange.method, exchange.path, reply.status, extra={"transaction_id": txid})  # type: ignore[union-attr]
        transport.write(head + b"\r\n" + reply.body)  # type: ignore[union-attr]

    def _flow(self) -> None:
        """Read only while the peer takes our writes and fewer than max_pipeline requests wait."""
        pause = self.write_paused or len(self.inflight) + len(self.ready) >= self.server.max_pipeline
        if pause != self.read_paused and self.transport is not None and not self.transport.is_closing():
            self.read_paused = pause
            (self.transport.pause_reading if pause else self.transport.resume_reading)()

    def expire(self) -> None:
        """The deadline passed (or the server is closing): drop the connection."""
        transport, self.due, self.closing = self.transport, None, True
        if transport is not None:
            transport.abort() if transport.get_write_buffer_size() else transport.close()


class Api(Protocol):
    """What the server needs of :class:`~engine.api.http.HttpApi` (tests and benchmarks bring their own)."""

    max_body: int

    def transaction_id(self) -> str: ...

    async def handle(self, request: Request) -> Reply: ...


class HttpServer:
    """``async with HttpServer(api, host, port):`` serves until the block ends."""

    def __init__(self, api: Api, host: str = "127.0.0.1", port: int = 8080, *, ssl_context: ssl.SSLContext | None = None,
                 header_timeout: float = 15.0, idle_timeout: float = 60.0, max_header_bytes: int = 16384,
                 max_url_bytes: int = 8192, max_pipeline: int = 32, shutdown_timeout: float = 5.0,
                 sock: socket.socket | None = None) -> None:
        self.api, self.host, self.port, self.ssl_context, self.sock = api, host, port, ssl_context, sock  # sock: already listening
        self.header_timeout, self.idle_timeout, self.shutdown_timeout = header_timeout, idle_timeout, shutdown_timeout
        self.max_header_bytes, self.max_url_bytes, self.max_pipeline = max_header_bytes, max_url_bytes, max_pipeline
        self.conns: set[_Connection] = set()
        self.tasks: set[asyncio.Task[Reply]] = set()
        self.write_pauses = 0  # how often a connection stopped reading because its peer did not read
        self.closing = False
        self._server: asyncio.AbstractServer | None = None
        self._sweeper: asyncio.TimerHandle | None = None
        self._gone: asyncio.Event | None = None  # set once the last connection is gone, when closing
        # deadlines are checked this often (a timer per connection would cost one per request)
        self._tick = max(0.02, min(1.0, header_timeout / 4, idle_timeout / 4))

    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.closing, self._gone = False, None
        tls: dict[str, Any] = {"ssl": self.ssl_context, "ssl_handshake_timeout": self.header_timeout} if self.ssl_context else {}
        where: dict[str, Any] = {"sock": self.sock} if self.sock else {"host": self.host, "port": self.port, "reuse_address": True}
        # untyped: uvloop's Server.sockets is a list where asyncio's stub says tuple, and compiled
        # (mypyc) code checks builtin types
        server: Any = await self.loop.create_server(lambda: _Connection(self), backlog=1024, **where, **tls)
        self._server = server
        if (self.port == 0 or self.sock) and server.sockets:
            self.port = server.sockets[0].getsockname()[1]
        self._sweeper = self.loop.call_later(self._tick, self._sweep)

    def _sweep(self) -> None:
        now = self.loop.time()
        for conn in [c for c in self.conns if c.due is not None and c.due <= now]:
            conn.expire()
        self._sweeper = self.loop.call_later(self._tick, self._sweep)

    async def close(self) -> None:
        """Stop listening; let running handlers finish (at most ``shutdown_timeout``); close every connection."""
        if self._server is None:
            return
        server, self._server, self.closing = self._server, None, True
        server.close()
        for conn in list(self.conns):
            conn.closing = True  # no further request; the last reply carries Connection: close
            conn.ready.clear()
            if not conn.inflight:
                conn.expire()
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=self.shutdown_timeout)
        for task in list(self.tasks):
            task.cancel()  # past the grace period
        for conn in list(self.conns):  # let last replies be flushed (bounded), then drop everything
            if conn.inflight or conn.write_paused or conn.transport is None:
                conn.expire()
            else:
                conn.transport.close()
        if self.conns:
            self._gone = asyncio.Event()
            try:
                await asyncio.wait_for(self._gone.wait(), self.shutdown_timeout)
            except TimeoutError:
                for transport in [c.transport for c in self.conns if c.transport is not None]:
                    transport.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(server.wait_closed(), self.shutdown_timeout)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
