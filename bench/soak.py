"""Soak with faults (issue 8): sustained load while things break on a schedule, then reconciliation.

    denpo bench soak --duration SECONDS [--rate R]

Processes, each ended by its PID:

* ``denpo serve`` on a config written to a temporary folder (``write_config`` of
  :mod:`bench.http_bench`: the ``demo`` account's rate limit lifted, result
  notifications to the receiver, 100 per POST), with no simulators of its own:
  its carriers point at the four below.  A fixed HTTP port, so a restarted
  engine is where the client left it.  ``engine.receipt_timeout_s`` is 30 s
  (a killed simulator never sends the receipts it owed: those messages end
  ``indefinite`` at the timeout) and notification retries are capped at 5 s;
* one ``denpo sim`` per carrier, run by this bench (not by serve) so it can kill
  and restart them on the same port.  Receipts after 200 ms;
* the **load client** (``python -m bench.soak client``, the raw HTTP/1.1 client of
  :mod:`bench.http_bench`): ``--rate`` single ``POST /v1/messages`` per second
  (default 1,000) for ``--duration`` seconds, all four carriers round robin, each
  message to a number of its own, each with a ``client_ref``.  A request whose
  connection broke (the engine was killed) is sent again with the same
  ``client_ref`` once the engine is back — never a second message; the answer
  says ``duplicate`` when the first one had been stored.  One still unanswered
  when the client gives up is *unknown* (not lost; if the engine stored it, it
  must be final all the same);
* the notification **receiver** in this process (``Receiver``: de-duplicates by
  ``event_id``, keeps each message's notified statuses).

The schedule (:func:`schedule`, times as shares of ``--duration``): warm-up;
docomo's simulator killed at 12 % and restarted 2 % later; SoftBank's throttled
to a fifth of its share of the load (ESME_RTHROTTLED above it) from 20 % to 35 %;
the receiver down (not listening, connections dropped) at 40 % for 11 % (5–60 s);
the engine ``kill -9``\\ ed at 60 % and restarted at once on the same store; au's
simulator killed at 75 % and restarted; load ends at 100 %.

A simulator is killed with SIGTERM, on which ``denpo sim`` drops every
connection at once, unanswered, and forgets the receipts it owed — a crash as
the engine sees it — but first writes its counters and every destination
number's submit times to a stats file (set through its control endpoint's
``/knobs`` just before).  A SIGKILL would lose exactly the submits that matter:
the ones in flight at the kill.  Counts are kept per simulator lifetime.

Reconciliation, after the load (bounded wait: every stored message final and
no notification pending, then serve is stopped with SIGTERM and its SQLite store
read):

* ``lost`` = accepted (answered 202 with an id) but not in the store, or not
  final; a stored message never answered must be final too (``stuck``);
  ``indefinite`` is final (a late receipt may still change it, SPEC);
* ``duplicates`` = submits the simulators saw for a number beyond the first
  (every message has a number of its own), ≤ ``duplicate_bound`` = the sum over
  crashes of the in-flight window then (binds × window of the killed
  simulator's carrier; of every carrier for the engine);
* ``unnotified`` = stored messages whose final status was not notified (nor is
  waiting in the outbox);
* engine RSS per lifetime: from the first sample after the warm-up (a tenth of
  the duration, at least 10 s, from that lifetime's start) to the lifetime's last
  sample, growth within 10 %.  (The engine remembers a finished message's carrier
  ids for its receipt linger, ~250 B each — 600 s by default, at most 100,000 per
  carrier — so RSS climbs until that is full; the soak sets ``receipt_linger_s``
  to 30 s so every lifetime reaches that steady state after its warm-up, and
  ``notify_buffer`` to 2,000, so while the receiver is down the notifications
  beyond that wait in the store's outbox — the spill path — rather than in memory,
  and ``working_set`` to 1,000, so the backlog of the throttled carrier beyond that
  waits in the store's queue.  Those two buffers filling is what an engine's RSS
  grows by under these faults: ~1 KB per buffered notification, ~1.7 KB per
  queued message — with 10,000 and 5,000 they took a lifetime 20.7 % up (95 →
  115 MB, bench/RESULTS.md).  With the defaults (100,000 and 50,000 per carrier)
  memory stays bounded too, but those buffers are meant to fill under such faults.)

Any failed check is named in ``failures``; ``denpo bench soak`` exits 1 unless
``lost`` is 0 and ``failures`` is empty.  A human table goes to stderr; the
folder (serve's log, the store, the simulators' stats) is kept when a check
failed (``kept``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import math
import os
import secrets
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from bench._harness import process_usage, self_usage
from bench.http_bench import (
    ROOT,
    RawClient,
    Receiver,
    _header,
    _start_serve,
    _stop,
    _wait_for_binds,
    build_request,
    client_main,
    free_port,
    message_dict,
    percentiles,
    write_config,
)
from bench.sim_bench import start_simulator
from engine.model import FINAL
from engine.ops.config import CARRIERS, load_config

__all__ = ["Step", "engine_rss", "reconcile", "run", "schedule", "smsc_counts", "table"]

DEFAULT_RATE = 1000.0
RECEIPT_TIMEOUT_S = 30.0
RECEIPT_LINGER_S = 30.0  # (default 600 s) so each engine lifetime reaches its steady state within the soak
WORKING_SET = 1_000  # (default 50,000) queued messages per carrier in memory; a throttled carrier's backlog beyond it waits in the store
NOTIFY_BUFFER = 2_000  # (default 100,000) notifications held in memory; while the receiver is down the rest wait in the store
RSS_TOLERANCE = 0.10
SIM_ARGS = ("--system-id", "denpo", "--password", "denpo", "--dlr-delay-ms", "200", "--track-numbers", "100000000")
FINAL_NAMES = tuple(sorted(str(s) for s in FINAL))


# --- the schedule ------------------------------------------------------------------------


class Step(NamedTuple):
    at: float  # seconds from the start of the load
    action: str  # kill_sim, restart_sim, throttle, unthrottle, receiver_down, receiver_up, kill_engine
    target: str = ""  # the carrier, for the simulator steps


def warmup_s(duration: float) -> float:
    """An engine lifetime's warm-up, before its RSS baseline (the first faults may come in it on short runs)."""
    return max(10.0, 0.1 * duration)


