"""``denpo serve``: the engine and its HTTP API in one process.

With no ``--config`` it runs the embedded default (``config/denpo.toml``): the
store under the data directory (``./var``), HTTP on 127.0.0.1:8080, the four
carrier simulators as child processes on free ports (each its own process, so
they never take the engine's CPU), and the ``demo`` account with a token taken
from ``DENPO_DEMO_TOKEN`` or made at start, printed and written to
``<data-dir>/demo-token``.  With ``--config`` the file's ``[[simulators]]`` (if
any) are started too, on the ports it names.

The process prints one JSON line ``{"event": "ready", ...}`` once the store is
open and HTTP serves, and stops on SIGTERM/SIGINT: HTTP closes first (no new
requests), then the engine persists everything, then the simulators end.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import ssl
import sys
from pathlib import Path
from typing import Any

import msgspec

from engine.api.auth import hash_token, new_token
from engine.api.http import HttpApi
from engine.api.server import HttpServer
from engine.engine import Engine
from engine.ops.config import Config, load_config

__all__ = ["serve", "DEFAULT_CONFIG", "parse_listen"]

log = logging.getLogger("denpo.serve")

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "config" / "denpo.toml"
DEMO_ACCOUNT = "demo"


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


async def serve(
    config_path: str | Path | None = None,
    *,
    http: str | None = None,
    data_dir: str | Path | None = None,
    stop: asyncio.Event | None = None,
) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); 0 on a clean stop."""
    embedded = config_path is None
    path = Path(config_path) if config_path is not None else DEFAULT_CONFIG
    config = load_config(path)
    folder = Path(data_dir) if data_dir is not None else Path("var")
    folder.mkdir(parents=True, exist_ok=True)
    host, port = parse_listen(http or config.http.listen)

    token = None
    if embedded and DEMO_ACCOUNT in config.accounts:
        token = _demo_token(folder)
        accounts = dict(config.accounts)
        accounts[DEMO_ACCOUNT] = _replace(accounts[DEMO_ACCOUNT], token_sha256=hash_token(token))
        config = _replace(config, accounts=accounts)

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    procs: list[asyncio.subprocess.Process] = []
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

        engine = Engine(config, data_dir=folder)
        await engine.start()
        try:
            api = HttpApi(engine, config)
            async with HttpServer(api, host, port, ssl_context=_ssl_context(config)) as server:
                scheme = "https" if server.ssl_context is not None else "http"
                ready_line: dict[str, Any] = {
                    "event": "ready", "pid": os.getpid(), "http": f"{scheme}://{host}:{server.port}",
                    "data_dir": str(folder), "carriers": sorted(config.carriers),
                }
                if token is not None:
                    ready_line.update(account=DEMO_ACCOUNT, token=token, token_file=str(folder / "demo-token"))
                print(json.dumps(ready_line), flush=True)
                await stop.wait()
                log.info("stopping: no new requests; persisting")
        finally:
            await engine.close()
    finally:
        await _stop_simulators(procs)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    print(json.dumps({"event": "stopped", "pid": os.getpid()}), flush=True)
    return 0
