"""Over HTTP: a load client process → ``denpo serve`` → simulators, result notifications to a local receiver.

    denpo bench http --mode single|batch [--count N] [--concurrency C] [--batch 1000] [--rate R]

Three processes (plus serve's four simulator children):

* ``denpo serve`` on a config written to a temporary folder: ``config/denpo.toml``
  with the ``demo`` account's rate limit lifted (1,000,000/s), a token made for
  the run, ``result_url`` pointing at the receiver with ``notify_batch = 100``,
  and the simulators and carrier endpoints moved to free ports;
* the **load client** (``python -m bench.http_bench client``): a raw asyncio
  ``Protocol`` per keep-alive connection writing prebuilt HTTP/1.1 requests and
  reading status lines and ``Content-Length`` bodies — no HTTP library, so it
  is not the bottleneck.  ``--concurrency`` connections, one request in flight
  on each; ``single`` posts ``/v1/messages``, ``batch`` posts
  ``/v1/messages/batch`` with ``--batch`` messages each.  503/429 are retried
  after ``Retry-After`` (capped at 1 s) and counted.  ``--rate`` caps the
  messages/s offered (default: as fast as the server answers);
* the **receiver**, in this (the bench's) process: a lean HTTP server answering
  200 at once; events are counted by ``event_id`` (de-duplicated) and by
  message ``id``.

Messages go to all four carriers round robin, to distinct numbers
(``090`` + 8 digits), Japanese text.  ``final`` is the number of messages a
final-status notification arrived for; ``seconds`` runs from the first request
to the last new notification (or to the last 202 when no notification came).
If no notification arrives at all (notifications not live), a sample of
accepted ids is polled with ``GET /v1/messages/{id}`` until final; ``final`` and
``lost`` are then ``null`` and ``note`` says so.

Figures per process: ``processes`` → ``serve`` (the engine + HTTP),
``sim_<carrier>`` (serve's children, read from /proc), ``client`` and
``receiver`` (this process); ``cpu_s`` is CPU used during the measured run,
``rss_mb`` at its end.  Every process is ended by its PID.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import shutil
import signal
import socket
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

import msgspec

__all__ = ["RawClient", "Receiver", "percentiles", "run", "run_client", "write_config"]

CARRIERS = ("au", "docomo", "softbank", "rakuten")
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "config" / "denpo.toml"
TEXT = "ベンチマーク: お客様のご注文を承りました。発送は明日の予定です。"


# --- helpers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p90/p99/p999 of ``values`` (seconds) in milliseconds."""
    if not values:
        return {"p50": None, "p90": None, "p99": None, "p999": None}
    ordered = sorted(values)
    n = len(ordered)

    def at(q: float) -> float:
        return round(1000 * ordered[min(n - 1, int(q * n))], 2)

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "p999": at(0.999)}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")