def schedule(duration: float) -> list[Step]:
    """The faults for a run of ``duration`` seconds, in order (see the module's docstring)."""
    d = duration
    outage = max(2.0, 0.02 * d)
    receiver_down = min(60.0, max(5.0, 0.11 * d))
    steps = [
        Step(0.12 * d, "kill_sim", "docomo"),
        Step(0.12 * d + outage, "restart_sim", "docomo"),
        Step(0.20 * d, "throttle", "softbank"),
        Step(0.35 * d, "unthrottle", "softbank"),
        Step(0.40 * d, "receiver_down"),
        Step(0.40 * d + receiver_down, "receiver_up"),
        Step(0.60 * d, "kill_engine"),  # restarted at once: its start-up is the outage
        Step(0.75 * d, "kill_sim", "au"),
        Step(0.75 * d + outage, "restart_sim", "au"),
    ]
    return sorted(steps, key=lambda s: s.at)


# --- reconciliation (pure: crafted inputs in tests/test_soak.py) --------------------------


def smsc_counts(lifetimes: Iterable[Mapping[str, Any]]) -> collections.Counter[str]:
    """Submits seen per destination number, over the simulators' lifetimes (their stats with ``submit_times``)."""
    counts: collections.Counter[str] = collections.Counter()
    for stats in lifetimes:
        for number, times in stats.get("submit_times", {}).items():
            counts[number] += len(times)
    return counts


