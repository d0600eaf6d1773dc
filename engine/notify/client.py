"""A lean keep-alive HTTP/1.1 client for notifications.

The notifier needs one thing from HTTP: send a request, learn the status
within a deadline, reuse the connection.  aiohttp's client does far more and
costs far more per request (``python -m bench.notify_client``: figures in
bench/RESULTS.md); at one Kannel ``dlr-url`` GET per message that cost decides
how fast the whole engine runs.  This client is an asyncio ``Protocol`` per
connection with httptools' response parser (llhttp, the parser the server
side uses too):

* connections are pooled per origin (scheme, host, port) and reused while the
  receiver keeps them alive; at most ``max_idle`` idle ones are kept per origin
  and an idle one older than ``idle_s`` is closed rather than reused;
* one request at a time per connection (no pipelining); the response body is
  read and dropped;
* ``timeout`` covers connecting, sending and the whole response; a request
  that times out closes its connection (a late answer must not be read as the
  next request's);
* a request on a reused connection that the receiver closed before answering
  a byte is sent once more on a new connection (the receiver may have dropped
  an idle connection just then; notifications are at-least-once and carry
  event ids, so a repeat is harmless);
* ``http`` and ``https`` (the default TLS context, or the one given);
  ``user:password@`` in a URL becomes Basic authorisation; characters a
  request line cannot carry are percent-encoded.
"""

from __future__ import annotations

import asyncio
import base64
import re
import ssl as _ssl
import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import httptools

__all__ = ["HttpClient", "HttpClientError"]

_SAFE = "/?&=%:@!$'()*+,;~-._#[]"
_UNSAFE = re.compile(r"[^A-Za-z0-9/?&=%:@!$'()*+,;~\-._\[\]]")  # what quote(..., safe=_SAFE) would change


class HttpClientError(ConnectionError):
    """No answer: the connection failed or closed, or the answer was not HTTP."""


class _Origin:
    __slots__ = ("key", "host", "port", "ssl", "server_hostname")

    def __init__(self, key: tuple[str, str, int], ssl: _ssl.SSLContext | None) -> None:
        self.key = key
        self.host = key[1]
        self.port = key[2]
        self.ssl = ssl
        self.server_hostname = key[1] if ssl is not None else None


class _Target:
    """What a URL means for a request: its origin, request-target and fixed header lines."""

    __slots__ = ("origin", "prefix_get", "prefix_post")

    def __init__(self, origin: _Origin, path: str, host_header: str, auth: str | None, user_agent: str) -> None:
        self.origin = origin
        fixed = f"Host: {host_header}\r\nUser-Agent: {user_agent}\r\n"
        if auth is not None:
            fixed += f"Authorization: Basic {auth}\r\n"
        self.prefix_get = f"GET {path} HTTP/1.1\r\n{fixed}".encode("latin-1")
        self.prefix_post = f"POST {path} HTTP/1.1\r\n{fixed}".encode("latin-1")


class _Connection(asyncio.Protocol):
    __slots__ = ("client", "origin", "transport", "parser", "waiter", "status", "answered", "closed", "used_at", "reused")

    def __init__(self, client: HttpClient, origin: _Origin) -> None:
        self.client = client
        self.origin = origin
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[int] | None = None
        self.status = 0  # of the response being read (0: none yet)
        self.answered = False  # any byte of the current response arrived
        self.closed = False
        self.used_at = 0.0
        self.reused = False

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpClientError(f"not an HTTP answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.client._forget(self)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            self.waiter = None
            if self.status:  # a body read to the end of the connection: complete
                waiter.set_result(self.status)
            else:
                waiter.set_exception(HttpClientError("the receiver closed the connection without an answer"))

    # --- httptools callbacks --------------------------------------------------------------

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()

    def on_message_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:  # an interim answer: the real one follows
            self.status = 0
            return
        waiter = self.waiter
        self.waiter = None
        keep = self.parser.should_keep_alive()
        if waiter is not None and not waiter.done():
            waiter.set_result(status)
        if keep and waiter is not None:
            self.client._release(self)
        else:
            self.close()

    # --- use --------------------------------------------------------------------------------

    def send(self, data: bytes, waiter: asyncio.Future[int]) -> None:
        self.waiter = waiter
        self.status = 0
        self.answered = False
        assert self.transport is not None
        self.transport.write(data)

    def _fail(self, exc: Exception) -> None:
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)
        self.close()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.client._forget(self)
            if self.transport is not None:
                self.transport.close()