def _toml(data: dict[str, Any], prefix: str = "") -> str:
    """A small TOML writer for config-shaped data (tables, arrays of tables, inline values)."""
    lines: list[str] = []
    tables: list[tuple[str, dict[str, Any]]] = []
    arrays: list[tuple[str, list[dict[str, Any]]]] = []
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            tables.append((name, value))
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value) and not prefix:
            arrays.append((name, value))
        else:
            lines.append(f"{json.dumps(key)} = {_toml_value(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for name, table in tables:
        out += f"\n[{name}]\n" + _toml(table, name)
    for name, items in arrays:
        for item in items:
            out += f"\n[[{name}]]\n" + _toml(item, name)
    return out


def write_config(
    folder: Path,
    *,
    token: str,
    receiver_port: int,
    source: Path = DEFAULT_CONFIG,
    notify_batch: int = 100,
    sim_ports: dict[str, int] | None = None,
    sections: dict[str, dict[str, Any]] | None = None,
) -> Path:
    """``source`` with the demo account opened up for a benchmark and every SMPP port moved to a free one.

    ``sim_ports`` (carrier → port): simulators the caller runs itself — no ``[[simulators]]``
    for serve to start, and the carriers' local endpoints point there.  ``sections`` are
    merged into the config's tables (e.g. ``{"engine": {"receipt_timeout_s": 30.0}}``)."""
    data = tomllib.loads(source.read_text(encoding="utf-8"))
    for name, values in (sections or {}).items():
        data.setdefault(name, {}).update(values)
    demo = data.setdefault("accounts", {}).setdefault("demo", {})
    demo.update(
        rate_limit=1_000_000.0,
        burst=1_000_000,
        token_sha256=hashlib.sha256(token.encode()).hexdigest(),
        result_url=f"http://127.0.0.1:{receiver_port}/results",
        notify_batch=notify_batch,
        signing_secret=secrets.token_hex(16),
    )
    ports = dict(sim_ports or {})
    if sim_ports is not None:
        data.pop("simulators", None)
    for sim in data.get("simulators", []):
        ports[sim["carrier"]] = sim["port"] = free_port()
    for name, carrier in data.get("carriers", {}).items():
        if name in ports:
            for endpoint in carrier.get("endpoints", []):
                if endpoint.get("host") in ("127.0.0.1", "localhost"):
                    endpoint["port"] = ports[name]
    data.setdefault("logging", {})["format"] = "json"
    path = folder / "denpo.toml"
    path.write_text(_toml(data), encoding="utf-8")
    return path


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
        return found
    except OSError:
        pass
    for entry in Path("/proc").iterdir():  # no /proc/*/children: scan parents
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


def _simulator_pids(serve_pid: int) -> dict[str, int]:
    sims = {}
    for pid in _children(serve_pid):
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"sim" in args and b"--carrier" in args:
            sims[args[args.index(b"--carrier") + 1].decode()] = pid
    return sims


# --- raw HTTP/1.1 -------------------------------------------------------------------------


class _Message(msgspec.Struct):
    id: str | None = None


class _BatchOut(msgspec.Struct):
    accepted: int = 0
    rejected: int = 0
    results: list[_Message] = []


class _Event(msgspec.Struct):
    event_id: int | str | None = None
    id: str | int | None = None
    status: str | None = None


_decode_message = msgspec.json.Decoder(_Message).decode
_decode_batch = msgspec.json.Decoder(_BatchOut).decode
_decode_events = msgspec.json.Decoder(list[_Event] | _Event).decode


def _content_length(head: bytes) -> int | None:
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        return None
    end = lower.find(b"\r\n", at + 17)
    return int(lower[at + 17 : end if end >= 0 else len(lower)].strip())


def _header(head: bytes, name: bytes) -> bytes | None:
    lower = head.lower()
    at = lower.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    start = at + len(name) + 3
    end = lower.find(b"\r\n", start)
    return head[start : end if end >= 0 else len(head)].strip()


class RawClient(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time: ``await request(raw)`` → (status, head, body)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bytes]] | None = None
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @classmethod
    async def connect(cls, host: str, port: int) -> RawClient:
        _t, protocol = await asyncio.get_running_loop().create_connection(cls, host, port)
        return protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))

    def request(self, raw: bytes) -> asyncio.Future[tuple[int, bytes, bytes]]:
        assert self.transport is not None
        if self.transport.is_closing():
            raise ConnectionError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return self.waiter

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buf[: end + 2])
        length = _content_length(head)
        if length is None:
            chunked = (_header(head, b"transfer-encoding") or b"").lower() == b"chunked"
            if not chunked:
                length = 0
            else:
                body = self._dechunk(end + 4)
                if body is None:
                    return
                self._deliver(head, body[0], body[1])
                return
        if len(buf) < end + 4 + length:
            return
        self._deliver(head, bytes(buf[end + 4 : end + 4 + length]), end + 4 + length)

    def _dechunk(self, at: int) -> tuple[bytes, int] | None:
        buf = self.buffer
        parts = []
        while True:
            eol = buf.find(b"\r\n", at)
            if eol < 0:
                return None
            size = int(bytes(buf[at:eol]).split(b";")[0], 16)
            if len(buf) < eol + 2 + size + 2:
                return None
            if size == 0:
                return b"".join(parts), eol + 4
            parts.append(bytes(buf[eol + 2 : eol + 2 + size]))
            at = eol + 2 + size + 2

    def _deliver(self, head: bytes, body: bytes, consumed: int) -> None:
        del self.buffer[:consumed]
        status = int(head[9:12])
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((status, head, body))


