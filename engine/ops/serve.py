"""``denpo serve``: the engine and its HTTP API in one process.

With no ``--config`` it runs the embedded default (``config/denpo.toml``): the
store under the data directory (``./var``), HTTP on 127.0.0.1:8080, the four
carrier simulators as child processes on free ports (each its own process, so
they never take the engine's CPU), and the ``demo`` account with a token taken
from ``DENPO_DEMO_TOKEN`` or made at start, printed and written to
``<data-dir>/demo-token``.  With ``--config`` the file's ``[[simulators]]`` (if
any) are started too, on the ports it names.

The process prints one JSON line ``{"event": "ready", ...}`` once the store is
open and HTTP serves (and, under systemd, sends READY=1; see
:mod:`engine.ops.systemd`: WATCHDOG=1, STATUS= and STOPPING=1 too).

**Graceful drain** on SIGTERM/SIGINT: it prints ``{"event": "draining"}`` and
sends STOPPING=1; from then on every new API request is answered 503 with
``Retry-After`` (``/healthz`` and ``/metrics`` still answer, ``/readyz`` says
``draining``), while requests already running finish (and requests already
being received are answered); then the engine closes: it stops sending, waits
for the responses of submits in flight, unbinds and persists everything; then
HTTP closes and the simulators end; exit 0 with ``{"event": "stopped",
"drained": true}``.  A second SIGTERM/SIGINT, or ``drain_timeout`` seconds
(``--drain-timeout``, default 30), cut the drain short: what is staged is
committed (bounded), and the process exits 0 with ``"drained": false``.  Nothing
accepted is lost either way: 202 was answered after the commit, and the next
start recovers every unfinished message from the store (a submit whose response
never came is re-sent, per carrier policy).  SIGHUP reads the config file again
and applies what can change while running — accounts (tokens, allowlists,
senders, limits, notification URLs), carriers' rates and retries, limits — and
refuses, with the key, what needs a restart (see ``Engine.reload``); it prints a
``reloaded`` line and logs both lists.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from collections.abc import Callable
from typing import Any

import msgspec

from engine.api.auth import hash_token, new_token
from engine.api.http import HttpApi
from engine.api.server import HttpServer
from engine.engine import Engine
from engine.ops.config import Config, ConfigError, load_config
from engine.ops.logs import setup_logging
from engine.ops.systemd import Heartbeat, SystemdNotifier

__all__ = ["serve", "DEFAULT_CONFIG", "DRAIN_TIMEOUT", "parse_listen"]

log = logging.getLogger("denpo.serve")

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "denpo.toml"
DEMO_ACCOUNT = "demo"
DRAIN_TIMEOUT = 30.0  # seconds; keep systemd's TimeoutStopSec above it (config/denpo.service)


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:8080`` for IPv6) → (host, port); ValueError when it is not."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{text!r}: give HOST:PORT")
    number = int(port)
    if number > 65535:
        raise ValueError(f"{text!r}: port above 65535")
    return host.strip("[]"), number


def _replace(struct: Any, **changes: Any) -> Any:
    return msgspec.structs.replace(struct, **changes)


def _demo_token(data_dir: Path) -> str:
    token = os.environ.get("DENPO_DEMO_TOKEN") or new_token()[0]
    path = data_dir / "demo-token"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


async def _start_simulator(config_path: Path, carrier: str, port: int | None) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    args = [sys.executable, "-m", "engine", "sim", "--config", str(config_path), "--carrier", carrier]
    if port is not None:
        args += ["--port", str(port)]
    # a session of its own: a Ctrl-C at the terminal reaches serve, which stops
    # the simulators after the engine has unbound, not all at once
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stdin=asyncio.subprocess.DEVNULL, start_new_session=True
    )
    assert proc.stdout is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        ready = json.loads(line) if line else None
    except (asyncio.TimeoutError, ValueError):
        ready = None
    if not ready or ready.get("event") != "ready":
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
        raise RuntimeError(f"the {carrier} simulator did not start (exit {proc.returncode})")
    return proc, ready


async def _stop_simulators(procs: list[asyncio.subprocess.Process]) -> None:
    for proc in procs:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()


def _ssl_context(config: Config) -> ssl.SSLContext | None:
    if config.http.tls_cert is None or config.http.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.http.tls_cert, config.http.tls_key)
    return context


def _status_line(engine: Engine, loop: asyncio.AbstractEventLoop) -> Callable[[str], str]:
    """A STATUS= text: throughput since the last call, backlog, binds up per carrier."""
    last = [loop.time(), engine.counters.get("accepted", 0), 0]

    def submitted() -> int:
        return sum(c.pool.counters.get("submitted", 0) for c in engine.carriers.values() if c.pool is not None)

    last[2] = submitted()

    def line(state: str) -> str:
        now, accepted, sent = loop.time(), engine.counters.get("accepted", 0), submitted()
        span = max(now - last[0], 1e-3)
        rates = f"{(accepted - last[1]) / span:.0f} accepted/s, {(sent - last[2]) / span:.0f} submits/s"
        last[:] = [now, accepted, sent]
        binds = ", ".join(
            f"{name} {c.pool.binds_up}/{len(c.pool.binds)}" for name, c in sorted(engine.carriers.items()) if c.pool is not None
        )
        return f"{state}: {rates}, backlog {engine.backlog}; binds up {binds}"

    return line


async def _http_settled(server: HttpServer) -> None:
    """Wait for the HTTP requests that were running when the drain began, and for
    those being received then (they are answered, with 503, rather than cut)."""
    tasks = {t for t in server.tasks if not t.done()}
    receiving = [c for c in server.conns if getattr(c, "head", False) or getattr(c, "in_body", False)]
    while True:
        tasks = {t for t in tasks if not t.done()}
        receiving = [c for c in receiving if c.transport is not None and (c.head or c.in_body)]
        if not tasks and not receiving:
            return
        if tasks:
            await asyncio.wait(tasks, timeout=0.05)
        else:
            await asyncio.sleep(0.05)  # a request still arriving: its body or the server's deadline ends it


def _reload(path: Path, embedded: bool, running: dict[str, Any]) -> None:
    """SIGHUP: read the config file again and apply what can change while running
    (the engine says what it took and what it refused); reported in the log and as
    a ``reloaded`` JSON line.  A file with problems changes nothing."""
    current: Config = running["config"]
    try:
        new = load_config(path)
    except ConfigError as exc:
        log.error("SIGHUP: %s; nothing changed", exc)
        print(json.dumps({"event": "reload_failed", "problems": [str(p) for p in exc.problems]}), flush=True)
        return
    if embedded:
        # the embedded default's simulators run on ports chosen at start, and the demo
        # account's token was made then: both stay as they are
        carriers = {
            name: _replace(c, endpoints=current.carriers[name].endpoints) if name in current.carriers else c
            for name, c in new.carriers.items()
        }
        accounts = dict(new.accounts)
        if DEMO_ACCOUNT in accounts and DEMO_ACCOUNT in current.accounts:
            accounts[DEMO_ACCOUNT] = _replace(accounts[DEMO_ACCOUNT], token_sha256=current.accounts[DEMO_ACCOUNT].token_sha256)
        new = _replace(new, carriers=carriers, accounts=accounts, simulators=current.simulators)
    engine: Engine = running["engine"]
    applied, refused = engine.reload(new)
    running["api"].reload(new)
    running["config"] = new
    if refused:
        log.warning("SIGHUP: applied %s; refused (restart to change): %s", ", ".join(applied) or "nothing", "; ".join(refused))
    else:
        log.info("SIGHUP: applied %s", ", ".join(applied) or "nothing (no change)")
    print(json.dumps({"event": "reloaded", "applied": applied, "refused": refused}), flush=True)


async def serve(
    config_path: str | Path | None = None,
    *,
    http: str | None = None,
    data_dir: str | Path | None = None,
    stop: asyncio.Event | None = None,
    drain_timeout: float = DRAIN_TIMEOUT,
    status_interval: float = 2.0,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set), then drain; 0 on a stop."""
    embedded = config_path is None
    path = Path(config_path) if config_path is not None else DEFAULT_CONFIG
    config = load_config(path)
    setup_logging(config.logging.level, config.logging.format)
    folder = Path(data_dir) if data_dir is not None else Path("var")
    folder.mkdir(parents=True, exist_ok=True)
    host, port = parse_listen(http or config.http.listen)
    systemd = SystemdNotifier()  # before the simulators start: they must not inherit NOTIFY_SOCKET

    token = None
    if embedded and DEMO_ACCOUNT in config.accounts:
        token = _demo_token(folder)
        accounts = dict(config.accounts)
        accounts[DEMO_ACCOUNT] = _replace(accounts[DEMO_ACCOUNT], token_sha256=hash_token(token))
        config = _replace(config, accounts=accounts)

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    fast = asyncio.Event()  # a second signal: cut the drain short

    def on_signal(name: str) -> None:
        if stop.is_set():
            if not fast.is_set():
                log.warning("%s again: cutting the drain short (what is unfinished is recovered at the next start)", name)
            fast.set()
        else:
            log.info("%s: draining", name)
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)
    running: dict[str, Any] = {}  # engine, api and the config they run on, once started

    def on_reload() -> None:
        if "engine" in running and not stop.is_set():
            _reload(path, embedded, running)

    loop.add_signal_handler(signal.SIGHUP, on_reload)

    procs: list[asyncio.subprocess.Process] = []
    drained = True
    heartbeat: Heartbeat | None = None
    try:
        if config.simulators:
            # the embedded default takes free ports, so several instances can run side by side
            started = await asyncio.gather(
                *(_start_simulator(path, sim.carrier, 0 if embedded else None) for sim in config.simulators),
                return_exceptions=True,
            )
            procs = [s[0] for s in started if not isinstance(s, BaseException)]
            failed = [s for s in started if isinstance(s, BaseException)]
            if failed:
                raise failed[0]
            if embedded:
                carriers = dict(config.carriers)
                for _proc, ready in started:  # type: ignore[misc]
                    name = ready["carrier"]
                    if name in carriers:
                        settings = carriers[name]
                        endpoints = [_replace(e, port=ready["port"]) if e.host in ("127.0.0.1", "localhost") else e for e in settings.endpoints]
                        carriers[name] = _replace(settings, endpoints=endpoints)
                config = _replace(config, carriers=carriers)

        engine = Engine(config, data_dir=folder, events=False)  # no reader: results go out as notifications
        await engine.start()
        try:
            api = HttpApi(engine, config)
            running.update(engine=engine, api=api, config=config)
            server = HttpServer(api, host, port, ssl_context=_ssl_context(config))
            await server.start()
            try:
                scheme = "https" if server.ssl_context is not None else "http"
                ready_line: dict[str, Any] = {
                    "event": "ready", "pid": os.getpid(), "http": f"{scheme}://{host}:{server.port}",
                    "data_dir": str(folder), "carriers": sorted(config.carriers),
                }
                if token is not None:
                    ready_line.update(account=DEMO_ACCOUNT, token=token, token_file=str(folder / "demo-token"))
                print(json.dumps(ready_line), flush=True)
                status = _status_line(engine, loop)
                systemd.ready(status("serving"))  # the store is open and HTTP serves; carriers bind on their own
                heartbeat = Heartbeat(systemd, lambda: status("serving"), status_interval=status_interval)
                heartbeat.start()
                await stop.wait()
                drained = await _drain(api, server, engine, systemd, heartbeat, status, fast, drain_timeout)
            finally:
                if not drained:
                    server.shutdown_timeout = min(server.shutdown_timeout, 0.5)
                await server.close()
        finally:
            if drained:
                await engine.close()  # at once if the drain closed it; the whole close after an error
    finally:
        if heartbeat is not None:
            heartbeat.stop()
        systemd.close()
        await _stop_simulators(procs)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    print(json.dumps({"event": "stopped", "pid": os.getpid(), "drained": drained}), flush=True)
    return 0


