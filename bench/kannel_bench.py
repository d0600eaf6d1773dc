"""Kannel side by side: Kannel 1.4.5 and denpo alternately, the same load, simulator and receiver.

    denpo bench kannel [--count 20000] [--pairs 3] [--concurrency 50]

Runs Kannel, denpo, Kannel, denpo … (``--pairs`` of each, ``--count`` messages per
run), so drift on a shared machine falls on both alike; every run starts its
processes afresh in a temporary folder and ends them by PID (try/finally, also
on errors and timeouts).  Debian's ``kannel`` package is installed first when
``/usr/sbin/bearerbox`` is missing (``bench/kannel/install.sh``).

What is the same on both sides:

* **the load**: the load client process of ``bench/http_bench.py`` (raw keep-alive
  HTTP/1.1, ``--concurrency`` connections — default 50 — one request in flight on
  each), sending byte for byte the same requests — Kannel's
  ``GET /cgi-bin/sendsms?username&password&to&from&text&coding=2&charset=UTF-8&dlr-mask=19&dlr-url=…``,
  one message each (``090`` + 8 digits, distinct; the Japanese text of the http
  bench, one UCS-2 part), the same account name and secret (Kannel's
  ``sendsms-user`` is ``demo`` with denpo's token as its password), even the same
  ``Host`` header; only the port they go to differs;
* **the way out**: one ``denpo sim --carrier docomo`` per run, same options
  (``SIM_OPTIONS``: bind credentials, receipts after 100 ms, no throughput cap),
  and **equal SMPP resources**: one transceiver with a window of 100 on each side
  (Kannel: ``max-pending-submits = 100``; denpo: ``binds = 1, window = 100`` for
  docomo, instead of its default two binds);
* **the way back**: one final callback per message, a ``dlr-url`` GET to the same
  receiver (``/dlr?id=<n>&d=%d``; ``dlr-mask=19`` = delivered 1 + undelivered 2 +
  SMSC reject 16, the final outcomes only), counted by message;
  denpo gets no JSON result notifications (``result_url`` unset).

Kannel's set-up (``bench/kannel/kannel.conf.in``): bearerbox and smsbox at
``-v 3`` and ``log-level = 2`` (its defaults, window 10 and debug logging, would
be unfair), no throughput cap, ``dlr-storage = internal``, no message store and no
access log (its fastest set-up: denpo, in contrast, commits every message to
SQLite before answering 202), ``sms-resend-freq = 1`` (a temporarily failed
submit goes again after 1 s, not 60), smsbox's default 512 callbacks in flight;
smsbox answers sendsms once bearerbox has queued the message (its default).
denpo runs ``denpo serve`` on ``config/denpo.toml`` with the ``demo`` account's
rate limit lifted, only docomo configured and ``090`` numbers looked up as docomo
(``[lookup]`` prefix fallback); otherwise its defaults (8 notification requests
in flight per account).

Per run: ``per_s`` = messages with a final callback / seconds from the first
request to the last new callback; ``accepted_per_s`` (202 answers / seconds to
the last one); ``accept_latency_ms`` (request → 202; p50/p90/p99/p999);
``lost`` = accepted without a callback once none came for ``stall_s`` seconds;
``rss_mb`` (at the end) and ``cpu_s`` (during the run) of each process —
``bearerbox``, ``smsbox`` or ``serve``; ``sim``; ``client``; ``receiver`` (this
process) — and the gateway's CPU per message; the simulator's own counters.
Result: ``kannel_per_s`` and ``denpo_per_s`` (one per run), ``ratio_median`` (the
median over pairs of denpo/Kannel), ``runs`` (every run's figures).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import string
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench._harness import process_usage, self_usage
from bench.http_bench import (
    ROOT,
    TEXT,
    RawClient,
    Receiver,
    _start_serve,
    _toml,
    _wait_for_binds,
    build_request,
    free_port,
    run_client,
    write_config,
)

__all__ = [
    "DlrReceiver", "client_spec", "denpo_config", "ensure_kannel", "kannel_config", "run", "sendsms_path_template",
]

KANNEL_DIR = Path(__file__).resolve().parent / "kannel"
TEMPLATE = KANNEL_DIR / "kannel.conf.in"
INSTALL = KANNEL_DIR / "install.sh"
BEARERBOX = Path("/usr/sbin/bearerbox")
SMSBOX = Path("/usr/sbin/smsbox")

CARRIER = "docomo"
SYSTEM_ID = "denpo"
SMPP_PASSWORD = "denpo"
WINDOW = 100
DLR_DELAY_MS = 100.0
DLR_MASK = 19  # 1 delivered + 2 undelivered + 16 rejected by the SMSC: one final callback per message
USERNAME = "demo"
SENDER = "0120000002"  # the demo account's registered docomo sender (config/denpo.toml)
SIM_OPTIONS = (
    "--carrier", CARRIER, "--port", "0", "--system-id", SYSTEM_ID, "--password", SMPP_PASSWORD,
    "--dlr-delay-ms", str(DLR_DELAY_MS), "--partial-failure-rate", "0",
)
LOG_LEVEL = 2  # Kannel: 0 debug, 1 info, 2 warning
START_TIMEOUT = 30.0  # seconds for a gateway or the simulator to come up
DLR_VALUES = {b"1": "delivered", b"2": "undelivered", b"4": "buffered", b"8": "smsc_accepted", b"16": "smsc_rejected"}


# --- what both sides get ---------------------------------------------------------------------


def sendsms_path_template(*, token: str, receiver_port: int) -> str:
    """Kannel's sendsms request line target, ``{i}`` for the message's number (``str.format``)."""
    dlr_url = quote(f"http://127.0.0.1:{receiver_port}/dlr?id=", safe="") + "{i}" + quote("&d=%d", safe="")
    return (
        f"/cgi-bin/sendsms?username={USERNAME}&password={quote(token, safe='')}&to=090{{i:08d}}&from={SENDER}"
        f"&text={quote(TEXT, safe='')}%28{{i}}%29&coding=2&charset=UTF-8&dlr-mask={DLR_MASK}&dlr-url={dlr_url}"
    )


def client_spec(port: int, *, token: str, receiver_port: int, count: int, concurrency: int) -> dict[str, Any]:
    """The load client's spec for a gateway on ``port``: nothing in the requests depends on the side."""
    return {
        "host": "127.0.0.1", "port": port, "authority": "127.0.0.1", "token": "", "mode": "get", "batch": 1,
        "count": count, "concurrency": concurrency, "rate": None,
        "path_template": sendsms_path_template(token=token, receiver_port=receiver_port),
    }