def build_request(host: str, path: str, token: str, body: bytes, method: str = "POST") -> bytes:
    """One HTTP/1.1 request; no Authorization header when ``token`` is empty."""
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
        + (f"Authorization: Bearer {token}\r\n" if token else "")
        + (f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if method == "POST" else "")
        + "\r\n"
    )
    return head.encode("ascii") + body


def message_dict(i: int) -> dict[str, Any]:
    return {"to": f"090{i % 100_000_000:08d}", "text": f"{TEXT}({i})", "carrier": CARRIERS[i % 4]}


# --- the load client (its own process) ------------------------------------------------------


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    host, port, token = spec["host"], spec["port"], spec["token"]
    mode, count, batch = spec["mode"], spec["count"], spec["batch"]
    offset = spec.get("offset", 0)  # message numbers start here (a second phase sends new messages)
    concurrency, rate = spec["concurrency"], spec.get("rate")
    encode = msgspec.json.Encoder().encode
    authority = spec.get("authority") or f"{host}:{port}"  # the Host header
    requests: list[tuple[bytes, int]] = []  # (raw request, messages in it)
    if mode == "get":  # GET path_template.format(i=i), one message each (Kannel's /cgi-bin/sendsms)
        template = spec["path_template"]
        requests = [(build_request(authority, template.format(i=i), token, b"", "GET"), 1) for i in range(count)]
    elif mode == "single":
        for i in range(count):
            requests.append((build_request(authority, "/v1/messages", token, encode(message_dict(offset + i))), 1))
    else:
        for first in range(0, count, batch):
            items = [message_dict(offset + i) for i in range(first, min(count, first + batch))]
            requests.append((build_request(authority, "/v1/messages/batch", token, encode({"messages": items})), len(items)))
    sample_every = max(1, len(requests) // spec.get("sample", 200))
    connections = [await RawClient.connect(host, port) for _ in range(min(concurrency, len(requests)))]
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    accepted = rejected = retries = 0
    sample: list[str] = []
    next_request = 0
    offered = 0
    perf = time.perf_counter
    start = perf()
    start_mono = time.monotonic()
    last_accept = start

    async def worker(conn: RawClient) -> None:
        nonlocal next_request, accepted, rejected, retries, offered, last_accept
        while next_request < len(requests):
            k = next_request
            next_request += 1
            raw, n = requests[k]
            if rate:
                due = start + offered / rate
                offered += n
                if due > perf():
                    await asyncio.sleep(due - perf())
            while True:
                t0 = perf()
                status, head, body = await conn.request(raw)
                t1 = perf()
                statuses[status] = statuses.get(status, 0) + 1
                if status in (429, 503):
                    retries += 1
                    retry = _header(head, b"retry-after")
                    await asyncio.sleep(min(1.0, float(retry)) if retry else 0.1)
                    continue
                break
            latencies.append(t1 - t0)
            if status == 202:
                last_accept = t1
                if mode != "batch":
                    accepted += 1
                    if mode == "single" and k % sample_every == 0:
                        sample.append(_decode_message(body).id)  # type: ignore[arg-type]
                else:
                    out = _decode_batch(body)
                    accepted += out.accepted
                    rejected += out.rejected
                    if k % sample_every == 0:
                        sample.extend(r.id for r in out.results[:: max(1, len(out.results) // 4)] if r.id)
            else:
                rejected += n

    await asyncio.gather(*(worker(c) for c in connections))
    for conn in connections:
        if conn.transport is not None:
            conn.transport.close()
    return {
        "accepted": accepted,
        "rejected": rejected,
        "retries": retries,
        "requests": len(requests),
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "start_monotonic": start_mono,
        "accept_seconds": last_accept - start,
        "accept_latency_ms": percentiles(latencies),
        "sample": sample,
    }


def client_main(body: Any = None) -> int:
    """A load client process: a JSON spec on stdin, one JSON result line on stdout (``body(spec)``, default this bench's)."""
    body = body or _client
    spec = json.loads(sys.stdin.readline())
    try:
        import uvloop

        result = uvloop.run(body(spec))
    except ImportError:  # pragma: no cover
        result = asyncio.run(body(spec))
    from bench._harness import self_usage

    result["usage"] = self_usage()
    print(json.dumps(result), flush=True)
    return 0


# --- the notification receiver (this process) ----------------------------------------------------


class Receiver:
    """Answers 200 at once; counts result notifications by ``event_id`` and message ``id``.

    ``messages`` maps each message id to the status of its first event; a message
    notified again with another status (a late receipt after ``indefinite``) has
    those in ``more_statuses``.  :meth:`close` stops listening and drops open
    connections (a receiver that went down); :meth:`start` again brings it back."""

    OK = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"

    def __init__(self) -> None:
        self.events: set[Any] = set()
        self.messages: dict[Any, str] = {}
        self.more_statuses: dict[Any, set[str]] = {}
        self.connections: set[asyncio.Transport] = set()
        self.statuses: dict[str, int] = {}
        self.posts = 0
        self.deliveries = 0  # events received, duplicates included
        self.bad = 0
        self.last_new = 0.0  # time.monotonic() of the last new message
        self.arrivals: list[float] = []  # time.monotonic() of each new message's first final notification
        self.target: int | None = None
        self.reached = asyncio.Event()
        self.changed = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> Receiver:
        self.server = await asyncio.get_running_loop().create_server(lambda: _ReceiverProtocol(self), host, port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
        for transport in list(self.connections):
            transport.abort()

    def take_head(self, head: bytes) -> None:
        """A request without a body: not counted here (bench.kannel_bench counts dlr-url GETs)."""

    def take(self, body: bytes) -> None:
        self.posts += 1
        try:
            decoded = _decode_events(body)
        except msgspec.DecodeError:
            self.bad += 1
            return
        events = decoded if isinstance(decoded, list) else [decoded]
        now = time.monotonic()
        for event in events:
            self.deliveries += 1
            key = event.event_id if event.event_id is not None else (event.id, event.status)
            if key in self.events:
                continue
            self.events.add(key)
            status = event.status or "?"
            self.statuses[status] = self.statuses.get(status, 0) + 1
            first = self.messages.get(event.id)
            if first is None:
                self.messages[event.id] = status
                self.last_new = now
                self.arrivals.append(now)
            elif first != status:
                self.more_statuses.setdefault(event.id, set()).add(status)
        self.changed.set()
        if self.target is not None and len(self.messages) >= self.target:
            self.reached.set()


class _ReceiverProtocol(asyncio.Protocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.receiver.connections.add(self.transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        self.receiver.connections.discard(self.transport)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        buf = self.buffer
        buf += data
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buf[: end + 2])
            length = _content_length(head) or 0
            if len(buf) < end + 4 + length:
                return
            body = bytes(buf[end + 4 : end + 4 + length])
            del buf[: end + 4 + length]
            assert self.transport is not None
            self.transport.write(Receiver.OK)  # answered before anything is counted
            if length:
                self.receiver.take(body)
            else:
                self.receiver.take_head(head)


# --- the run -------------------------------------------------------------------------------------


async def _start_serve(config: Path, folder: Path, http: str = "127.0.0.1:0") -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    log = (folder / "serve.log").open("ab")  # a restart on the same folder adds to the log
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "serve", "--config", str(config), "--http", http, "--data-dir", str(folder / "var"),
        stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, cwd=str(folder),
    )
    log.close()
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        ready = json.loads(line) if line else {}
    except (TimeoutError, ValueError):
        ready = {}
    if ready.get("event") != "ready":
        await _stop(proc, {})
        tail = (folder / "serve.log").read_text(errors="replace")[-2000:]
        raise RuntimeError(f"denpo serve did not become ready (exit {proc.returncode}):\n{tail}")
    return proc, ready


async def _stop(proc: asyncio.subprocess.Process, sims: dict[str, int]) -> None:
    """SIGTERM by PID (serve stops its simulators); SIGKILL after 30 s, then the simulators it left."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), 30)
    except TimeoutError:
        proc.kill()
        await proc.wait()
    for pid in sims.values():  # only if serve could not stop them
        try:
            os.kill(pid, 0)
        except OSError:
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass


async def _wait_for_binds(http: str, token: str, timeout: float = 30.0, path: str = "/readyz") -> None:
    """Until ``path`` (/readyz, or /readyz?carrier=X) answers 200 (or 404: none); otherwise the first 202s wait on binds."""
    host, port = http.rsplit("//", 1)[1].rsplit(":", 1)
    conn = await RawClient.connect(host, int(port))
    deadline = time.monotonic() + timeout
    try:
        raw = build_request(f"{host}:{port}", path, token, b"", "GET")
        while time.monotonic() < deadline:
            status, _head, _body = await conn.request(raw)
            if status in (200, 404):  # 404: no /readyz yet
                return
            await asyncio.sleep(0.05)
    finally:
        if conn.transport is not None:
            conn.transport.close()


async def _poll_sample(http: str, token: str, ids: list[str], deadline: float) -> tuple[int, float | None]:
    """GET each id until its status is final or the deadline; → (final, monotonic time the last became final)."""
    from engine.model import FINAL

    host, port = http.rsplit("//", 1)[1].rsplit(":", 1)
    conn = await RawClient.connect(host, int(port))
    waiting = list(ids)
    last = None
    try:
        while waiting and time.monotonic() < deadline:
            still = []
            for message_id in waiting:
                status, _head, body = await conn.request(build_request(f"{host}:{port}", f"/v1/messages/{message_id}", token, b"", "GET"))
                if status == 200 and msgspec.json.decode(body).get("status") in FINAL:
                    last = time.monotonic()
                else:
                    still.append(message_id)
            waiting = still
            if waiting:
                await asyncio.sleep(0.25)
    finally:
        if conn.transport is not None:
            conn.transport.close()
    return len(ids) - len(waiting), last


async def run_client(spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """The load client process on ``spec``; → its result (ended by PID if it overruns ``timeout``)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.http_bench", "client",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(json.dumps(spec).encode() + b"\n"), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    lines = out.decode().strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the load client failed (exit {proc.returncode})")
    return json.loads(lines[-1])


async def _await_finals(receiver: Receiver, target: int, no_notify_s: float, stall_s: float) -> None:
    """Until ``target`` messages were notified final, or nothing new came for ``stall_s``
    (``no_notify_s`` while nothing at all came)."""
    receiver.target = target
    receiver.reached.clear()
    if len(receiver.messages) >= target:
        receiver.reached.set()
    while not receiver.reached.is_set():
        receiver.changed.clear()
        before = len(receiver.messages)
        try:
            await asyncio.wait_for(receiver.reached.wait(), no_notify_s if not receiver.messages else stall_s)
        except TimeoutError:
            if len(receiver.messages) == before:
                break  # nothing new for stall_s (or nothing at all)


async def run(
    *,
    mode: str = "single",
    count: int = 20_000,
    concurrency: int | None = None,
    batch: int = 1000,
    rate: float | None = None,
    stall_s: float = 30.0,
    no_notify_s: float = 10.0,
    notify_batch: int = 100,
    half_peak: bool = False,
) -> dict[str, Any]:
    """Start serve, the receiver and the client; return the figures (``denpo bench http``).
    ``half_peak``: then offer half of the accepted rate reached, and report that phase's
    request → 202 latency as ``half_peak``."""
    from bench._harness import process_usage, self_usage

    if mode not in ("single", "batch"):
        raise ValueError("mode: single or batch")
    concurrency = concurrency or (64 if mode == "single" else 4)
    folder = Path(tempfile.mkdtemp(prefix="denpo-http-bench-"))
    token = secrets.token_urlsafe(32)
    receiver = await Receiver().start()
    config = write_config(folder, token=token, receiver_port=receiver.port, notify_batch=notify_batch)
    serve_proc: asyncio.subprocess.Process | None = None
    sims: dict[str, int] = {}
    note = None
    half_peak_figures: dict[str, Any] | None = None
    try:
        serve_proc, ready = await _start_serve(config, folder)
        sims = _simulator_pids(serve_proc.pid)
        await _wait_for_binds(ready["http"], token)
        host, port = ready["http"].rsplit("//", 1)[1].rsplit(":", 1)
        serve_before = process_usage(serve_proc.pid)
        sims_before = {c: process_usage(p) for c, p in sims.items()}
        me_before = self_usage()
        spec = {"host": host, "port": int(port), "token": token, "mode": mode, "count": count, "batch": batch, "concurrency": concurrency, "rate": rate}
        client = await run_client(spec, max(120.0, count / 200))
        accepted = client["accepted"]
        start = client["start_monotonic"]
        accept_done = start + client["accept_seconds"]

        # the finals: by notification, while they keep coming
        await _await_finals(receiver, accepted, no_notify_s, stall_s)
        if receiver.messages:
            final: int | None = len(receiver.messages)
            end = receiver.last_new
            sample_final = None
        else:
            # notifications not live: poll a sample until final
            ids = client["sample"]
            deadline = time.monotonic() + max(60.0, count / 1000)
            done, last = await _poll_sample(ready["http"], token, ids, deadline)
            final = None
            end = last or accept_done
            sample_final = {"ids": len(ids), "final": done}
            note = "no result notification arrived: final/lost not counted; seconds and final_per_s from a polled sample of accepted ids (last one final)"
        seconds = max(end, accept_done) - start
        serve_after = process_usage(serve_proc.pid)
        sims_after = {c: process_usage(p) for c, p in sims.items()}
        me_after = self_usage()
        if half_peak and accepted and client["accept_seconds"] > 0:
            # the same serve, now offered half of the peak it just reached: the latency a
            # service sized with 2x headroom sees (new messages, numbered after the first phase)
            half_rate = accepted / client["accept_seconds"] / 2
            half_count = max(batch if mode == "batch" else 1_000, min(count, int(half_rate * 10)))
            finals_before = len(receiver.messages)
            half = await run_client({**spec, "rate": half_rate, "count": half_count, "offset": count}, max(120.0, 4 * half_count / half_rate))
            await _await_finals(receiver, accepted + half["accepted"], no_notify_s, stall_s)
            half_peak_figures = {
                "rate": round(half_rate), "count": half_count, "accepted": half["accepted"],
                "accepted_per_s": round(half["accepted"] / half["accept_seconds"]) if half["accept_seconds"] > 0 else None,
                "final": len(receiver.messages) - finals_before, "accept_latency_ms": half["accept_latency_ms"],
            }
    finally:
        if serve_proc is not None:
            await _stop(serve_proc, sims)
        await receiver.close()
        shutil.rmtree(folder, ignore_errors=True)

    def used(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
        return {"rss_mb": after["rss_mb"], "cpu_s": round(after["cpu_s"] - before["cpu_s"], 2)}

    processes = {
        "serve": used(serve_after, serve_before),
        **{f"sim_{c}": used(sims_after[c], sims_before[c]) for c in sims_after},
        "client": client["usage"],
        "receiver": used(me_after, me_before),
    }
    accept_seconds = client["accept_seconds"]
    figures: dict[str, Any] = {
        "count": count,
        "batch": batch if mode == "batch" else None,
        "concurrency": concurrency,
        "rate": rate,
        "accepted": accepted,
        "rejected": client["rejected"],
        "retries": client["retries"],
        "http_statuses": client["http_statuses"],
        "final": final,
        "notified": len(receiver.events),
        "notify_posts": receiver.posts,
        "notify_duplicates": receiver.deliveries - len(receiver.events),
        "final_statuses": receiver.statuses,
        "lost": accepted - final if final is not None else None,
        "seconds": round(seconds, 3),
        "accept_seconds": round(accept_seconds, 3),
        "accepted_per_s": round(accepted / accept_seconds) if accept_seconds > 0 else None,
        "final_per_s": round((final if final is not None else accepted) / seconds) if seconds > 0 and (final is not None or sample_final) else None,
        "accept_latency_ms": client["accept_latency_ms"],
        "processes": processes,
        "rss_mb": {k: v["rss_mb"] for k, v in processes.items()},
        "cpu_s": {k: v["cpu_s"] for k, v in processes.items()},
        "serve_cpu_us_per_message": round(1e6 * processes["serve"]["cpu_s"] / accepted, 1) if accepted else None,
    }
    if receiver.arrivals:
        figures["first_final_s"] = round(receiver.arrivals[0] - start, 3)
        # new finals in each second from the first request: where the rate sags
        timeline = [0] * (int(receiver.arrivals[-1] - start) + 1)
        for t in receiver.arrivals:
            timeline[max(0, int(t - start))] += 1
        figures["finals_per_second"] = timeline
    if half_peak_figures is not None:
        figures["half_peak"] = half_peak_figures
    if sample_final is not None:
        figures["sample_final"] = sample_final
    if note:
        figures["note"] = note
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        raise SystemExit(client_main())
    raise SystemExit("usage: python -m bench.http_bench client  (the load client; run the bench with: denpo bench http)")