async def _drain(
    api: HttpApi, server: HttpServer, engine: Engine, systemd: SystemdNotifier, heartbeat: Heartbeat,
    status: Callable[[str], str], fast: asyncio.Event, timeout: float,
) -> bool:
    """Stop accepting, finish what runs, close the engine; True when it all
    finished, False when a second signal or the deadline cut it short."""
    api.draining = True
    heartbeat.stop_status()
    systemd.stopping(status("draining"))
    print(json.dumps({"event": "draining", "pid": os.getpid(), "deadline_s": timeout}), flush=True)
    log.info("draining: new requests get 503; finishing requests in flight, then the engine closes (deadline %g s)", timeout)

    async def drain() -> None:
        await _http_settled(server)
        await engine.close()  # waits for the responses of submits in flight, unbinds, persists

    task = asyncio.get_running_loop().create_task(drain())
    cut = asyncio.get_running_loop().create_task(fast.wait())
    try:
        done, _ = await asyncio.wait({task, cut}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        cut.cancel()
    if task in done:
        task.result()  # an error closing the engine is raised, not hidden
        log.info("drained")
        return True
    log.warning("drain cut short (%s): committing what is staged; unfinished messages are recovered at the next start",
                "second signal" if fast.is_set() else f"deadline of {timeout:g} s")
    task.cancel()
    await asyncio.wait({task}, timeout=2.0)
    if task.done() and not task.cancelled() and task.exception() is not None:
        log.error("closing the engine failed", exc_info=task.exception())
    with contextlib.suppress(Exception):
        await asyncio.wait_for(engine.store.flush(), 2.0)  # the accepted messages are committed already; this is the rest
    return False