class DlrReceiver(Receiver):
    """The http bench's receiver, counting ``dlr-url`` callbacks: ``GET /dlr?id=<n>&d=<value>``."""

    def __init__(self) -> None:
        super().__init__()
        self.reset()

    def reset(self) -> None:
        """Forget the previous run's callbacks."""
        self.callbacks = 0  # GETs received, repeats included
        self.seen: set[tuple[bytes | None, bytes | None]] = set()
        self.finals: dict[bytes | None, bytes | None] = {}  # message → its first report value
        self.values: dict[str, int] = {}
        self.first_at: float | None = None
        self.last_at = 0.0  # time.monotonic() of the last new message

    def take_head(self, head: bytes) -> None:
        if not head.startswith(b"GET "):
            return
        query = head[4 : head.find(b" ", 4)].partition(b"?")[2]
        params = dict(pair.partition(b"=")[::2] for pair in query.split(b"&"))
        message, value = params.get(b"id"), params.get(b"d")
        self.callbacks += 1
        if (message, value) in self.seen:
            return
        self.seen.add((message, value))
        name = DLR_VALUES.get(value or b"", f"d={value!r}")
        self.values[name] = self.values.get(name, 0) + 1
        if message not in self.finals:
            self.finals[message] = value
            self.last_at = time.monotonic()
            if self.first_at is None:
                self.first_at = self.last_at

    async def settle(self, target: int, *, first_wait: float, stall_s: float) -> None:
        """Until ``target`` messages had a callback, or none came for ``first_wait`` s (before the
        first) / nothing new for ``stall_s`` s (after it)."""
        seen, changed = -1, time.monotonic()
        while len(self.finals) < target:
            now = time.monotonic()
            if len(self.finals) != seen:
                seen, changed = len(self.finals), now
            elif now - changed > (stall_s if seen else first_wait):
                return
            await asyncio.sleep(0.05)