def engine_rss(samples: list[tuple[float, float]], warmup: float) -> dict[str, Any]:
    """One engine lifetime's RSS samples (seconds since it started, MB) → baseline after the warm-up, end, max, growth."""
    after = [(t, mb) for t, mb in samples if t >= warmup and not math.isnan(mb)]
    if not after:
        return {"baseline_mb": None, "end_mb": samples[-1][1] if samples else None, "max_mb": None, "growth_pct": None, "samples": len(samples)}
    base, end = after[0][1], after[-1][1]
    return {
        "baseline_mb": base,
        "end_mb": end,
        "max_mb": max(mb for _t, mb in after),
        "growth_pct": round(100 * (end - base) / base, 1) if base else None,
        "samples": len(samples),
        "seconds": round(after[-1][0] - after[0][0], 1),
    }


def reconcile(
    *,
    accepted: Collection[str],
    stored: Mapping[str, str],
    notified: Mapping[str, str],
    renotified: Mapping[str, Collection[str]] = {},
    outbox: Collection[str] = (),
    smsc: Mapping[str, int],
    crashes: list[tuple[str, int]],
    rss: Mapping[str, list[tuple[float, float]]],
    warmup: float,
) -> dict[str, Any]:
    """Compare what the client was told, what the store holds, what was notified and what the SMSCs saw.

    ``accepted``: ids answered 202; ``stored``: id → status in the store at the end;
    ``notified``: id → status of its first notification, ``renotified``: its other
    notified statuses; ``outbox``: ids with a notification still waiting (durable, not
    lost); ``smsc``: submits seen per number; ``crashes``: (what, in-flight window);
    ``rss``: engine lifetime → [(seconds since start, MB)].
    """
    final = set(FINAL_NAMES)
    missing = [m for m in accepted if m not in stored]
    stuck = sorted(m for m, status in stored.items() if status not in final)
    accepted_set = accepted if isinstance(accepted, (set, frozenset, dict)) else set(accepted)
    stuck_accepted = [m for m in stuck if m in accepted_set]
    unnotified = []
    for m, status in stored.items():
        if status in final and notified.get(m) != status and status not in renotified.get(m, ()) and m not in outbox:
            unnotified.append(m)
    duplicates = sum(n - 1 for n in smsc.values() if n > 1)
    bound = sum(window for _what, window in crashes)
    lifetimes = {name: engine_rss(samples, warmup) for name, samples in rss.items()}
    statuses = collections.Counter(stored.values())
    failures = []
    if not accepted:
        failures.append("nothing_accepted")
    if missing or stuck_accepted:
        failures.append("lost")
    if len(stuck) > len(stuck_accepted):
        failures.append("stuck_unanswered")
    if unnotified:
        failures.append("unnotified")
    if duplicates > bound:
        failures.append("duplicates_over_bound")
    for name, life in lifetimes.items():
        if life["growth_pct"] is not None and life["growth_pct"] > 100 * RSS_TOLERANCE:
            failures.append(f"rss_growth_{name}")
    first = next(iter(lifetimes.values()), None)
    last = list(lifetimes.values())[-1] if lifetimes else None
    return {
        "accepted": len(accepted),
        "stored": len(stored),
        "stored_unanswered": sum(1 for m in stored if m not in accepted_set),
        "final": sum(1 for m in accepted if stored.get(m) in final),
        "lost": len(missing) + len(stuck_accepted),
        "missing": len(missing),
        "stuck": len(stuck),
        "lost_ids": sorted(missing)[:20] + stuck_accepted[:20],
        "stuck_statuses": dict(collections.Counter(stored[m] for m in stuck)),
        "final_statuses": {k: v for k, v in sorted(statuses.items()) if k in final},
        "notified": sum(1 for m in stored if m in notified),
        "notify_pending": len(outbox),
        "unnotified": len(unnotified),
        "unnotified_ids": sorted(unnotified)[:20],
        "late_status_changes": len(renotified),
        "numbers_at_smsc": len(smsc),
        "duplicates": duplicates,
        "duplicate_bound": bound,
        "crashes": [f"{what} (window {window})" for what, window in crashes],
        "engine_rss": lifetimes,
        "rss_start_mb": first["baseline_mb"] if first else None,
        "rss_end_mb": last["end_mb"] if last else None,
        "failures": failures,
    }


