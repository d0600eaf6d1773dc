"""Which HTTP server should carry ``denpo serve``?  Measured, not guessed.

Every candidate serves the same two handlers, which only decode (msgspec,
at the edge) and encode -- no engine behind them -- so the figures are the
HTTP layer's own cost:

* ``POST /v1/messages``        one ``{"to", "text", "client_ref"}`` -> 202 + small JSON
* ``POST /v1/messages/batch``  ``{"messages": [...]}`` (<= 1,000) -> 202 + one result per item

Every response (errors included) carries ``X-Transaction-Id``.

Candidates
    ``aiohttp``               aiohttp.web on uvloop (denpo's existing dependency)
    ``httptools_lean``        the lean asyncio-Protocol server below, sync handlers
    ``httptools_lean_async``  the same server, handlers as coroutines (one Task per request,
                              as the product will need if a handler awaits the engine)
    ``uvicorn_asgi``          uvicorn (uvloop + httptools) with a raw ASGI callable, no framework
    ``denpo``                 the product's server, ``engine.api.server.HttpServer`` (the lean design
                              made production-grade: limits, deadlines, backpressure), handlers behind
                              an ``HttpApi``-like adapter (a Task per request)

Method: each server runs in its own process, one load client in another (a
raw asyncio Protocol client writing prebuilt requests, no pipelining, N
keep-alive connections).  Phases alternate between candidates (A, B, C, A, B,
C, ...) within each round:  saturation with single messages, saturation with
batches, then open-loop paced single requests at half of the candidate's own
peak and at half of the slowest candidate's peak (same offered load for all),
and paced batches at half the batch peak.  Latency is measured from each
request's *scheduled* send time (no coordinated omission).  Server CPU is the
server process's CPU time (``/proc/<pid>/task/*/schedstat``), read by the
client at the edges of the measuring window; the client's own CPU is reported
beside it so it is clear whether the client was the limit.  Figures are the
median over rounds; ratios to aiohttp are taken per round, then the median.

    .venv/bin/python -m bench.http_choice [--seconds 2] [--rounds 3]

Prints one JSON object on the last line of stdout (nothing is written to disk).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import datetime as _dt
import importlib.metadata
import importlib.util
import itertools
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec

CANDIDATES = ("aiohttp", "httptools_lean", "httptools_lean_async", "uvicorn_asgi", "denpo")
NEEDS = {  # candidate -> modules it needs (missing -> "skipped")
    "aiohttp": ("aiohttp", "uvloop"),
    "httptools_lean": ("httptools", "uvloop"),
    "httptools_lean_async": ("httptools", "uvloop"),
    "uvicorn_asgi": ("uvicorn", "httptools", "uvloop"),
    "denpo": ("httptools", "uvloop"),
}
BATCH_LIMIT = 1000
MAX_BODY = 1 << 20

# ---------------------------------------------------------------------------
# The application: identical for every candidate (decode -> encode, no engine)
# ---------------------------------------------------------------------------


class Message(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    to: str
    text: str
    client_ref: str | None = None


class Batch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    messages: Annotated[list[Message], msgspec.Meta(min_length=1, max_length=BATCH_LIMIT)]


class Accepted(msgspec.Struct):
    id: str
    status: str = "accepted"
    client_ref: str | None = None


_dec_single = msgspec.json.Decoder(Message)
_dec_batch = msgspec.json.Decoder(Batch)
_enc = msgspec.json.Encoder()
_ids = itertools.count(1)
_txids = itertools.count(1)
_PREFIX = "%x" % (os.getpid() & 0xFFFF)


def txid() -> str:
    return f"{_PREFIX}-{next(_txids):x}"


def _error(status: int, exc: Exception) -> tuple[int, bytes]:
    return status, _enc.encode({"error": str(exc)})


def handle_single(body: bytes) -> tuple[int, bytes]:
    try:
        msg = _dec_single.decode(body)
    except msgspec.ValidationError as exc:
        return _error(422, exc)
    except msgspec.DecodeError as exc:
        return _error(400, exc)
    return 202, _enc.encode(Accepted(f"{_PREFIX}{next(_ids):x}", client_ref=msg.client_ref))


def handle_batch(body: bytes) -> tuple[int, bytes]:
    try:
        batch = _dec_batch.decode(body)
    except msgspec.ValidationError as exc:
        return _error(422, exc)
    except msgspec.DecodeError as exc:
        return _error(400, exc)
    p = _PREFIX
    return 202, _enc.encode([Accepted(f"{p}{next(_ids):x}", client_ref=m.client_ref) for m in batch.messages])


async def handle_single_async(body: bytes) -> tuple[int, bytes]:
    return handle_single(body)


async def handle_batch_async(body: bytes) -> tuple[int, bytes]:
    return handle_batch(body)


ROUTES: dict[str, Callable[[bytes], tuple[int, bytes]]] = {
    "/v1/messages": handle_single,
    "/v1/messages/batch": handle_batch,
}
E404 = _enc.encode({"error": "not found"})
E405 = _enc.encode({"error": "method not allowed"})
E413 = _enc.encode({"error": "body too large"})
E500 = _enc.encode({"error": "internal error"})

# ---------------------------------------------------------------------------
# Candidate 2: lean HTTP/1.1 server on asyncio.Protocol + httptools.
# A CANDIDATE, not product code.  Keep-alive, Content-Length and chunked
# bodies, responses strictly in request order (pipelining-safe, also when
# handlers are coroutines), 413 above max_body, 400 on parse errors.
# ---------------------------------------------------------------------------

_REASONS = {200: b"OK", 202: b"Accepted", 400: b"Bad Request", 404: b"Not Found", 405: b"Method Not Allowed",
            413: b"Payload Too Large", 422: b"Unprocessable Entity", 500: b"Internal Server Error"}
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, reason) for code, reason in _REASONS.items()}
_MAX_PENDING = 32  # pipelined requests queued per connection before reading pauses


class LeanHTTP(asyncio.Protocol):
    def __init__(self, routes: dict[bytes, dict[bytes, Callable]], max_body: int) -> None:
        import httptools

        self.routes, self.max_body = routes, max_body
        self.parser = httptools.HttpRequestParser(self)
        self.parse_errors = (httptools.HttpParserError, httptools.HttpParserUpgrade)
        self.transport: asyncio.Transport | None = None
        self.pending: collections.deque = collections.deque()  # (result or Future, keep_alive), in order
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for result, _ in self.pending:
            if isinstance(result, asyncio.Future):
                result.cancel()
        self.pending.clear()

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except self.parse_errors:
            self._respond((400, _enc.encode({"error": "malformed HTTP request"})), False)

    # -- httptools callbacks ------------------------------------------------
    def on_message_begin(self) -> None:
        self.url, self.body, self.size, self.too_big = b"", [], 0, False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if len(name) == 14 and name.lower() == b"content-length" and int(value) > self.max_body:
            self.too_big = True

    def on_body(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_body:
            self.too_big, self.body = True, []
        elif not self.too_big:
            self.body.append(chunk)

    def on_message_complete(self) -> None:
        keep = self.parser.should_keep_alive()
        if self.too_big:  # body already drained by the parser, never stored
            result, keep = (413, E413), False
        else:
            methods = self.routes.get(self.url.partition(b"?")[0])
            handler = methods.get(self.parser.get_method()) if methods else None
            if handler is None:
                result = (405, E405) if methods else (404, E404)
            else:
                try:
                    result = handler(b"".join(self.body))
                except Exception:  # noqa: BLE001 - any handler failure is a 500
                    result = (500, E500)
        if type(result) is tuple and not self.pending:
            self._respond(result, keep)  # fast path: nothing queued before it
            return
        if type(result) is not tuple:  # a coroutine: run it, answer in order when done
            result = asyncio.ensure_future(result)
            result.add_done_callback(self._flush)
        self.pending.append((result, keep))
        if len(self.pending) >= _MAX_PENDING and self.transport and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def _flush(self, _: Any = None) -> None:
        while self.pending:
            result, keep = self.pending[0]
            if isinstance(result, asyncio.Future):
                if not result.done():
                    return
                result = (500, E500) if result.cancelled() or result.exception() else result.result()
            self.pending.popleft()
            self._respond(result, keep)
        if self.paused and self.transport:
            self.paused = False
            self.transport.resume_reading()

    def _respond(self, result: tuple[int, bytes], keep: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        status, body = result
        transport.write(
            b"%sContent-Type: application/json\r\nContent-Length: %d\r\nX-Transaction-Id: %s\r\n%s\r\n%s"
            % (_STATUS_LINES[status], len(body), txid().encode(), b"" if keep else b"Connection: close\r\n", body)
        )
        if not keep:
            transport.close()


async def serve_lean(sock: socket.socket, max_body: int, use_async: bool) -> None:
    single, batch = (handle_single_async, handle_batch_async) if use_async else (handle_single, handle_batch)
    routes = {b"/v1/messages": {b"POST": single}, b"/v1/messages/batch": {b"POST": batch}}
    server = await asyncio.get_running_loop().create_server(lambda: LeanHTTP(routes, max_body), sock=sock)
    await server.serve_forever()


# ---------------------------------------------------------------------------
# Candidate 1: aiohttp.web
# ---------------------------------------------------------------------------


async def serve_aiohttp(sock: socket.socket, max_body: int) -> None:
    from aiohttp import web

    def route(handler: Callable[[bytes], tuple[int, bytes]]) -> Callable:
        async def view(request: web.Request) -> web.Response:
            status, body = handler(await request.read())
            return web.Response(status=status, body=body, content_type="application/json")

        return view

    async def add_txid(request: web.Request, response: web.StreamResponse) -> None:
        response.headers["X-Transaction-Id"] = txid()  # every response, 404/413 included

    app = web.Application(client_max_size=max_body)
    for path, handler in ROUTES.items():
        app.router.add_post(path, route(handler))
    app.on_response_prepare.append(add_txid)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    await asyncio.Event().wait()


# ---------------------------------------------------------------------------
# Candidate 5: engine.api.server.HttpServer, the product's server
# ---------------------------------------------------------------------------


async def serve_denpo(sock: socket.socket, max_body: int) -> None:
    from engine.api.http import Reply, Request
    from engine.api.server import HttpServer

    class Api:  # what HttpServer needs of engine.api.http.HttpApi
        transaction_id = staticmethod(txid)

        def __init__(self) -> None:
            self.max_body = max_body

        async def handle(self, request: Request) -> Reply:
            handler = ROUTES.get(request.path)
            if handler is None:
                return Reply(404, E404)
            if request.method != "POST":
                return Reply(405, E405)
            status, body = handler(request.body)
            return Reply(status, body)

    async with HttpServer(Api(), sock=sock):
        await asyncio.Event().wait()


# ---------------------------------------------------------------------------
# Candidate 3: uvicorn (httptools, uvloop) + a raw ASGI callable
# ---------------------------------------------------------------------------


def asgi_app(max_body: int) -> Callable:
    async def app(scope: dict, receive: Callable, send: Callable) -> None:
        handler = ROUTES.get(scope["path"])
        if handler is None:
            status, body = 404, E404
        elif scope["method"] != "POST":
            status, body = 405, E405
        else:
            status = 0
            for name, value in scope["headers"]:
                if name == b"content-length" and int(value) > max_body:
                    status, body = 413, E413
            if not status:
                chunks, size, more = [], 0, True
                while more:
                    message = await receive()
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > max_body:
                        status, body = 413, E413
                        break
                    chunks.append(chunk)
                    more = message.get("more_body", False)
                else:
                    status, body = handler(b"".join(chunks))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"x-transaction-id", txid().encode()),
        ]})
        await send({"type": "http.response.body", "body": body})

    return app


def serve_uvicorn(sock: socket.socket, max_body: int) -> None:
    import uvicorn

    config = uvicorn.Config(asgi_app(max_body), loop="uvloop", http="httptools", lifespan="off",
                            access_log=False, log_level="warning", ws="none")
    uvicorn.Server(config).run(sockets=[sock])


# ---------------------------------------------------------------------------
# Process plumbing shared by the server and client processes
# ---------------------------------------------------------------------------


def _die_with_parent(max_lifetime: float) -> None:
    """End this process when stdin closes (the orchestrator is gone or done) or at max_lifetime."""

    def watch() -> None:
        sys.stdin.buffer.read()
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()
    timer = threading.Timer(max_lifetime, os._exit, (3,))
    timer.daemon = True
    timer.start()


def _run_server(name: str, fd: int, max_body: int, max_lifetime: float) -> None:
    import uvloop

    _die_with_parent(max_lifetime)
    sock = socket.socket(fileno=fd)
    if name == "aiohttp":
        uvloop.run(serve_aiohttp(sock, max_body))
    elif name.startswith("httptools_lean"):
        uvloop.run(serve_lean(sock, max_body, name.endswith("_async")))
    elif name == "uvicorn_asgi":
        serve_uvicorn(sock, max_body)
    elif name == "denpo":
        uvloop.run(serve_denpo(sock, max_body))
    else:
        raise SystemExit(f"unknown candidate {name}")


def proc_cpu_s(pid: int) -> float:
    """CPU seconds (all threads) of a live process, from schedstat (ns), else /proc/pid/stat (ticks)."""
    try:
        total = 0
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as fh:
                total += int(fh.read().split()[0])
        return total / 1e9
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def message_item(i: int) -> dict[str, str]:
    return {"to": "+819012345678", "text": "テスト", "client_ref": f"r{i}"}


def build_request(path: str, payload: Any, *, raw: bytes | None = None) -> bytes:
    body = raw if raw is not None else msgspec.json.encode(payload)
    return (
        b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
        % (path.encode(), len(body))
    ) + body


def single_request(ref: str = "r1") -> bytes:
    return build_request("/v1/messages", {"to": "+819012345678", "text": "テスト", "client_ref": ref})


def batch_request(n: int) -> bytes:
    return build_request("/v1/messages/batch", {"messages": [message_item(i) for i in range(n)]})


# ---------------------------------------------------------------------------
# Load client (own process): raw asyncio Protocol, prebuilt requests
# ---------------------------------------------------------------------------


class _Load:
    def __init__(self, request: bytes, rate: float | None) -> None:
        self.request, self.rate = request, rate
        self.running, self.measuring = True, False
        self.count = self.bad = self.inflight = self.lost = 0
        self.lat: list[float] = []
        self.idle: list[_Conn] = []
        self.backlog: collections.deque[float] = collections.deque()
        self.win = (float("inf"), float("inf"))

    def send(self, conn: _Conn, sched: float) -> None:
        conn.sched = sched
        self.inflight += 1
        conn.transport.write(self.request)

    def issue(self, sched: float) -> None:
        if self.idle:
            self.send(self.idle.pop(), sched)
        else:
            self.backlog.append(sched)

    def on_response(self, conn: _Conn, ok: bool) -> None:
        self.inflight -= 1
        if self.rate is None:  # closed loop: saturation
            if self.measuring:
                self.count += 1
                self.bad += not ok
            if self.running:
                self.send(conn, 0.0)
            return
        now = time.perf_counter()
        if self.win[0] <= conn.sched < self.win[1]:
            self.lat.append(now - conn.sched)
            self.bad += not ok
        if self.backlog:
            self.send(conn, self.backlog.popleft())
        else:
            self.idle.append(conn)


class _Conn(asyncio.Protocol):
    def __init__(self, load: _Load) -> None:
        self.load, self.buf, self.need, self.sched = load, b"", -1, 0.0
        self.transport: asyncio.Transport = None  # type: ignore[assignment]

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.load.lost += 1

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while buf:
            need = self.need
            if need < 0:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                k = buf.find(b"ontent-Length:", 0, end)
                if k < 0:
                    k = buf.find(b"ontent-length:", 0, end)
                need = self.need = end + 4 + int(buf[k + 14 : buf.find(b"\r", k)])
            if len(buf) < need:
                break
            ok = buf[9:12] == b"202"
            buf, self.need = buf[need:], -1
            self.load.on_response(self, ok)
        self.buf = buf


async def _phase(cmd: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = single_request() if cmd["kind"] == "single" else batch_request(cmd["batch_size"])
    rate, pid, warmup, seconds = cmd.get("rate"), cmd["pid"], cmd["warmup"], cmd["seconds"]
    load = _Load(request, rate)
    conns = [c for _, c in await asyncio.gather(*(
        loop.create_connection(lambda: _Conn(load), "127.0.0.1", cmd["port"]) for _ in range(cmd["conns"])))]
    snaps: list[tuple[float, float, float]] = []

    def snap() -> None:
        snaps.append((time.perf_counter(), proc_cpu_s(pid), time.process_time()))

    if rate is None:
        for conn in conns:
            load.send(conn, 0.0)
        await asyncio.sleep(warmup)
        snap()
        load.measuring = True
        await asyncio.sleep(seconds)
        load.measuring = False
        snap()
        load.running = False
    else:
        load.idle = list(conns)
        t0 = time.perf_counter()
        load.win = (t0 + warmup, t0 + warmup + seconds)
        issued = 0
        while True:
            now = time.perf_counter()
            if not snaps and now >= load.win[0]:
                snap()
            if now >= load.win[1]:
                break
            due = int((now - t0) * rate) + 1
            while issued < due:
                load.issue(t0 + issued / rate)
                issued += 1
            await asyncio.sleep(0.001)  # uvloop timers have ms resolution: 0.0005 would spin
        snap()
        load.count = int(seconds * rate)  # scheduled within the window
    deadline = time.perf_counter() + 3.0
    while (load.inflight or load.backlog) and time.perf_counter() < deadline:
        await asyncio.sleep(0.002)
    for conn in conns:
        conn.transport.close()
    (t1, s1, c1), (t2, s2, c2) = snaps
    out = {"responses": load.count, "bad": load.bad, "wall_s": t2 - t1, "server_cpu_s": s2 - s1,
           "client_cpu_s": c2 - c1, "lost": load.lost - len(conns), "unanswered": load.inflight + len(load.backlog)}
    if rate is not None:
        lat = sorted(load.lat)
        out["answered"] = len(lat)
        out["p50_ms"] = 1e3 * lat[len(lat) // 2] if lat else None
        out["p99_ms"] = 1e3 * lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else None
        out["max_ms"] = 1e3 * lat[-1] if lat else None
    return out


def _run_client(max_lifetime: float) -> None:
    import uvloop

    timer = threading.Timer(max_lifetime, os._exit, (3,))
    timer.daemon = True
    timer.start()
    for line in sys.stdin:  # one JSON command per line; EOF ends the client
        try:
            result = uvloop.run(_phase(json.loads(line)))
        except Exception as exc:  # noqa: BLE001 - report, do not hang the orchestrator
            result = {"error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


# ---------------------------------------------------------------------------
# Correctness checks (blocking sockets, from the orchestrator)
# ---------------------------------------------------------------------------


def _read_responses(sock: socket.socket, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    buf, out = b"", []
    while len(out) < n:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            lines = buf[:end].decode("latin-1").split("\r\n")
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}
            rest = buf[end + 4 :]
            if "content-length" in headers:
                size = int(headers["content-length"])
                if len(rest) >= size:
                    out.append((int(lines[0].split()[1]), headers, rest[:size]))
                    buf = rest[size:]
                    continue
            elif headers.get("transfer-encoding", "").lower() == "chunked":
                body, pos, done = b"", 0, False
                while True:
                    eol = rest.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    size = int(rest[pos:eol].split(b";")[0], 16)
                    if len(rest) < eol + 2 + size + 2:
                        break
                    if size == 0:
                        done = True
                        pos = eol + 4
                        break
                    body += rest[eol + 2 : eol + 2 + size]
                    pos = eol + 2 + size + 2
                if done:
                    out.append((int(lines[0].split()[1]), headers, body))
                    buf = rest[pos:]
                    continue
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        buf += chunk
    return out


def _exchange(port: int, payload: bytes, n: int = 1, timeout: float = 20.0) -> list[tuple[int, dict[str, str], bytes]]:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(payload)
        except OSError:
            pass
        try:
            return _read_responses(sock, n)
        except OSError:
            return []


def check_candidate(port: int, batch_size: int, max_body: int) -> dict[str, Any]:
    """Same checks for every candidate; each value is True or a reason."""
    checks: dict[str, Any] = {}

    def expect(name: str, payload: bytes, statuses: tuple[int, ...], n: int = 1,
               body_ok: Callable[[list[Any]], bool] | None = None) -> None:
        try:
            answers = _exchange(port, payload, n)
        except OSError as exc:
            checks[name] = f"{type(exc).__name__}: {exc}"
            return
        if len(answers) != n:
            checks[name] = f"{len(answers)} responses, expected {n}"
        elif any(a[0] not in statuses for a in answers):
            checks[name] = f"statuses {[a[0] for a in answers]}, expected {statuses}"
        elif not all(a[1].get("x-transaction-id") for a in answers):
            checks[name] = "X-Transaction-Id missing"
        elif body_ok is not None and not body_ok([msgspec.json.decode(a[2]) for a in answers]):
            checks[name] = f"unexpected body {answers[0][2][:120]!r}"
        else:
            checks[name] = True

    expect("single_202", single_request("r1"), (202,),
           body_ok=lambda b: b[0]["status"] == "accepted" and b[0]["client_ref"] == "r1" and bool(b[0]["id"]))
    expect("batch_202", batch_request(batch_size), (202,),
           body_ok=lambda b: len(b[0]) == batch_size and all(r["status"] == "accepted" for r in b[0])
           and [r["client_ref"] for r in b[0]] == [f"r{i}" for i in range(batch_size)])
    expect("pipelined_in_order", single_request("p1") + batch_request(2) + single_request("p2"), (202,), n=3,
           body_ok=lambda b: b[0]["client_ref"] == "p1" and len(b[1]) == 2 and b[2]["client_ref"] == "p2")
    expect("unknown_field_422", build_request("/v1/messages", {**message_item(0), "x": 1}), (422,))
    expect("bad_json_400", build_request("/v1/messages", None, raw=b'{"to": '), (400,))
    expect("batch_over_1000_422", batch_request(BATCH_LIMIT + 1), (422,))
    expect("oversize_413", build_request("/v1/messages", None, raw=b" " * (max_body + 1)), (413,))
    expect("unknown_path_404", build_request("/v1/nope", {}), (404,))
    return checks


# ---------------------------------------------------------------------------
# Orchestrator
# ---------------------------------------------------------------------------


def _missing(name: str) -> str | None:
    absent = [m for m in NEEDS[name] if importlib.util.find_spec(m) is None]
    return f"not installed: {', '.join(absent)}" if absent else None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


class _Client:
    def __init__(self, max_lifetime: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.http_choice", "--client", "--max-lifetime", str(max_lifetime)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)

    def run(self, cmd: dict[str, Any], timeout: float) -> dict[str, Any]:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            raise TimeoutError("load client did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("load client ended")
        return json.loads(line)


def _end(proc: subprocess.Popen) -> None:
    """Close stdin (the child exits by itself); end it by its PID only if it lingers."""
    try:
        if proc.stdin:
            proc.stdin.close()
        proc.wait(timeout=5)
    except (subprocess.TimeoutExpired, OSError):
        proc.kill()
        proc.wait(timeout=5)


def handler_cost(batch_size: int, seconds: float) -> dict[str, float]:
    """CPU µs of the handlers alone, in this process: what every server pays on top of its HTTP layer."""
    single = single_request().split(b"\r\n\r\n", 1)[1]
    batch = batch_request(batch_size).split(b"\r\n\r\n", 1)[1]
    out = {}
    for key, handler, body, per in (("single_us", handle_single, single, 1),
                                    ("batch_us_per_message", handle_batch, batch, batch_size)):
        n, start = 0, time.process_time()
        while (spent := time.process_time() - start) < seconds:
            for _ in range(max(1, 1000 // per)):
                handler(body)
            n += max(1, 1000 // per) * per
        out[key] = 1e6 * spent / n
    return out


def _median(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return round(statistics.median(values), 3) if values else None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(prog="python -m bench.http_choice", description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=2.0, help="measuring window per phase")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=float, default=0.5, help="load before each measuring window")
    ap.add_argument("--connections", type=int, default=50, help="keep-alive connections, single messages")
    ap.add_argument("--batch-connections", type=int, default=8, help="keep-alive connections, batches")
    ap.add_argument("--batch-size", type=int, default=BATCH_LIMIT)
    ap.add_argument("--max-body", type=int, default=MAX_BODY)
    ap.add_argument("--target-msgs", type=float, default=25_000.0,
                    help="product peak (msg/s through batches); batches are also paced at half of it")
    ap.add_argument("--candidates", default=",".join(CANDIDATES))
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--client", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--max-lifetime", type=float, default=600.0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _run_server(args.serve, args.fd, args.max_body, args.max_lifetime)
        return {}
    if args.client:
        _run_client(args.max_lifetime)
        return {}

    names = [n for n in args.candidates.split(",") if n]
    phase_s = args.warmup + args.seconds + 0.5
    lifetime = 120 + 3 * (len(names) * 6 * args.rounds * phase_s)
    result: dict[str, Any] = {
        "mode": "http_choice",
        "command": " ".join([Path(sys.executable).name, "-m", "bench.http_choice", *(argv if argv is not None else sys.argv[1:])]),
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "settings": {k: getattr(args, k) for k in ("seconds", "rounds", "warmup", "connections",
                                                    "batch_connections", "batch_size", "max_body", "target_msgs")},
        "versions": {d: _version(d) for d in ("aiohttp", "httptools", "uvicorn", "uvloop", "msgspec")},
        "candidates": {},
    }
    try:
        from bench._harness import git_commit, machine

        result["commit"], result["machine"] = git_commit(), machine()
    except Exception:  # noqa: BLE001 # pragma: no cover - the harness is optional here
        result["machine"] = {"nproc": os.cpu_count(), "python": sys.version.split()[0]}

    servers: dict[str, tuple[subprocess.Popen, int]] = {}
    client: _Client | None = None
    try:
        for name in names:
            reason = _missing(name) if name in NEEDS else "unknown candidate"
            if reason:
                result["candidates"][name] = {"status": "skipped", "reason": reason}
                continue
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sock.listen(1024)
            proc = subprocess.Popen(
                [sys.executable, "-m", "bench.http_choice", "--serve", name, "--fd", str(sock.fileno()),
                 "--max-body", str(args.max_body), "--max-lifetime", str(lifetime)],
                stdin=subprocess.PIPE, pass_fds=[sock.fileno()], cwd=Path(__file__).resolve().parent.parent)
            servers[name] = (proc, sock.getsockname()[1])
            sock.close()  # the child holds it; if the child dies, connecting fails fast
        client = _Client(lifetime)
        live: list[str] = []
        for name, (proc, port) in servers.items():
            checks = check_candidate(port, args.batch_size, args.max_body)
            ok = all(v is True for v in checks.values())
            result["candidates"][name] = {"status": "ok" if ok else "failed", "correct": ok, "checks": checks,
                                          "pid": proc.pid, "rounds": []}
            if ok:
                live.append(name)

        timeout = phase_s + 10

        def run(name: str, kind: str, rate: float | None = None) -> dict[str, Any]:
            proc, port = servers[name]
            conns = args.connections if kind == "single" else args.batch_connections
            r = client.run({"kind": kind, "port": port, "pid": proc.pid, "conns": conns, "rate": rate,
                            "batch_size": args.batch_size, "warmup": args.warmup, "seconds": args.seconds}, timeout)
            if "error" in r:
                raise RuntimeError(f"{name} {kind}: {r['error']}")
            n, wall, per = r["responses"], r["wall_s"], (1 if kind == "single" else args.batch_size)
            r["per_s"] = n * per / wall if wall else 0.0
            r["server_cpu_us_per_item"] = 1e6 * r["server_cpu_s"] / (n * per) if n else None
            r["client_cpu_us_per_item"] = 1e6 * r["client_cpu_s"] / (n * per) if n else None
            r["server_cpu_share"] = r["server_cpu_s"] / wall if wall else None
            r["client_cpu_share"] = r["client_cpu_s"] / wall if wall else None
            return r

        baselines: list[dict[str, float]] = []
        for _ in range(args.rounds):
            baselines.append(handler_cost(args.batch_size, min(0.25, args.seconds / 2)))
            rnd: dict[str, dict[str, Any]] = {name: {} for name in live}
            for name in live:  # A, B, C, A, B, C, ...
                rnd[name]["single"] = run(name, "single")
            for name in live:
                rnd[name]["batch"] = run(name, "batch")
            common = min((rnd[n]["single"]["per_s"] for n in live), default=0.0) / 2
            for name in live:
                rnd[name]["latency_single_half_own_peak"] = run(name, "single", rnd[name]["single"]["per_s"] / 2)
            for name in live:
                rnd[name]["latency_single_common_rate"] = run(name, "single", common)
            for name in live:
                rnd[name]["latency_batch_half_own_peak"] = run(
                    name, "batch", rnd[name]["batch"]["per_s"] / args.batch_size / 2)
            for name in live:  # the product's target: 25k msg/s peak through batches, latency at half of it
                rnd[name]["latency_batch_target_rate"] = run(name, "batch", args.target_msgs / args.batch_size / 2)
            for name in live:
                result["candidates"][name]["rounds"].append(rnd[name])
    finally:
        if client is not None:
            _end(client.proc)
        for proc, _ in servers.values():
            _end(proc)

    result["handlers_only"] = {k: _median([b[k] for b in baselines]) for k in ("single_us", "batch_us_per_message")}
    base = "aiohttp" if "aiohttp" in live else None
    for name in live:
        cand = result["candidates"][name]
        rounds = cand["rounds"]

        def med(phase: str, key: str, rounds: list = rounds) -> float | None:
            return _median([r[phase][key] for r in rounds])

        cand["single"] = {"requests_per_s": med("single", "per_s"),
                          "server_cpu_us_per_request": med("single", "server_cpu_us_per_item"),
                          "client_cpu_us_per_request": med("single", "client_cpu_us_per_item"),
                          "server_cpu_share": med("single", "server_cpu_share"),
                          "client_cpu_share": med("single", "client_cpu_share")}
        cand["batch"] = {"messages_per_s": med("batch", "per_s"),
                         "server_cpu_us_per_message": med("batch", "server_cpu_us_per_item"),
                         "client_cpu_us_per_message": med("batch", "client_cpu_us_per_item"),
                         "server_cpu_share": med("batch", "server_cpu_share"),
                         "client_cpu_share": med("batch", "client_cpu_share")}
        for phase in ("latency_single_half_own_peak", "latency_single_common_rate", "latency_batch_half_own_peak",
                      "latency_batch_target_rate"):
            unit = 1 if phase.startswith("latency_single") else args.batch_size
            cand[phase] = {"offered_per_s": _median([r[phase]["responses"] * unit / args.seconds for r in rounds]),
                           "p50_ms": med(phase, "p50_ms"), "p99_ms": med(phase, "p99_ms"),
                           "max_ms": med(phase, "max_ms"),
                           "server_cpu_us_per_item": med(phase, "server_cpu_us_per_item"),
                           "bad": sum(r[phase]["bad"] for r in rounds),
                           "unanswered": sum(r[phase]["unanswered"] for r in rounds)}
        cand["http_layer_cpu_us"] = {  # server CPU minus the handlers' own cost (same round), median
            "per_request": _median([r["single"]["server_cpu_us_per_item"] - bl["single_us"]
                                    for r, bl in zip(rounds, baselines)]),
            "per_batch_request": _median([(r["batch"]["server_cpu_us_per_item"] - bl["batch_us_per_message"])
                                          * args.batch_size for r, bl in zip(rounds, baselines)])}
        cand["bad_responses"] = sum(r[p]["bad"] for r in rounds for p in r)
        if base:
            b = result["candidates"][base]["rounds"]

            def ratio(phase: str, key: str, rounds: list = rounds, b: list = b) -> float | None:
                return _median([r[phase][key] / br[phase][key] for r, br in zip(rounds, b)
                                if r[phase][key] and br[phase][key]])

            cand["vs_aiohttp"] = {"server_cpu_per_request": ratio("single", "server_cpu_us_per_item"),
                                  "server_cpu_per_message_batch": ratio("batch", "server_cpu_us_per_item"),
                                  "requests_per_s": ratio("single", "per_s"),
                                  "messages_per_s_batch": ratio("batch", "per_s"),
                                  "p99_single_half_own_peak": ratio("latency_single_half_own_peak", "p99_ms"),
                                  "p99_single_common_rate": ratio("latency_single_common_rate", "p99_ms")}
        for r in rounds:  # keep the raw rounds short: the figures that vary
            for p in r:
                r[p] = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r[p].items()
                        if k in ("per_s", "server_cpu_us_per_item", "client_cpu_share", "server_cpu_share",
                                 "p50_ms", "p99_ms", "bad", "unanswered")}
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result


if __name__ == "__main__":
    main()