# --- Kannel ------------------------------------------------------------------------------------


def kannel_installed() -> bool:
    return os.access(BEARERBOX, os.X_OK) and os.access(SMSBOX, os.X_OK)


async def ensure_kannel(timeout: float = 900.0) -> None:
    """Run bench/kannel/install.sh when bearerbox or smsbox is missing."""
    if kannel_installed():
        return
    proc = await asyncio.create_subprocess_exec(
        "bash", str(INSTALL), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0 or not kannel_installed():
        raise RuntimeError(f"bench/kannel/install.sh failed (exit {proc.returncode}):\n{out.decode(errors='replace')[-2000:]}")


def kannel_config(folder: Path, *, sim_port: int, token: str) -> dict[str, Any]:
    """Write ``folder/kannel.conf`` from the template; → its values (ports, admin password, path)."""
    values: dict[str, Any] = {
        "admin_port": free_port(), "smsbox_port": free_port(), "sendsms_port": free_port(),
        "admin_password": secrets.token_hex(8), "folder": str(folder), "log_level": LOG_LEVEL,
        "smsc_id": CARRIER, "smsc_port": sim_port, "system_id": SYSTEM_ID, "smpp_password": SMPP_PASSWORD,
        "system_type": "VMA", "window": WINDOW, "username": USERNAME, "password": token, "max_pending_requests": 512,
    }
    path = folder / "kannel.conf"
    path.write_text(string.Template(TEMPLATE.read_text(encoding="utf-8")).substitute(values), encoding="utf-8")
    return {**values, "path": path}


async def _kannel_status(conf: dict[str, Any]) -> bytes | None:
    """bearerbox's ``/status.txt``, or None while it does not answer."""
    try:
        conn = await asyncio.wait_for(RawClient.connect("127.0.0.1", conf["admin_port"]), 2)
    except (OSError, TimeoutError):
        return None
    try:
        raw = build_request("127.0.0.1", f"/status.txt?password={conf['admin_password']}", "", b"", "GET")
        status, _head, body = await asyncio.wait_for(conn.request(raw), 5)
        return body if status == 200 else None
    except (OSError, TimeoutError):
        return None
    finally:
        if conn.transport is not None:
            conn.transport.close()


def _tail(*paths: Path) -> str:
    return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-1500:]}" for p in paths if p.exists())


async def _until(ready: Any, proc: asyncio.subprocess.Process, what: str, logs: list[Path], timeout: float) -> None:
    """Poll ``await ready()`` until true; RuntimeError (with the logs' tails) if ``proc`` exits or the time is up."""
    deadline = time.monotonic() + timeout
    while not await ready():
        if proc.returncode is not None or time.monotonic() > deadline:
            state = f"exited {proc.returncode}" if proc.returncode is not None else f"not ready after {timeout:.0f} s"
            raise RuntimeError(f"{what}: {state}\n{_tail(*logs)}")
        await asyncio.sleep(0.05)


async def _start_kannel(folder: Path, conf: dict[str, Any], procs: list[tuple[str, asyncio.subprocess.Process]]) -> None:
    """bearerbox, until its SMSC link is online; then smsbox, until it is connected and sendsms answers."""
    logs = [folder / "bearerbox.out", folder / "bearerbox.log", folder / "smsbox.out", folder / "smsbox.log"]
    bearerbox = await _spawn([str(BEARERBOX), "-v", "3", str(conf["path"])], folder / "bearerbox.out", folder)
    procs.append(("bearerbox", bearerbox))

    async def smsc_online() -> bool:
        status = await _kannel_status(conf)
        return status is not None and re.search(rb"SMSC connections:\s*\n\s*\S+\s.*\(online", status) is not None

    await _until(smsc_online, bearerbox, "Kannel's bearerbox (SMSC link)", logs, START_TIMEOUT)
    smsbox = await _spawn([str(SMSBOX), "-v", "3", str(conf["path"])], folder / "smsbox.out", folder)
    procs.append(("smsbox", smsbox))

    async def sendsms_up() -> bool:
        status = await _kannel_status(conf)
        if status is None or b"smsbox:(" not in status:
            return False
        try:
            _r, writer = await asyncio.open_connection("127.0.0.1", conf["sendsms_port"])
        except OSError:
            return False
        writer.close()
        return True

    await _until(sendsms_up, smsbox, "Kannel's smsbox", logs, START_TIMEOUT)