def table(figures: Mapping[str, Any]) -> str:
    """The reconciliation as a table for people (stderr)."""
    rows = [
        ("accepted (202 with an id)", figures.get("accepted")),
        ("unknown (never answered)", figures.get("unknown")),
        ("re-sent after a broken connection / found stored", f"{figures.get('resent')} / {figures.get('resent_stored')}"),
        ("stored (of which never answered)", f"{figures.get('stored')} ({figures.get('stored_unanswered')})"),
        ("final", figures.get("final")),
        ("final statuses", ", ".join(f"{k} {v}" for k, v in (figures.get("final_statuses") or {}).items())),
        ("late status changes (notified again)", figures.get("late_status_changes")),
        ("lost (missing / not final)", f"{figures.get('lost')} ({figures.get('missing')} / {figures.get('stuck')})"),
        ("notified / not notified", f"{figures.get('notified')} / {figures.get('unnotified')}"),
        ("seen twice at an SMSC / bound", f"{figures.get('duplicates')} / {figures.get('duplicate_bound')}"),
        ("crashes", "; ".join(figures.get("crashes") or [])),
        ("au pacing violations", figures.get("au_pacing_violations")),
        ("submits throttled by the SMSC", figures.get("smsc_throttled")),
    ]
    for name, life in (figures.get("engine_rss") or {}).items():
        rows.append(
            (f"engine RSS {name}: after warm-up → end (max) MB", f"{life['baseline_mb']} → {life['end_mb']} ({life['max_mb']}), {life['growth_pct']} %")
        )
    rows.append(("faults", ", ".join(f"{k} {figures.get(k)}" for k in ("sim_kills", "sim_throttles", "receiver_outages", "engine_kills"))))
    rows.append(("failures", ", ".join(figures.get("failures") or []) or "none"))
    width = max(len(r[0]) for r in rows)
    return "\n".join(f"  {label.ljust(width)}  {value}" for label, value in rows)


# --- the load client (its own process) ----------------------------------------------------


class _Reply(msgspec.Struct):
    id: str | None = None
    duplicate: bool = False


_decode_reply = msgspec.json.Decoder(_Reply).decode


