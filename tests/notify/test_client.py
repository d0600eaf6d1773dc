"""The notifications' HTTP client, against scripted receivers on 127.0.0.1."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.notify.client import HttpClient, HttpClientError
from tests.tlsutil import can_make_certificates, self_signed

OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


class Script:
    """A raw server: each request (head + Content-Length body) is handed to ``answer``,
    which returns the bytes to write (``None``: write nothing), and may close."""

    def __init__(self, answer: Callable[[Script, bytes, bytes], bytes | None]) -> None:
        self.answer = answer
        self.requests: list[tuple[bytes, bytes]] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> Script:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        for w in self.writers:
            w.close()
        self.server.close()

    def url(self, path: str = "/x") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                body = await reader.readexactly(length)
                self.requests.append((head, body))
                out = self.answer(self, head, body)
                if out is None:
                    continue
                if out == b"CLOSE":
                    writer.close()
                    return
                writer.write(out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def always(data: bytes) -> Callable[[Script, bytes, bytes], bytes | None]:
    return lambda _s, _h, _b: data


async def test_posts_with_headers_and_body_and_reuses_the_connection():
    async with Script(always(OK)) as srv:
        client = HttpClient()
        for i in range(5):
            status = await client.request("POST", srv.url("/results?a=1"), b'{"n":%d}' % i, {"X-Denpo-Signature": "abc"}, 1.0)
            assert status == 200
        await client.close()
    assert srv.connections == 1 and client.connects == 1
    head, body = srv.requests[-1]
    lines = head.decode().split("\r\n")
    assert lines[0] == "POST /results?a=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{srv.port}" in lines and "X-Denpo-Signature: abc" in lines and "Content-Length: 7" in lines
    assert body == b'{"n":4}'


async def test_get_without_body_and_statuses_are_passed_on():
    async with Script(always(b"HTTP/1.1 503 Busy\r\nContent-Length: 0\r\n\r\n")) as srv:
        client = HttpClient()
        assert await client.request("GET", srv.url("/dlr?id=7&t=2026-11-22 06:00"), b"", {}, 1.0) == 503
        await client.close()
    head, body = srv.requests[0]
    first = head.split(b"\r\n")[0]
    assert first == b"GET /dlr?id=7&t=2026-11-22%2006:00 HTTP/1.1"  # a space cannot travel in a request line
    assert b"content-length" not in head.lower() and body == b""


async def test_chunked_and_connection_close_answers():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    async with Script(always(chunked)) as srv:
        client = HttpClient()
        assert await client.request("POST", srv.url(), b"x", {}, 1.0) == 200
        assert await client.request("POST", srv.url(), b"x", {}, 1.0) == 200
        assert srv.connections == 1
        await client.close()
    closing = b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n"
    async with Script(always(closing)) as srv:
        client = HttpClient()
        assert await client.request("POST", srv.url(), b"x", {}, 1.0) == 204
        assert await client.request("POST", srv.url(), b"x", {}, 1.0) == 204
        assert srv.connections == 2  # not reused after "Connection: close"
        await client.close()


async def test_a_body_read_to_the_end_of_the_connection():
    def answer(s: Script, _h: bytes, _b: bytes) -> bytes:
        w = s.writers[-1]
        w.write(b"HTTP/1.0 200 OK\r\n\r\nno length: read until close")
        return b"CLOSE"

    async with Script(answer) as srv:
        client = HttpClient()
        assert await client.request("POST", srv.url(), b"x", {}, 1.0) == 200
        await client.close()


async def test_an_interim_100_is_not_the_answer():
    async with Script(always(b"HTTP/1.1 100 Continue\r\n\r\n" + OK)) as srv:
        client = HttpClient()
        assert await client.request("POST", srv.url(), b"x", {}, 1.0) == 200
        await client.close()


@pytest.mark.looptime
async def test_no_answer_within_the_deadline_is_a_timeout_and_the_connection_is_dropped():
    async with Script(lambda s, h, b: None if len(s.requests) == 1 else OK) as srv:
        client = HttpClient()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await client.request("POST", srv.url(), b"x", {}, 0.5)
        assert loop.time() - started == pytest.approx(0.5, abs=0.01)
        assert await client.request("POST", srv.url(), b"x", {}, 0.5) == 200
        assert client.connects == 2  # a late answer must not be read as the next request's
        await client.close()


async def test_closed_without_an_answer_is_an_error():
    async with Script(always(b"CLOSE")) as srv:
        client = HttpClient()
        with pytest.raises(HttpClientError, match="without an answer"):
            await client.request("POST", srv.url(), b"x", {}, 1.0)
        assert client.connects == 1  # a fresh connection is not tried twice
        await client.close()


async def test_a_kept_alive_connection_closed_by_the_receiver_is_retried_once_on_a_new_one():
    # the receiver answers, then drops the idle connection as the next request goes out
    def answer(s: Script, _h: bytes, _b: bytes) -> bytes:
        return OK if len(s.requests) != 2 else b"CLOSE"

    async with Script(answer) as srv:
        client = HttpClient()
        assert await client.request("POST", srv.url(), b"1", {}, 1.0) == 200
        assert await client.request("POST", srv.url(), b"2", {}, 1.0) == 200
        assert srv.connections == 2 and [b for _h, b in srv.requests] == [b"1", b"2", b"2"]
        await client.close()


async def test_garbage_is_not_an_answer():
    async with Script(always(b"SMTP ready\r\n\r\n")) as srv:
        client = HttpClient()
        with pytest.raises(HttpClientError, match="not an HTTP answer"):
            await client.request("POST", srv.url(), b"x", {}, 1.0)
        await client.close()


async def test_nobody_listening_is_an_error_naming_the_address():
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    client = HttpClient()
    with pytest.raises(HttpClientError, match=f"127.0.0.1:{port}"):
        await client.request("POST", f"http://127.0.0.1:{port}/x", b"x", {}, 1.0)


async def test_bad_urls_and_headers_are_refused_before_sending():
    client = HttpClient()
    for url in ("ftp://h/x", "http:///x", "http://h:99999/x"):
        with pytest.raises(ValueError):
            await client.request("POST", url, b"", {}, 1.0)
    with pytest.raises(ValueError, match="line breaks"):
        await client.request("POST", "http://127.0.0.1:1/x", b"", {"X-Bad": "a\r\nInjected: yes"}, 1.0)
    with pytest.raises(ValueError):
        await client.request("PUT", "http://127.0.0.1:1/x", b"", {}, 1.0)


async def test_credentials_in_the_url_become_basic_authorisation():
    async with Script(always(OK)) as srv:
        client = HttpClient()
        assert await client.request("GET", f"http://us%40er:p%3Ass@127.0.0.1:{srv.port}/d", b"", {}, 1.0) == 200
        await client.close()
    head = srv.requests[0][0].decode()
    assert "Authorization: Basic dXNAZXI6cDpzcw==" in head  # base64("us@er:p:ss")
    assert f"Host: 127.0.0.1:{srv.port}\r\n" in head and "us%40er" not in head


async def test_idle_connections_are_bounded():
    async with Script(always(OK)) as srv:
        client = HttpClient(max_idle=2)
        results = await asyncio.gather(*(client.request("POST", srv.url(), b"x", {}, 1.0) for _ in range(5)))
        assert results == [200] * 5 and client.connects == 5
        assert len(client._idle[("http", "127.0.0.1", srv.port)]) == 2
        await client.close()


async def test_a_cancelled_request_leaves_no_connection_behind():
    async with Script(lambda s, h, b: None) as srv:
        client = HttpClient()
        task = asyncio.ensure_future(client.request("POST", srv.url(), b"x", {}, 5.0))
        while not srv.requests:
            await asyncio.sleep(0.01)  # the receiver has it
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not client._open
        await client.close()


@pytest.mark.skipif(not can_make_certificates(), reason="neither trustme nor openssl available")
async def test_https():
    with tempfile.TemporaryDirectory() as tmp:
        contexts = self_signed(Path(tmp))
        assert contexts is not None
        server_ctx, client_ctx = contexts

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(OK)
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        try:
            assert await HttpClient(ssl_context=client_ctx).request("GET", f"https://127.0.0.1:{port}/x", b"", {}, 5.0) == 200
            with pytest.raises((HttpClientError, ssl.SSLError)):  # not trusted by default: refused
                await HttpClient().request("GET", f"https://127.0.0.1:{port}/x", b"", {}, 5.0)
        finally:
            server.close()


def test_urls_of_a_known_origin_read_as_urlsplit_reads_them():
    client = HttpClient()
    first = "http://u:p@127.0.0.1:8080/dlr"
    client._target(first)
    for url in [
        "http://u:p@127.0.0.1:8080/dlr?id=1&d=%25d&t=2026-11-22+06%3A00",
        "http://u:p@127.0.0.1:8080?x=1",
        "http://u:p@127.0.0.1:8080",
        "http://u:p@127.0.0.1:8080/a b?c d#frag",
        "http://u:p@127.0.0.1:8080/x#frag?not=query",
        "http://u:p@127.0.0.1:8080/\u3042?q=\u3044",
        "http://u:p@127.0.0.1:8080/x\r\nInjected: 1",
        "http://u:p@127.0.0.1:8080/x?a=\tb",
    ]:
        fast, slow = client._target(url), client._parse(url)
        assert (fast.origin, fast.prefix_get, fast.prefix_post) == (slow.origin, slow.prefix_get, slow.prefix_post), url
        assert b"\r\nInjected" not in fast.prefix_get