def _kannel_summary(status: bytes | None) -> dict[str, Any]:
    """The version and the SMS/DLR counter lines of bearerbox's status page."""
    if not status:
        return {}
    text = status.decode(errors="replace")
    version = re.search(r"Kannel bearerbox version `([^']+)'", text)
    lines = [line.strip() for line in text.splitlines() if line.startswith(("SMS:", "DLR:")) or "SMPP:" in line]
    return {"version": version.group(1) if version else None, "status": lines}


# --- denpo ---------------------------------------------------------------------------------------


def denpo_config(folder: Path, *, sim_port: int, token: str, receiver_port: int, binds: int = 1) -> Path:
    """The http bench's config (demo account opened up, ``token``), then: docomo only, on the bench's
    simulator with ``binds`` transceivers of window 100; no simulators of its own; 090 numbers looked
    up as docomo; no JSON result notifications (the dlr-url callback is the one per message)."""
    path = write_config(folder, token=token, receiver_port=receiver_port)
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data.pop("simulators", None)
    demo = data["accounts"]["demo"]
    demo.pop("result_url", None)
    demo.pop("notify_batch", None)
    data["carriers"] = {
        CARRIER: {
            "endpoints": [{"host": "127.0.0.1", "port": sim_port, "system_id": SYSTEM_ID, "password": SMPP_PASSWORD}],
            "binds": binds,
            "window": WINDOW,
        }
    }
    data["lookup"] = {"prefix_fallback": True, "prefixes": {"+8190": CARRIER}}
    path.write_text(_toml(data), encoding="utf-8")
    return path


# --- processes -----------------------------------------------------------------------------------


async def _spawn(argv: list[str], out: Path, cwd: Path) -> asyncio.subprocess.Process:
    with out.open("ab") as fh:
        return await asyncio.create_subprocess_exec(*argv, stdout=fh, stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL, cwd=str(cwd))


async def _start_sim(folder: Path, procs: list[tuple[str, asyncio.subprocess.Process]]) -> int:
    """``denpo sim`` with SIM_OPTIONS (the same for both sides); → its SMPP port."""
    with (folder / "sim.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "engine", "sim", *SIM_OPTIONS,
            stdout=asyncio.subprocess.PIPE, stderr=log, stdin=asyncio.subprocess.DEVNULL, cwd=str(ROOT),
        )
    procs.append(("sim", proc))
    assert proc.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT) or b"{}")
    except (TimeoutError, ValueError):
        ready = {}
    if ready.get("event") != "ready":
        raise RuntimeError(f"denpo sim did not start\n{_tail(folder / 'sim.log')}")
    return int(ready["port"])


