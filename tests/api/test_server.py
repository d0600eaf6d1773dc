"""engine.api.server over real TCP on 127.0.0.1, with a stub in place of HttpApi and
raw sockets as the client, so every byte on the wire is ours to choose.

No wall-clock sleeps: waits are for events (an asyncio.Event, EOF on a socket)
under a bounded ``asyncio.wait_for``; ``asyncio.sleep(0)`` only yields to the loop.
Every scenario also runs on uvloop (production's loop), see the last test.
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from engine.api import server as server_module
from engine.api.http import Reply, Request
from engine.api.server import HttpServer
from tests.tlsutil import can_make_certificates, self_signed

T = 5.0  # bound on every wait for an event


class Stub:
    """What HttpServer needs of HttpApi: handle, transaction_id, max_body."""

    def __init__(self, max_body: int = 1000) -> None:
        self.max_body = max_body
        self.requests: list[Request] = []
        self.gates: dict[str, asyncio.Event] = {}  # path -> the handler waits for it
        self.entered: dict[str, asyncio.Event] = {}  # path -> set when the handler starts
        self.cancelled: list[str] = []
        self.big = b""
        self.n = 0

    def transaction_id(self) -> str:
        self.n += 1
        return f"tx-{self.n}"

    async def handle(self, request: Request) -> Reply:
        self.requests.append(request)
        if request.path in self.entered:
            self.entered[request.path].set()
        if request.path in self.gates:
            try:
                await self.gates[request.path].wait()
            except asyncio.CancelledError:
                self.cancelled.append(request.path)
                raise
        if request.path == "/boom":
            raise RuntimeError("boom")
        if request.path == "/crlf":
            return Reply(200, b"{}", "application/json", (("X-Bad", "a\r\nInjected: 1"),))
        if request.path == "/big":
            return Reply(200, self.big, "application/octet-stream")
        if request.path == "/missing":
            return Reply(404, b'{"status":404}', "application/problem+json")
        echo = {"method": request.method, "path": request.path, "query": request.query, "headers": dict(request.headers),
                "body": request.body.decode("latin-1"), "peer": request.peer}
        return Reply(200, json.dumps(echo).encode(), "application/json", (("X-Echo", "yes"),))


@asynccontextmanager
async def serving(api: Stub | None = None, **kw: Any) -> AsyncIterator[HttpServer]:
    """A server on a free port; fails the test if anything reached the loop's exception handler."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    try:
        async with HttpServer(api or Stub(), "127.0.0.1", 0, **kw) as server:
            yield server
    finally:
        loop.set_exception_handler(old)
    assert not errors, errors


async def connect(server: HttpServer, **kw: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.port, **kw)


async def response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers["content-length"])), T)
    return int(lines[0].split()[1]), headers, body


async def closed(reader: asyncio.StreamReader) -> bool:
    """True once the server has closed the connection (EOF, not a reset), after any unread bytes."""
    return await asyncio.wait_for(reader.read(), T) == b""


def get(path: str = "/", extra: str = "", version: str = "1.1") -> bytes:
    return f"GET {path} HTTP/{version}\r\nHost: t\r\n{extra}\r\n".encode()


def post(path: str, body: bytes, extra: str = "") -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n".encode() + body


async def test_keep_alive_reuses_the_connection_and_passes_the_request_through():
    stub = Stub()
    async with serving(stub) as server:
        reader, writer = await connect(server)
        writer.write(post("/v1/a%20b?x=1&y=%2F", b'{"k": 1}', "X-Dup: one\r\nx-dup: two\r\nContent-Type: application/json\r\n"))
        status, headers, body = await response(reader)
        assert status == 200 and headers["content-type"] == "application/json" and headers["x-echo"] == "yes"
        assert headers["x-transaction-id"] == "tx-1" and int(headers["content-length"]) == len(body)
        assert "connection" not in headers
        echo = json.loads(body)
        assert echo["method"] == "POST" and echo["path"] == "/v1/a b" and echo["query"] == "x=1&y=%2F"
        assert echo["headers"]["x-dup"] == "one, two" and echo["body"] == '{"k": 1}'
        writer.write(get("/second"))
        status, headers, body = await response(reader)
        assert status == 200 and headers["x-transaction-id"] == "tx-2"
        assert stub.requests[0].peer == stub.requests[1].peer == f"127.0.0.1:{writer.get_extra_info('sockname')[1]}"
        writer.close()