async def _client(spec: dict[str, Any]) -> dict[str, Any]:
    """``rate`` single POSTs a second for ``duration`` s; connection breaks re-sent (same client_ref) until ``give_up_s``."""
    host, port, token = spec["host"], spec["port"], spec["token"]
    rate, duration = spec["rate"], spec["duration"]
    authority = f"{host}:{port}"
    encode = msgspec.json.Encoder().encode
    perf = time.perf_counter
    counts = collections.Counter()  # accepted, rejected, resent, resent_stored, unknown
    statuses: collections.Counter[int] = collections.Counter()
    latencies: list[float] = []
    state = {"next": 0, "slip": 0.0}
    start = perf()
    stop_at = start + duration
    give_up = stop_at + spec["give_up_s"]

    async def connect() -> RawClient | None:
        while perf() < give_up:
            try:
                return await RawClient.connect(host, port)
            except OSError:
                await asyncio.sleep(0.05)  # the engine is restarting
        return None

    async def worker() -> None:
        conn = await connect()
        while conn is not None and perf() < stop_at:
            i = state["next"]
            state["next"] = i + 1
            due = start + state["slip"] + i / rate
            now = perf()
            if due > now:
                await asyncio.sleep(due - now)
            elif now - due > 1.0:  # fell behind (the engine was down): offer no more than a second's backlog
                state["slip"] += now - due - 1.0
            message = message_dict(i)
            message["client_ref"] = f"soak-{i}"
            raw = build_request(authority, "/v1/messages", token, encode(message))
            broke = False
            while True:
                t0 = perf()
                try:
                    status, head, body = await asyncio.wait_for(conn.request(raw), 30)
                except (ConnectionError, OSError, TimeoutError):
                    if conn.transport is not None:
                        conn.transport.abort()
                    counts["resent"] += not broke
                    broke = True
                    conn = await connect()
                    if conn is None:
                        counts["unknown"] += 1
                        return
                    continue
                statuses[status] += 1
                if status in (429, 503):
                    retry = _header(head, b"retry-after")
                    await asyncio.sleep(min(1.0, float(retry)) if retry else 0.1)
                    continue
                break
            if not broke:
                latencies.append(perf() - t0)
            if status == 202:
                reply = _decode_reply(body)
                counts["accepted"] += 1
                counts["resent_stored"] += broke and reply.duplicate
                ids.write(f"{i}\t{reply.id}\n")
            else:
                counts["rejected"] += 1
        if conn is not None and conn.transport is not None:
            conn.transport.close()

    print(json.dumps({"event": "started"}), flush=True)
    with open(spec["ids_path"], "w", encoding="ascii") as ids:  # noqa: ASYNC230 - buffered writes, a line per 202
        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    seconds = perf() - start
    return {
        "event": "done",
        **{k: counts[k] for k in ("accepted", "rejected", "resent", "resent_stored", "unknown")},
        "offered": state["next"],
        "seconds": round(seconds, 3),
        "accepted_per_s": round(counts["accepted"] / min(seconds, duration)) if seconds else None,
        "http_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "accept_latency_ms": percentiles(latencies),
    }


# --- the processes the bench owns --------------------------------------------------------