async def _end(name: str, proc: asyncio.subprocess.Process, grace: float = 15.0) -> dict[str, Any]:
    """SIGTERM by PID, SIGKILL after ``grace`` s; the simulator's ``stopped`` counters, if it printed them."""
    if proc.returncode is None:
        try:
            proc.send_signal(signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    stats: dict[str, Any] = {}
    if name == "sim" and proc.stdout is not None:
        try:
            for line in (await asyncio.wait_for(proc.stdout.read(), 5)).splitlines():
                if line.startswith(b"{"):
                    stats = json.loads(line)
        except (TimeoutError, ValueError):
            pass
    return stats


async def _end_all(procs: list[tuple[str, asyncio.subprocess.Process]]) -> dict[str, Any]:
    """End every process, the last started first (the gateway before its simulator); never raises."""
    sim: dict[str, Any] = {}
    for name, proc in reversed(procs):
        try:
            stats = await asyncio.shield(_end(name, proc))
        except BaseException:  # noqa: BLE001 - cancelled meanwhile: at least no process is left
            if proc.returncode is None:
                proc.kill()
            continue
        if name == "sim":
            sim = stats
    return sim


# --- one run ---------------------------------------------------------------------------------------

SIM_COUNTERS = ("submit_sm", "accepted", "throttled", "queue_full", "rejected", "receipts_sent", "receipts_acked", "deliver_requeued", "connections")


async def _one_run(
    side: str, folder: Path, receiver: DlrReceiver, *, token: str, count: int, concurrency: int,
    denpo_binds: int, stall_s: float, no_callback_s: float,
) -> dict[str, Any]:
    folder.mkdir(parents=True)
    receiver.reset()
    procs: list[tuple[str, asyncio.subprocess.Process]] = []
    summary: dict[str, Any] = {}
    try:
        sim_port = await _start_sim(folder, procs)
        if side == "kannel":
            conf = kannel_config(folder, sim_port=sim_port, token=token)
            await _start_kannel(folder, conf, procs)
            port = conf["sendsms_port"]
        else:
            config = denpo_config(folder, sim_port=sim_port, token=token, receiver_port=receiver.port, binds=denpo_binds)
            serve, ready = await _start_serve(config, folder)
            procs.append(("serve", serve))
            await _wait_for_binds(ready["http"], token, path=f"/readyz?carrier={CARRIER}")
            port = int(ready["http"].rsplit(":", 1)[1])
        before = {name: process_usage(p.pid) for name, p in procs}
        me_before = self_usage()
        spec = client_spec(port, token=token, receiver_port=receiver.port, count=count, concurrency=concurrency)
        client = await run_client(spec, max(120.0, count / 200))
        accepted = client["accepted"]
        await receiver.settle(accepted, first_wait=no_callback_s, stall_s=stall_s)
        after = {name: process_usage(p.pid) for name, p in procs}
        me_after = self_usage()
        if side == "kannel":
            summary = _kannel_summary(await _kannel_status(conf))
    finally:
        sim_stats = await _end_all(procs)

    processes = {
        name: {"rss_mb": after[name]["rss_mb"], "cpu_s": round(after[name]["cpu_s"] - before[name]["cpu_s"], 2)} for name in after
    }
    processes["client"] = client["usage"]
    processes["receiver"] = {"rss_mb": me_after["rss_mb"], "cpu_s": round(me_after["cpu_s"] - me_before["cpu_s"], 2)}
    start = client["start_monotonic"]
    final = len(receiver.finals)
    seconds = (receiver.last_at if final else start + client["accept_seconds"]) - start
    gateway = ("bearerbox", "smsbox") if side == "kannel" else ("serve",)
    gateway_cpu = sum(processes[name]["cpu_s"] for name in gateway)
    figures: dict[str, Any] = {
        "side": side,
        "accepted": accepted,
        "rejected": client["rejected"],
        "retries": client["retries"],
        "http_statuses": client["http_statuses"],
        "final": final,
        "lost": accepted - final,
        "callbacks": receiver.callbacks,
        "callback_repeats": receiver.callbacks - len(receiver.seen),
        "callback_values": receiver.values,
        "seconds": round(seconds, 3),
        "per_s": round(final / seconds) if final and seconds > 0 else None,
        "accept_seconds": round(client["accept_seconds"], 3),
        "accepted_per_s": round(accepted / client["accept_seconds"]) if client["accept_seconds"] > 0 else None,
        "accept_latency_ms": client["accept_latency_ms"],
        "first_callback_s": round(receiver.first_at - start, 3) if receiver.first_at is not None else None,
        "gateway_cpu_us_per_message": round(1e6 * gateway_cpu / final, 1) if final else None,
        "processes": processes,
        "sim": {k: sim_stats[k] for k in SIM_COUNTERS if k in sim_stats},
    }
    if summary:
        figures["kannel"] = summary
    return figures


# --- the bench ---------------------------------------------------------------------------------------


async def run(
    *,
    count: int = 20_000,
    pairs: int = 3,
    concurrency: int | None = None,
    denpo_binds: int = 1,
    stall_s: float = 30.0,
    no_callback_s: float = 15.0,
) -> dict[str, Any]:
    """Kannel, denpo, Kannel, denpo … ``pairs`` times; the figures of ``denpo bench kannel``."""
    if count < 1 or pairs < 1:
        raise ValueError("count and pairs: at least 1")
    concurrency = concurrency or 50
    await ensure_kannel()
    folder = Path(tempfile.mkdtemp(prefix="denpo-kannel-bench-"))
    token = secrets.token_urlsafe(32)
    receiver = await DlrReceiver().start()
    runs: list[dict[str, Any]] = []
    ok = False
    try:
        for pair in range(pairs):
            for side in ("kannel", "denpo"):
                figures = await _one_run(
                    side, folder / f"{pair + 1}-{side}", receiver, token=token, count=count, concurrency=concurrency,
                    denpo_binds=denpo_binds, stall_s=stall_s, no_callback_s=no_callback_s,
                )
                runs.append({"pair": pair + 1, **figures})
        ok = True
    finally:
        await receiver.close()
        if ok:
            shutil.rmtree(folder, ignore_errors=True)
        else:
            print(f"denpo bench kannel: failed; logs kept in {folder}", file=sys.stderr)

    def of(side: str, key: str) -> list[Any]:
        return [r[key] for r in runs if r["side"] == side]

    kannel, denpo = of("kannel", "per_s"), of("denpo", "per_s")
    ratios = [round(d / k, 3) if d and k else None for k, d in zip(kannel, denpo)]
    known = [r for r in ratios if r is not None]
    cpu: dict[str, list[float]] = {}
    rss: dict[str, float] = {}
    for r in runs:
        for name, use in r["processes"].items():
            key = f"{r['side']}.{name}"
            cpu.setdefault(key, []).append(use["cpu_s"])
            rss[key] = max(rss.get(key, 0.0), use["rss_mb"])
    version = next((r["kannel"].get("version") for r in runs if r.get("kannel")), None)
    return {
        "count": count,
        "pairs": pairs,
        "concurrency": concurrency,
        "kannel_per_s": kannel,
        "denpo_per_s": denpo,
        "ratios": ratios,
        "ratio_median": round(statistics.median(known), 3) if known else None,
        "kannel_per_s_median": _median(kannel),
        "denpo_per_s_median": _median(denpo),
        "kannel_accepted_per_s": of("kannel", "accepted_per_s"),
        "denpo_accepted_per_s": of("denpo", "accepted_per_s"),
        "kannel_accept_p50_ms": [r["accept_latency_ms"]["p50"] for r in runs if r["side"] == "kannel"],
        "denpo_accept_p50_ms": [r["accept_latency_ms"]["p50"] for r in runs if r["side"] == "denpo"],
        "kannel_accept_p99_ms": [r["accept_latency_ms"]["p99"] for r in runs if r["side"] == "kannel"],
        "denpo_accept_p99_ms": [r["accept_latency_ms"]["p99"] for r in runs if r["side"] == "denpo"],
        "kannel_lost": of("kannel", "lost"),
        "denpo_lost": of("denpo", "lost"),
        "kannel_cpu_us_per_message": of("kannel", "gateway_cpu_us_per_message"),
        "denpo_cpu_us_per_message": of("denpo", "gateway_cpu_us_per_message"),
        "rss_mb": rss,
        "cpu_s": cpu,
        "kannel_version": version,
        "setup": {
            "smpp": f"one transceiver each, window {WINDOW} (Kannel max-pending-submits; denpo binds={denpo_binds})",
            "simulator": "denpo sim " + " ".join(SIM_OPTIONS),
            "request": f"GET /cgi-bin/sendsms, identical bytes both sides, dlr-mask={DLR_MASK}, coding=2 (UCS-2, one part)",
            "callbacks": "dlr-url GET per message to the same receiver; denpo without JSON result notifications",
            "kannel": f"bearerbox/smsbox -v 3, log-level {LOG_LEVEL}, dlr-storage internal, no store, no access log, sms-resend-freq 1",
        },
        "runs": runs,
    }


def _median(values: list[Any]) -> float | None:
    known = [v for v in values if v is not None]
    return round(statistics.median(known)) if known else None