async def test_pipelined_replies_keep_request_order_when_a_later_handler_finishes_first():
    stub = Stub()
    stub.gates["/slow"] = gate = asyncio.Event()
    stub.entered["/fast"] = fast_started = asyncio.Event()
    async with serving(stub) as server:
        reader, writer = await connect(server)
        writer.write(get("/slow") + get("/fast") + get("/third"))
        await asyncio.wait_for(fast_started.wait(), T)  # /fast is answered while /slow still waits
        gate.set()
        paths = [json.loads((await response(reader))[2])["path"] for _ in range(3)]
        assert paths == ["/slow", "/fast", "/third"]
        writer.close()


async def test_chunked_body():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        await asyncio.sleep(0)  # a yield: the rest may come in another read
        writer.write(b"1;ext=1\r\n \r\n5\r\nworld\r\n0\r\n\r\n")
        status, _, body = await response(reader)
        assert status == 200 and json.loads(body)["body"] == "hello world"
        writer.close()


async def test_expect_100_continue_within_the_limit():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), T) == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"hello")
        status, _, body = await response(reader)
        assert status == 200 and json.loads(body)["body"] == "hello"
        writer.close()


async def test_expect_100_continue_over_the_limit_is_413_without_continue():
    stub = Stub(max_body=10)
    async with serving(stub) as server:
        reader, writer = await connect(server)
        writer.write(b"POST /e HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\nExpect: 100-continue\r\n\r\n")
        status, headers, body = await response(reader)
        assert status == 413 and headers["connection"] == "close" and headers["x-transaction-id"]
        assert json.loads(body)["type"] == "urn:denpo:problem:body_too_large"
        assert await closed(reader) and stub.requests == []


async def test_body_over_the_limit_by_content_length():
    stub = Stub(max_body=1000)
    async with serving(stub) as server:
        reader, writer = await connect(server)
        writer.write(post("/big-body", b"x" * (4 << 20)))  # still arriving when the server answers
        status, headers, _ = await response(reader)
        assert status == 413 and headers["connection"] == "close" and headers["content-type"] == "application/problem+json"
        assert await closed(reader) and stub.requests == []