async def _control(port: int, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One request to a simulator's control endpoint (GET, or POST with a JSON body)."""
    conn = await RawClient.connect("127.0.0.1", port)
    try:
        raw = build_request(f"127.0.0.1:{port}", path, "-", json.dumps(body).encode(), "POST") if body is not None else build_request(
            f"127.0.0.1:{port}", path, "-", b"", "GET"
        )
        status, _head, reply = await asyncio.wait_for(conn.request(raw), 30)
    finally:
        if conn.transport is not None:
            conn.transport.close()
    if status != 200:
        raise RuntimeError(f"{path}: {status} {reply[:200]!r}")
    return json.loads(reply)


class _Sim:
    """One carrier's ``denpo sim``, killed and restarted on the same port; its counters per lifetime."""

    def __init__(self, carrier: str, folder: Path) -> None:
        self.carrier = carrier
        self.folder = folder
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.control_port = 0
        self.lives = 0
        self.stats: list[dict[str, Any]] = []  # one per ended lifetime

    @property
    def name(self) -> str:
        return f"sim_{self.carrier}_{self.lives}"

    async def start(self) -> None:
        self.proc, ready = await start_simulator(self.carrier, "--port", str(self.port), *SIM_ARGS)
        self.control_port = ready["control_port"]
        self.lives += 1

    async def knobs(self, **knobs: Any) -> None:
        await _control(self.control_port, "/knobs", knobs)

    async def kill(self) -> None:
        """SIGTERM: every connection dropped unanswered, owed receipts gone — after the stats file is written."""
        assert self.proc is not None
        path = self.folder / f"{self.name}.json"
        await self.knobs(stats_file=str(path))
        self.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(self.proc.wait(), 60)
        self.proc = None
        stats = json.loads(path.read_text())
        stats["lifetime"] = self.name
        self.stats.append(stats)

    def end(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()


class _Soak:
    """The run's moving parts and what happened to them."""

    def __init__(self, duration: float, rate: float) -> None:
        self.duration = duration
        self.rate = rate
        self.folder = Path(tempfile.mkdtemp(prefix="denpo-soak-"))
        self.token = secrets.token_urlsafe(32)
        self.receiver = Receiver()
        self.sims = {c: _Sim(c, self.folder) for c in CARRIERS}
        self.http_port = free_port()
        self.serve: asyncio.subprocess.Process | None = None
        self.serve_lives = 0
        self.crashes: list[tuple[str, int]] = []
        self.windows: dict[str, int] = {}
        self.samples: dict[str, list[tuple[float, float, float]]] = {}  # process → [(s since start, rss MB, cpu s)]
        self.started: dict[str, tuple[int, float]] = {}  # live process → (pid, monotonic start)
        self.faults = collections.Counter()
        self.log: list[dict[str, Any]] = []
        self.config: Path | None = None

    @property
    def store(self) -> Path:
        return self.folder / "var" / "denpo.db"

    def track(self, name: str, pid: int) -> None:
        self.started[name] = (pid, time.monotonic())
        self.samples[name] = []

    async def sample_forever(self) -> None:
        while True:
            now = time.monotonic()
            for name, (pid, since) in list(self.started.items()):
                usage = process_usage(pid)
                if not math.isnan(usage["rss_mb"]):
                    self.samples[name].append((round(now - since, 1), usage["rss_mb"], usage["cpu_s"]))
            await asyncio.sleep(1.0)

    async def start_serve(self) -> None:
        assert self.config is not None
        self.serve, ready = await _start_serve(self.config, self.folder, http=f"127.0.0.1:{self.http_port}")
        self.serve_lives += 1
        self.track(f"serve_{self.serve_lives}", self.serve.pid)
        await _wait_for_binds(ready["http"], self.token)

    async def start_sim(self, carrier: str) -> None:
        sim = self.sims[carrier]
        await sim.start()
        assert sim.proc is not None
        self.track(sim.name, sim.proc.pid)

    async def kill_sim(self, carrier: str) -> None:
        sim = self.sims[carrier]
        self.started.pop(sim.name, None)
        await sim.kill()

    async def do(self, step: Step) -> None:
        carrier = step.target
        if step.action == "kill_sim":
            await self.kill_sim(carrier)
            self.crashes.append((f"sim {carrier}", self.windows[carrier]))
            self.faults["sim_kills"] += 1
        elif step.action == "restart_sim":
            await self.start_sim(carrier)
        elif step.action == "throttle":
            cap = max(1.0, round(0.2 * self.rate / len(CARRIERS)))
            await self.sims[carrier].knobs(throughput_cap=cap)
            self.faults["sim_throttles"] += 1
        elif step.action == "unthrottle":
            await self.sims[carrier].knobs(throughput_cap=0.0)
        elif step.action == "receiver_down":
            await self.receiver.close()
            self.faults["receiver_outages"] += 1
        elif step.action == "receiver_up":
            await self.receiver.start(port=self.receiver.port)
        elif step.action == "kill_engine":
            assert self.serve is not None
            self.started.pop(f"serve_{self.serve_lives}", None)
            os.kill(self.serve.pid, signal.SIGKILL)
            await self.serve.wait()
            self.crashes.append(("engine", sum(self.windows.values())))
            self.faults["engine_kills"] += 1
            await self.start_serve()
        else:
            raise ValueError(step.action)

    async def run_schedule(self, t0: float) -> None:
        for step in schedule(self.duration):
            delay = t0 + step.at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            began = time.monotonic()
            entry: dict[str, Any] = {"at_s": round(began - t0, 1), "action": step.action, "target": step.target}
            try:
                await self.do(step)
            except Exception as exc:  # noqa: BLE001 - a fault that could not be made is a failed check
                entry["error"] = repr(exc)
            entry["took_s"] = round(time.monotonic() - began, 2)
            self.log.append(entry)
            print(f"soak: {entry}", file=sys.stderr, flush=True)

    def query(self, sql: str, *args: Any) -> list[tuple[Any, ...]]:
        db = sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=30)
        try:
            return db.execute(sql, args).fetchall()
        finally:
            db.close()

    async def settle(self, deadline: float) -> dict[str, int]:
        """Until every stored message is final and no notification waits (or the deadline): → the counts left."""
        marks = ", ".join("?" for _ in FINAL_NAMES)
        left = {"not_final": -1, "notify_pending": -1}
        while time.monotonic() < deadline:
            ((not_final,),) = await asyncio.to_thread(self.query, f"SELECT count(*) FROM messages WHERE status NOT IN ({marks})", *FINAL_NAMES)
            ((pending,),) = await asyncio.to_thread(self.query, "SELECT count(*) FROM outbox WHERE state = 'pending'")
            left = {"not_final": not_final, "notify_pending": pending}
            if not not_final and not pending:
                break
            await asyncio.sleep(0.5)
        return left

    def end_all(self) -> None:
        for sim in self.sims.values():
            sim.end()
        if self.serve is not None and self.serve.returncode is None:
            self.serve.kill()


async def run(*, duration: float = 180.0, rate: float | None = None, concurrency: int = 32) -> dict[str, Any]:
    """``denpo bench soak``: the figures, with ``failures`` naming every check that failed."""
    rate = rate or DEFAULT_RATE
    soak = _Soak(duration, rate)
    sampler: asyncio.Task[None] | None = None
    client_proc: asyncio.subprocess.Process | None = None
    me_before = self_usage()
    try:
        await soak.receiver.start()
        for carrier in CARRIERS:
            await soak.start_sim(carrier)
        soak.config = write_config(
            soak.folder, token=soak.token, receiver_port=soak.receiver.port,
            sim_ports={c: s.port for c, s in soak.sims.items()},
            sections={"engine": {"receipt_timeout_s": RECEIPT_TIMEOUT_S, "receipt_linger_s": RECEIPT_LINGER_S, "notify_buffer": NOTIFY_BUFFER, "working_set": WORKING_SET}, "notify": {"retry_cap_s": 5.0}},
        )
        config = load_config(soak.config)
        soak.windows = {c: s.binds * (s.window or config.smpp.window) for c, s in config.carriers.items()}
        sampler = asyncio.create_task(soak.sample_forever())
        await soak.start_serve()

        ids_path = soak.folder / "accepted.tsv"
        spec = {
            "host": "127.0.0.1", "port": soak.http_port, "token": soak.token, "rate": rate, "duration": duration,
            "concurrency": concurrency, "ids_path": str(ids_path), "give_up_s": 60.0,
        }
        client_proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bench.soak", "client",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=str(ROOT),
        )
        assert client_proc.stdin is not None and client_proc.stdout is not None
        client_proc.stdin.write(json.dumps(spec).encode() + b"\n")
        await client_proc.stdin.drain()
        client_proc.stdin.close()
        started = json.loads(await asyncio.wait_for(client_proc.stdout.readline(), 60))
        assert started.get("event") == "started", started
        t0 = time.monotonic()
        soak.track("client", client_proc.pid)
        faults = asyncio.create_task(soak.run_schedule(t0))
        line = await asyncio.wait_for(client_proc.stdout.readline(), duration + 300)
        await asyncio.wait_for(client_proc.wait(), 30)
        if not line:
            raise RuntimeError(f"the load client failed (exit {client_proc.returncode})")
        client = json.loads(line)
        await faults  # the last steps come before the load ends
        load_end = time.monotonic()

        left = await soak.settle(time.monotonic() + RECEIPT_TIMEOUT_S + 90.0)
        settled_s = time.monotonic() - load_end

        # the last lifetimes end: serve drained (SIGTERM), then each simulator writes its stats
        last_serve = f"serve_{soak.serve_lives}"
        assert soak.serve is not None
        soak.started.pop(last_serve, None)
        await _stop(soak.serve, {})
        for carrier, sim in soak.sims.items():
            if sim.proc is not None:
                await soak.kill_sim(carrier)
        sampler.cancel()
        me_after = self_usage()

        stored = dict(soak.query("SELECT printf('%016x', id), status FROM messages"))
        outbox = {m for (m,) in soak.query("SELECT printf('%016x', message_id) FROM outbox WHERE state = 'pending' AND message_id IS NOT NULL")}
        dead = soak.query("SELECT count(*) FROM outbox WHERE state = 'dead'")[0][0]
        accepted = {}
        for line_ in ids_path.read_text(encoding="ascii").splitlines():
            i, message_id = line_.split("\t")
            accepted[message_id] = int(i)
        lifetimes = [stats for sim in soak.sims.values() for stats in sim.stats]
        smsc = smsc_counts(lifetimes)
        rss = {name: [(t, mb) for t, mb, _cpu in rows] for name, rows in soak.samples.items() if name.startswith("serve_")}
        figures = reconcile(
            accepted=accepted, stored=stored, notified=soak.receiver.messages, renotified=soak.receiver.more_statuses,
            outbox=outbox, smsc=smsc, crashes=soak.crashes, rss=rss, warmup=warmup_s(duration),
        )
    except BaseException:
        print(f"soak: stopped by an error; its folder is kept: {soak.folder}", file=sys.stderr, flush=True)
        raise
    finally:
        if sampler is not None:
            sampler.cancel()
        if client_proc is not None and client_proc.returncode is None:
            client_proc.kill()
            await client_proc.wait()
        soak.end_all()
        await soak.receiver.close()

    processes = {
        name: {"rss_mb": rows[-1][1], "cpu_s": rows[-1][2]} for name, rows in soak.samples.items() if rows and name != "client"
    }
    processes["client"] = client.pop("usage")
    processes["receiver"] = {"rss_mb": me_after["rss_mb"], "cpu_s": round(me_after["cpu_s"] - me_before["cpu_s"], 2)}
    figures.update(
        duration=duration,
        rate=rate,
        concurrency=concurrency,
        unknown=client["unknown"],
        resent=client["resent"],
        resent_stored=client["resent_stored"],
        rejected=client["rejected"],
        offered=client["offered"],
        accepted_per_s=client["accepted_per_s"],
        http_statuses=client["http_statuses"],
        accept_latency_ms=client["accept_latency_ms"],
        notify_dead=dead,
        notify_posts=soak.receiver.posts,
        notify_duplicates=soak.receiver.deliveries - len(soak.receiver.events),
        settled_s=round(settled_s, 1),
        left_at_deadline=left,
        au_pacing_violations=sum(s["violations"] for s in soak.sims["au"].stats),
        smsc_throttled=sum(s["throttled"] for sim in soak.sims.values() for s in sim.stats),
        smsc_submits={s["lifetime"]: s["accepted"] for sim in soak.sims.values() for s in sim.stats},
        **{k: soak.faults[k] for k in ("sim_kills", "sim_throttles", "receiver_outages", "engine_kills")},
        schedule=soak.log,
        processes=processes,
        rss_timeline_mb={name: [mb for t, mb, _cpu in rows if t % 10 < 1] for name, rows in soak.samples.items() if name.startswith("serve_")},
        rss_mb={k: v["rss_mb"] for k, v in processes.items()},
        cpu_s={k: v["cpu_s"] for k, v in processes.items()},
    )
    if client["unknown"] < figures["stored_unanswered"]:
        figures["failures"].append("stored_unanswered_over_unknown")  # a request answered 202 whose id the client never got?
    if any("error" in entry for entry in soak.log) or len(soak.log) != len(schedule(duration)):
        figures["failures"].append("faults_not_made")
    if dead:
        figures["failures"].append("notify_dead")
    print("\nsoak reconciliation\n" + table(figures), file=sys.stderr, flush=True)
    if figures["failures"]:
        figures["kept"] = str(soak.folder)
    else:
        shutil.rmtree(soak.folder, ignore_errors=True)
    return figures


if __name__ == "__main__":
    if sys.argv[1:2] == ["client"]:
        raise SystemExit(client_main(_client))
    raise SystemExit("usage: python -m bench.soak client  (the load client; run the soak with: denpo bench soak)")