class HttpClient:
    """``await request(method, url, body, headers, timeout)`` → the HTTP status; ``await close()``."""

    def __init__(
        self,
        *,
        user_agent: str = "denpo-notify",
        max_idle: int = 256,
        idle_s: float = 30.0,
        ssl_context: _ssl.SSLContext | None = None,
        max_targets: int = 1024,
    ) -> None:
        self.user_agent = user_agent
        self.max_idle = max_idle
        self.idle_s = idle_s
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Connection]] = {}
        self._open: set[_Connection] = set()
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._targets: dict[str, _Target] = {}  # URL → parsed (bounded: dlr-urls differ per message)
        self._bases: dict[tuple[str, str], tuple[_Origin, str, str | None]] = {}  # (scheme, authority) as written
        self._max_targets = max_targets
        self._closed = False
        self.connects = 0  # connections opened (for tests and figures)

    # --- public -----------------------------------------------------------------------------

    async def request(self, method: str, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> int:
        """Send; the status of the final answer.  Raises ``TimeoutError`` past
        ``timeout``, :class:`HttpClientError` when no answer came, ``ValueError``
        for a URL that cannot be requested."""
        if self._closed:
            raise HttpClientError("the client is closed")
        target = self._target(url)
        if method == "GET":
            head = target.prefix_get
        elif method == "POST":
            head = target.prefix_post
        else:
            raise ValueError(f"method {method!r}: GET or POST")
        lines = [f"{name}: {value}\r\n" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}\r\n")
        for line in lines:
            if "\n" in line[:-2] or "\r" in line[:-2]:
                raise ValueError(f"header {line[:-2]!r}: no line breaks in a header")
        data = head + "".join(lines).encode("latin-1") + b"\r\n" + body
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for attempt in (0, 1):
            conn = await self._connection(target.origin, deadline)
            waiter: asyncio.Future[int] = loop.create_future()
            reused = conn.reused
            conn.send(data, waiter)
            timer = loop.call_at(deadline, _expire, conn, waiter)
            try:
                return await waiter
            except asyncio.CancelledError:
                conn.close()  # its answer, if one comes, belongs to nobody
                raise
            except HttpClientError:
                if attempt or not reused or conn.answered:
                    raise
                # a kept-alive connection the receiver had just closed: once more, on a new one
            finally:
                timer.cancel()
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        self._closed = True
        for conn in list(self._open):
            conn.close()
        self._idle.clear()

    # --- connections ------------------------------------------------------------------------

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is not None:
            return target
        scheme, sep, rest = url.partition("://")
        cut = len(rest)
        for mark in "/?#":
            at = rest.find(mark)
            if 0 <= at < cut:
                cut = at
        base = self._bases.get((scheme, rest[:cut])) if sep else None
        tail = rest[cut:].partition("#")[0]
        if base is None or _UNSAFE.search(tail) is not None:
            target = self._parse(url)  # the first URL of an origin, or one that needs quoting
        else:
            target = _Target(base[0], tail if tail[:1] == "/" else "/" + tail, base[1], base[2], self.user_agent)
        if len(self._targets) >= self._max_targets:
            self._targets.clear()
        self._targets[url] = target
        return target

    def _parse(self, url: str) -> _Target:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"{url!r}: only http and https URLs can be notified")
        host = parts.hostname
        if not host:
            raise ValueError(f"{url!r}: no host")
        try:
            port = parts.port or (443 if scheme == "https" else 80)
        except ValueError as exc:
            raise ValueError(f"{url!r}: {exc}") from None
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            ssl = None
            if scheme == "https":
                ssl = self._ssl or _ssl.create_default_context()
            origin = self._origins[key] = _Origin(key, ssl)
        path = quote(parts.path or "/", safe=_SAFE)
        if parts.query:
            path += "?" + quote(parts.query, safe=_SAFE)
        default = (scheme == "http" and port == 80) or (scheme == "https" and port == 443)
        shown = f"[{host}]" if ":" in host else host
        host_header = shown if default else f"{shown}:{port}"
        auth = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            auth = base64.b64encode(pair.encode("utf-8")).decode("ascii")
        if len(self._bases) < self._max_targets:
            # later URLs of this origin as written (scheme and authority verbatim) skip urlsplit
            self._bases[(url.partition("://")[0], parts.netloc)] = (origin, host_header, auth)
        return _Target(origin, path, host_header, auth, self.user_agent)

    async def _connection(self, origin: _Origin, deadline: float) -> _Connection:
        idle = self._idle.get(origin.key)
        now = time.monotonic()
        while idle:
            conn = idle.pop()
            if not conn.closed and now - conn.used_at < self.idle_s:
                conn.reused = True
                return conn
            conn.close()
        loop = asyncio.get_running_loop()
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise TimeoutError("no time left to connect")
        try:
            async with asyncio.timeout(remaining):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, origin), origin.host, origin.port,
                    ssl=origin.ssl, server_hostname=origin.server_hostname,
                )
        except TimeoutError:
            raise
        except OSError as exc:
            raise HttpClientError(f"connect to {origin.host}:{origin.port}: {exc.strerror or exc}") from None
        self.connects += 1
        if self._closed:
            conn.close()
            raise HttpClientError("the client is closed")
        self._open.add(conn)
        return conn

    def _release(self, conn: _Connection) -> None:
        if self._closed or conn.closed:
            conn.close()
            return
        conn.used_at = time.monotonic()
        idle = self._idle.setdefault(conn.origin.key, [])
        if len(idle) >= self.max_idle:
            conn.close()
            return
        idle.append(conn)

    def _forget(self, conn: _Connection) -> None:
        self._open.discard(conn)
        idle = self._idle.get(conn.origin.key)
        if idle and conn in idle:
            idle.remove(conn)


def _expire(conn: _Connection, waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        conn._fail(TimeoutError("no answer within the deadline"))