async def test_body_over_the_limit_by_chunked_stream():
    stub = Stub(max_body=1000)
    async with serving(stub) as server:
        reader, writer = await connect(server)
        writer.write(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(4):  # 4 x 600 bytes, more than the limit after the second
            writer.write(b"258\r\n" + b"y" * 600 + b"\r\n")
        status, headers, _ = await response(reader)
        assert status == 413 and headers["connection"] == "close"
        assert await closed(reader) and stub.requests == []


async def test_oversize_headers_431():
    async with serving(max_header_bytes=4096) as server:
        reader, writer = await connect(server)
        writer.write(get("/", "".join(f"X-H{i}: {'v' * 100}\r\n" for i in range(60))))
        status, headers, _ = await response(reader)
        assert status == 431 and headers["connection"] == "close"
        assert await closed(reader)


async def test_an_unfinished_header_line_is_not_buffered_without_bound():
    async with serving(max_header_bytes=4096, max_url_bytes=1024) as server:
        reader, writer = await connect(server)
        writer.write(b"GET / HTTP/1.1\r\nX-Long: ")
        for _ in range(8):  # 8 x 1 KiB in separate reads, and never a line end
            for _ in range(3):
                await asyncio.sleep(0)  # yields, so that the server reads each piece
            writer.write(b"z" * 1024)
        status, _, _ = await response(reader)
        assert status == 431 and await closed(reader)


async def test_long_url_414():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(get("/" + "a" * 9000))
        status, headers, body = await response(reader)
        assert status == 414 and headers["connection"] == "close" and json.loads(body)["status"] == 414
        assert await closed(reader)


GARBAGE = [
    b"NOT HTTP AT ALL\r\n\r\n",
    b"\x16\x03\x01\x02\x00hello\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
]


@pytest.mark.parametrize("garbage", GARBAGE)
async def test_garbage_is_400_and_closed(garbage):
    stub = Stub()
    async with serving(stub) as server:
        reader, writer = await connect(server)
        writer.write(garbage)
        status, headers, body = await response(reader)
        assert status == 400 and headers["connection"] == "close" and headers["x-transaction-id"]
        assert json.loads(body)["type"] == "urn:denpo:problem:malformed_request"
        assert await closed(reader) and stub.requests == []


async def test_http10_closes_by_default_and_keeps_alive_when_asked():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(get("/", version="1.0"))
        status, headers, _ = await response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert await closed(reader)
        reader, writer = await connect(server)
        writer.write(get("/", "Connection: keep-alive\r\n", version="1.0"))
        status, headers, _ = await response(reader)
        assert status == 200 and headers["connection"] == "keep-alive"
        writer.write(get("/again", "Connection: keep-alive\r\n", version="1.0"))
        assert (await response(reader))[0] == 200
        writer.close()


async def test_connection_close_is_honoured_and_later_bytes_ignored():
    stub = Stub()
    async with serving(stub) as server:
        reader, writer = await connect(server)
        writer.write(get("/", "Connection: close\r\n") + get("/ignored"))
        status, headers, _ = await response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert await closed(reader) and [r.path for r in stub.requests] == ["/"]


async def test_replies_are_sent_after_the_client_half_closes():
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(get("/a") + get("/b"))
        writer.write_eof()
        assert [json.loads((await response(reader))[2])["path"] for _ in range(2)] == ["/a", "/b"]
        assert await closed(reader)


async def test_idle_keep_alive_timeout_closes():
    async with serving(idle_timeout=0.2, header_timeout=30) as server:
        reader, writer = await connect(server)
        writer.write(get("/"))
        assert (await response(reader))[0] == 200
        assert await closed(reader)  # nobody writes: closed after ~0.2 s


async def test_header_deadline_closes_a_slow_or_silent_client():
    async with serving(idle_timeout=30, header_timeout=0.2) as server:
        reader, writer = await connect(server)
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\n")  # the head never ends
        assert await closed(reader)
        reader, writer = await connect(server)  # says nothing at all
        assert await closed(reader)
        reader, writer = await connect(server)
        writer.write(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")  # the body stalls
        assert await closed(reader)


async def test_a_client_that_never_reads_does_not_make_the_server_buffer_without_bound():
    stub = Stub()
    stub.big = b"b" * (1 << 20)
    paused = asyncio.Event()
    original = server_module._Connection.pause_writing

    def pause_writing(self: Any) -> None:
        original(self)
        paused.set()

    server_module._Connection.pause_writing = pause_writing  # type: ignore[method-assign]
    try:
        async with serving(stub, max_pipeline=4) as server:
            reader, writer = await connect(server)
            writer.write(get("/big") * 64)  # 64 MiB of replies asked for; this client reads nothing yet
            await asyncio.wait_for(paused.wait(), T)
            for _ in range(5):
                await asyncio.sleep(0)  # yields: whatever the server would still do, it does now
            conn = next(iter(server.conns))
            assert server.write_pauses >= 1 and conn.read_paused
            assert len(stub.requests) < 64
            assert conn.transport.get_write_buffer_size() <= (server.max_pipeline + 1) * len(stub.big)
            for i in range(64):  # now read: everything arrives, in order
                status, headers, body = await response(reader)
                assert status == 200 and len(body) == len(stub.big) and headers["x-transaction-id"] == f"tx-{i + 1}"
            assert len(stub.requests) == 64
            writer.close()
    finally:
        server_module._Connection.pause_writing = original  # type: ignore[method-assign]


@pytest.mark.skipif(not can_make_certificates(), reason="neither trustme nor openssl available")
async def test_tls():
    with tempfile.TemporaryDirectory() as tmp:
        contexts = self_signed(Path(tmp))
        assert contexts is not None
        server_ctx, client_ctx = contexts
        async with serving(ssl_context=server_ctx) as server:
            reader, writer = await connect(server, ssl=client_ctx, server_hostname="127.0.0.1")
            writer.write(post("/tls", b"secret"))
            status, headers, body = await response(reader)
            assert status == 200 and json.loads(body)["body"] == "secret" and headers["x-transaction-id"]
            writer.write(get("/bye", "Connection: close\r\n"))
            assert (await response(reader))[1]["connection"] == "close"
            assert await closed(reader)


async def test_close_waits_for_an_in_flight_handler():
    stub = Stub()
    stub.gates["/slow"] = gate = asyncio.Event()
    stub.entered["/slow"] = started = asyncio.Event()
    async with serving(stub) as server:
        reader, writer = await connect(server)
        idle_reader, _ = await connect(server)
        writer.write(get("/slow"))
        await asyncio.wait_for(started.wait(), T)
        closing = asyncio.create_task(server.close())
        assert await closed(idle_reader)  # an idle connection is closed at once
        assert not closing.done()
        with pytest.raises(OSError):
            await connect(server)  # no longer listening
        gate.set()
        status, headers, _ = await response(reader)
        assert status == 200 and headers["connection"] == "close"
        assert await closed(reader)
        await asyncio.wait_for(closing, T)
        assert stub.cancelled == []


async def test_close_gives_up_on_a_handler_after_the_shutdown_timeout():
    stub = Stub()
    stub.gates["/stuck"] = asyncio.Event()  # never set
    stub.entered["/stuck"] = started = asyncio.Event()
    async with serving(stub, shutdown_timeout=0.2) as server:
        reader, writer = await connect(server)
        writer.write(get("/stuck"))
        await asyncio.wait_for(started.wait(), T)
        await asyncio.wait_for(server.close(), T)
        assert await closed(reader)
        await asyncio.sleep(0)  # a yield: the cancellation reaches the handler
        assert stub.cancelled == ["/stuck"]


async def test_a_failing_handler_or_a_bad_reply_is_500_and_the_connection_lives_on():
    async with serving() as server:
        reader, writer = await connect(server)
        for path in ("/boom", "/crlf"):
            writer.write(get(path))
            status, headers, body = await response(reader)
            assert status == 500 and "connection" not in headers and "injected" not in headers
            assert json.loads(body)["status"] == 500
        writer.write(get("/fine"))
        assert (await response(reader))[0] == 200
        writer.close()


async def test_errors_are_logged_at_info_with_the_transaction_id_and_successes_are_not(caplog):
    caplog.set_level(logging.INFO, logger="denpo.http")
    async with serving() as server:
        reader, writer = await connect(server)
        writer.write(get("/fine") + get("/missing"))
        assert (await response(reader))[0] == 200
        status, headers, _ = await response(reader)
        assert status == 404
        writer.close()
    records = [r for r in caplog.records if r.name == "denpo.http" and r.levelno == logging.INFO]
    assert len(records) == 1 and records[0].transaction_id == headers["x-transaction-id"]
    assert "/missing" in records[0].getMessage() and "404" in records[0].getMessage()


def test_the_scenarios_on_uvloop():
    uvloop = pytest.importorskip("uvloop")
    scenarios = [
        test_keep_alive_reuses_the_connection_and_passes_the_request_through,
        test_pipelined_replies_keep_request_order_when_a_later_handler_finishes_first,
        test_chunked_body, test_expect_100_continue_within_the_limit,
        test_expect_100_continue_over_the_limit_is_413_without_continue,
        test_body_over_the_limit_by_content_length, test_body_over_the_limit_by_chunked_stream,
        test_oversize_headers_431, test_an_unfinished_header_line_is_not_buffered_without_bound, test_long_url_414,
        test_garbage_is_400_and_closed, test_http10_closes_by_default_and_keeps_alive_when_asked,
        test_connection_close_is_honoured_and_later_bytes_ignored, test_replies_are_sent_after_the_client_half_closes,
        test_idle_keep_alive_timeout_closes, test_header_deadline_closes_a_slow_or_silent_client,
        test_a_client_that_never_reads_does_not_make_the_server_buffer_without_bound, test_tls,
        test_close_waits_for_an_in_flight_handler, test_close_gives_up_on_a_handler_after_the_shutdown_timeout,
        test_a_failing_handler_or_a_bad_reply_is_500_and_the_connection_lives_on,
    ]
    for scenario in scenarios:
        for args in [(g,) for g in GARBAGE] if scenario is test_garbage_is_400_and_closed else [()]:
            uvloop.run(asyncio.wait_for(scenario(*args), 30))
