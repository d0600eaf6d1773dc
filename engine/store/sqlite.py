"""The embedded store: SQLite in WAL mode, one writer thread with group commit.

* One writer thread owns the write connection.  Everything queued while it
  was committing goes into the next transaction (at most ``max_batch``
  operations): under load a transaction holds hundreds of messages, when
  idle a single one commits at once — no timer, so a commit waits no longer
  than the previous commit took.
* ``accept`` is awaited (the HTTP 202 / ``engine.submit`` return comes after
  the commit); transitions are queued and committed in the same stream, so
  they are durable a few milliseconds later; :meth:`flush` waits for them.
* Reads run on a second connection in a reader thread (WAL lets readers run
  beside the writer).
* ``synchronous=NORMAL`` (the default): a committed transaction survives the
  process being killed; ``FULL`` also survives power loss, at a cost.

The writer's queue is bounded by the engine's backlog limit, not here.
"""

from __future__ import annotations

import asyncio
from functools import partial
import concurrent.futures
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Sequence
from itertools import chain, repeat
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable

import msgspec

from engine.store.base import IdGenerator, NewMessage, PartRecord, StoredMessage, Update

__all__ = ["SqliteStore"]

log = logging.getLogger("denpo.store")

SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS messages (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    client_ref TEXT,
    carrier TEXT NOT NULL,
    number TEXT NOT NULL,
    sender TEXT NOT NULL,
    text TEXT NOT NULL,
    priority TEXT NOT NULL,
    status TEXT NOT NULL,
    parts INTEGER NOT NULL,
    billing_units INTEGER NOT NULL,
    billable_units INTEGER NOT NULL DEFAULT 0,
    delivered_parts INTEGER NOT NULL DEFAULT 0,
    ref INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    send_at REAL,
    expires_at REAL,
    submitted_at REAL,
    done_at REAL,
    error TEXT,
    carrier_id TEXT,  -- a single-part message's id at the carrier (multi-part: the parts table)
    key TEXT          -- its normalised form, the receipt key
);
CREATE UNIQUE INDEX IF NOT EXISTS messages_client_ref ON messages(account, client_ref) WHERE client_ref IS NOT NULL;
-- the backlog: only messages not yet submitted are indexed (a status index
-- over every transition costs 2-3x per update); messages awaiting receipts
-- are found from the persisted watermark meta.open_from on recovery
CREATE INDEX IF NOT EXISTS messages_backlog ON messages(carrier, priority, account, id)
    WHERE status IN ('accepted', 'queued');
-- parts of multi-part messages only; no index on key: receipts are matched in
-- memory (recovery registers the keys of every message awaiting receipts)
CREATE TABLE IF NOT EXISTS parts (
    message_id INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    carrier TEXT NOT NULL,
    carrier_id TEXT,
    key TEXT,
    state TEXT,
    stat TEXT,
    err TEXT,
    at REAL,
    PRIMARY KEY (message_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS history (
    message_id INTEGER NOT NULL, at REAL NOT NULL, status TEXT NOT NULL, PRIMARY KEY (message_id, at, status)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS pacing (number TEXT PRIMARY KEY, not_before REAL, in_flight INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS suppression (number TEXT PRIMARY KEY, carrier TEXT NOT NULL, reason TEXT NOT NULL, at REAL NOT NULL) WITHOUT ROWID;
-- notifications not yet answered 2xx (written in the transaction of what they
-- report; a sent one is deleted, a dead one kept with state 'dead')
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    kind TEXT NOT NULL,
    message_id INTEGER,
    url TEXT NOT NULL,
    body BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL,
    state TEXT NOT NULL DEFAULT 'pending',
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_dead ON outbox(account, seq) WHERE state = 'dead';
-- a message's own callback (Kannel's dlr-url and dlr-mask), stored with it at accept
CREATE TABLE IF NOT EXISTS callbacks (message_id INTEGER PRIMARY KEY, url TEXT NOT NULL, mask INTEGER NOT NULL);
"""

_COLUMNS = (
    "id, account, client_ref, carrier, number, sender, text, priority, status, parts, billing_units, "
    "billable_units, delivered_parts, ref, created_at, send_at, expires_at, submitted_at, done_at, error, carrier_id, key"
)
_UPDATABLE = frozenset(
    {"billable_units", "delivered_parts", "submitted_at", "done_at", "error", "send_at", "expires_at", "ref"}
)
_STOP = object()
# outbox seqs are the notifications' event_ids: unique for good, also after their rows are deleted
_TOP_SEQ = (
    "SELECT max(coalesce((SELECT max(seq) FROM outbox), 0), "
    "coalesce((SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'outbox_seq'), 0))"
)
_KEEP_TOP_SEQ = (
    "INSERT INTO meta VALUES ('outbox_seq', ?) ON CONFLICT(key) DO UPDATE SET "
    "value = max(CAST(value AS INTEGER), CAST(excluded.value AS INTEGER))"
)
_json = msgspec.json.Encoder().encode
_astuple = msgspec.structs.astuple
_client_ref = attrgetter("client_ref")
_flatten = chain.from_iterable

# a new row straight from msgspec.structs.astuple(message) (created_at and
# updated_at bound once per statement): the columns in NewMessage's field order
# (checked here, so a new field cannot shift them silently)
_NEW_FIELDS = (
    "account", "client_ref", "carrier", "number", "sender", "text", "priority", "send_at", "expires_at",
    "parts", "billing_units", "ref", "status", "id",
)
assert NewMessage.__struct_fields__ == _NEW_FIELDS, NewMessage.__struct_fields__

# The hot statements take a whole batch as multi-row VALUES with bound
# parameters, a few hundred rows per statement (``_values``), not executemany
# and not one JSON text: executemany makes pysqlite release and re-take the
# GIL (the GIL the event loop needs) around every row's sqlite3_step; a JSON
# parameter read with json_each/json_extract avoids that but costs SQLite
# ~2.5x the CPU of the insert itself (json_extract per column).  One statement
# per chunk binds its parameters in C, releases the GIL once, and SQLite reads
# them as plainly as executemany's (store microbench figures in the commit
# message).  Bound parameters also carry strings holding NUL exactly.  The
# updates go through INSTEAD OF triggers on temporary views, so they still run
# row by row in queue order (VALUES rows are taken in the order written).
_LADDER = (256, 64, 16, 4, 1)  # chunk sizes: a batch of n rows takes a few statements, all cached
_statements: dict[tuple[str, int, int, bool], str] = {}


def _values_sql(head: str, ncols: int, nrows: int, shared: bool) -> str:
    """``head VALUES (...), (...)``; with ``shared``, parameter ?1 is bound once for the
    whole statement and appended twice to every row (created_at, updated_at)."""
    if shared:
        rows = (
            "(" + ", ".join(f"?{2 + r * ncols + c}" for c in range(ncols)) + ", ?1, ?1)" for r in range(nrows)
        )
    else:
        rows = ("(" + ", ".join("?" for _ in range(ncols)) + ")" for _ in range(nrows))
    return f"{head} VALUES {', '.join(rows)}"


def _values(conn: sqlite3.Connection, head: str, ncols: int, rows: list[tuple[Any, ...]], *shared: Any) -> None:
    """Run ``head VALUES ...`` over ``rows`` (each ``ncols`` parameters), in order, in
    chunks of the sizes of ``_LADDER``; ``shared``: one parameter bound once (see _values_sql)."""
    n = len(rows)
    i = 0
    for size in _LADDER:
        while n - i >= size:
            key = (head, ncols, size, bool(shared))
            sql = _statements.get(key)
            if sql is None:
                sql = _statements[key] = _values_sql(head, ncols, size, bool(shared))
            conn.execute(sql, [*shared, *_flatten(rows[i : i + size])])
            i += size


def _where_in(conn: sqlite3.Connection, head: str, values: list[Any]) -> None:
    """Run ``head (?, ?, ...)`` (e.g. ``DELETE FROM t WHERE k IN``) over ``values`` in
    chunks of the sizes of ``_LADDER`` (one GIL release per chunk, not per row)."""
    n = len(values)
    i = 0
    for size in _LADDER:
        while n - i >= size:
            key = (head, 1, size, False)
            sql = _statements.get(key)
            if sql is None:
                sql = _statements[key] = f"{head} ({', '.join('?' * size)})"
            conn.execute(sql, values[i : i + size])
            i += size


_INSERT = f"INSERT INTO messages ({', '.join(_NEW_FIELDS)}, created_at, updated_at)"
_TEMP_SCHEMA = """
CREATE TEMP VIEW submitted_rows(at, carrier_id, key, id) AS SELECT NULL, NULL, NULL, NULL WHERE 0;
CREATE TEMP TRIGGER submitted_rows INSTEAD OF INSERT ON submitted_rows BEGIN
    UPDATE messages SET status = CASE WHEN status IN ('accepted', 'queued') THEN 'submitted' ELSE status END,
        updated_at = NEW.at, submitted_at = NEW.at,
        carrier_id = coalesce(NEW.carrier_id, carrier_id), key = coalesce(NEW.key, key)
    WHERE id = NEW.id;
END;
CREATE TEMP VIEW finished_rows(status, at, billable_units, delivered_parts, error, id) AS
    SELECT NULL, NULL, NULL, NULL, NULL, NULL WHERE 0;
CREATE TEMP TRIGGER finished_rows INSTEAD OF INSERT ON finished_rows BEGIN
    UPDATE messages SET status = NEW.status, updated_at = NEW.at, done_at = NEW.at,
        billable_units = NEW.billable_units, delivered_parts = NEW.delivered_parts, error = NEW.error
    WHERE id = NEW.id;
END;
"""
_SUBMITTED = "INSERT INTO submitted_rows"
_OUTBOX = "INSERT INTO outbox (seq, account, kind, message_id, url, body, created_at)"
_FINISHED = "INSERT INTO finished_rows"


class _Pass:
    """The transitions queued in one pass of the event loop, already grouped by
    kind as the writer's statements take them: the staging methods append each
    one's parameter tuple to its list, so the writer runs ``executemany`` over
    the lists with no Python loop of its own per transition (the writer holds
    the GIL the event loop needs while it runs Python).  Each list keeps queue
    order."""

    __slots__ = (
        "statuses", "updates", "submitted", "parts", "finished", "history", "pacing", "suppress", "outbox", "notified",
        "callbacks", "ops",
    )

    def __init__(self) -> None:
        self.statuses: list[tuple[str, float, int]] = []  # record(): a status alone
        self.updates: list[Update] = []  # record() with fields (rare): grouped by the writer
        self.submitted: list[tuple[float, str | None, str | None, int]] = []
        self.parts: list[tuple[Any, ...]] = []
        self.finished: list[tuple[str, float, int, int, str | None, int]] = []
        self.history: list[tuple[int, float, str]] = []
        self.pacing: list[list[tuple[str, float | None, bool]]] = []
        self.suppress: list[tuple[str, str, str, float]] = []
        self.outbox: list[tuple[Any, ...]] = []  # new notifications (seq, account, kind, message_id, url, body, created_at)
        self.notified: list[tuple[Any, ...]] = []  # their outcomes (seq, outcome, attempts, next_at, error)
        self.callbacks: list[Callable[[], None]] = []
        self.ops = 0  # transitions (and a commit marker when there are callbacks): for queued_ops


def _column(name: str, value: Any) -> Any:
    return _json(value).decode() if name == "error" and value is not None else value


class SqliteStore:
    """``SqliteStore(path)``; ``await store.open()`` … ``await store.close()``."""

    def __init__(
        self,
        path: str | Path,
        *,
        synchronous: str = "NORMAL",
        max_batch: int = 1000,
        wallclock: Callable[[], float] = time.time,
        checkpoint_s: float | None = 0.1,
    ) -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL"):
            raise ValueError("synchronous must be OFF, NORMAL or FULL")
        self.path = Path(path)
        self.synchronous = synchronous
        self.max_batch = max_batch
        self._wall = wallclock
        self._ids = IdGenerator(wallclock)
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._writer: threading.Thread | None = None
        self._reader = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="denpo-store-read")
        self._read_conn: sqlite3.Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._failure: BaseException | None = None
        # called in the event loop with the outbox rows of each commit (see notify())
        self.on_outbox_committed: Callable[[list[tuple[Any, ...]]], None] | None = None
        self.commits = 0
        self.committed_ops = 0
        self.commit_seconds = 0.0
        self.last_commit_seconds = 0.0
        self._pass = _Pass()  # transitions of this loop pass, shipped together at its end
        self._ship_due = False
        self._put_ops = 0  # transitions handed over (staged or queued); written by the loop
        self._shipped_ops = 0  # ... of which put into the queue (the rest are in self._pass)
        self._done_ops = 0  # ... and committed; written by the writer thread
        self.committed_writes = 0
        # WAL checkpoints run in their own thread and connection (PASSIVE: they never
        # block the writer), not inside the writer's commits as SQLite's automatic
        # checkpoint does: copying pages back and the fsync stay off the commit path
        self.checkpoint_s = checkpoint_s
        self._checkpointer: threading.Thread | None = None
        self._checkpoint_stop = threading.Event()
        self.checkpoints = 0

    # --- lifecycle ----------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self.synchronous}")
        conn.execute("PRAGMA busy_timeout=5000")
        return conn

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._writer = threading.Thread(target=self._write_loop, args=(ready,), name="denpo-store-write", daemon=True)
        self._writer.start()
        try:
            await asyncio.wrap_future(ready)
        except Exception:
            self._writer = None  # it has ended: close() must not wait for it
            raise
        self._read_conn = await self._read(lambda: self._connect())
        if self.checkpoint_s is not None:
            self._checkpoint_stop.clear()
            self._checkpointer = threading.Thread(target=self._checkpoint_loop, name="denpo-store-checkpoint", daemon=True)
            self._checkpointer.start()

    def _checkpoint_loop(self) -> None:
        """Every ``checkpoint_s`` with commits since the last one: a PASSIVE checkpoint
        (as many WAL frames as no reader still needs are copied into the database)."""
        conn = self._connect()
        seen = self.commits
        try:
            while not self._checkpoint_stop.wait(self.checkpoint_s):
                if self.commits == seen:
                    continue
                seen = self.commits
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                    self.checkpoints += 1
                except sqlite3.Error as exc:  # busy or I/O: the next round tries again
                    log.warning("WAL checkpoint failed: %s", exc)
        finally:
            conn.close()

    async def close(self) -> None:
        if self._writer is None:
            return
        try:
            await self.flush()  # raises when a commit failed: still shut down
        finally:
            if self._checkpointer is not None:
                self._checkpoint_stop.set()
                await asyncio.to_thread(self._checkpointer.join)
                self._checkpointer = None
            self._queue.put(_STOP)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
            if self._read_conn is not None:
                conn = self._read_conn
                await self._read(conn.close)
                self._read_conn = None
            self._reader.shutdown(wait=True)

    async def __aenter__(self) -> "SqliteStore":
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # --- the writer thread --------------------------------------------------------

    def _write_loop(self, ready: concurrent.futures.Future[None]) -> None:
        conn: sqlite3.Connection | None = None
        try:
            conn = self._connect()
            if self.checkpoint_s is not None:
                conn.execute("PRAGMA wal_autocheckpoint=0")  # the checkpoint thread's job
            conn.executescript(_SCHEMA)
            conn.executescript(_TEMP_SCHEMA)
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
            if row is None:
                conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise RuntimeError(f"{self.path}: schema version {row[0]}, this denpo knows {SCHEMA_VERSION}")
            (highest,) = conn.execute("SELECT max(id) FROM messages").fetchone()
            if highest is not None:
                self._ids.continue_after(highest)
        except BaseException as exc:  # noqa: BLE001 - reported to open()
            if conn is not None:
                conn.close()
            ready.set_exception(exc)
            return
        ready.set_result(None)
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        stop = False
        while not stop:
            items = [get()]
            size = 1
            while size < self.max_batch:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                items.append(item)
                if item is _STOP:
                    break
                size += item[1].ops if item[0] == "batch" else 1
            if items[-1] is _STOP:
                stop = True
                items.pop()
            if items:
                try:
                    self._commit(conn, items)
                except BaseException as exc:  # noqa: BLE001 - the writer must not die silently
                    log.exception("store writer failed")
                    self._failure = exc
                    if self._loop is not None:
                        self._loop.call_soon_threadsafe(_resolve, [(f, None, exc) for f in _waiters(items)], [])
        conn.close()

    def _commit(self, conn: sqlite3.Connection, items: list[tuple[Any, ...]]) -> None:
        """One transaction for the queue items.  Accepts are inserted first;
        then the transitions, grouped by kind and applied in life-cycle order
        (queued, other columns, submitted, parts, final, history), each group
        in queue order: a message's later transition in the same batch always
        lands after its earlier one."""
        started = time.perf_counter()
        done: list[tuple[asyncio.Future[Any], Any, BaseException | None]] = []
        passes: list[_Pass] = []
        ops = 0
        try:
            if self._failure is not None:
                # what was queued before this batch is lost: its callbacks and
                # waiters must not hear "committed" (a receipt acked, say)
                raise RuntimeError(f"{self.path}: the store stopped after a failed commit ({self._failure!r})")
            conn.execute("BEGIN IMMEDIATE")
            for item in items:
                kind = item[0]
                if kind == "batch":
                    passes.append(item[1])
                    ops += item[1].ops
                elif kind == "accept":
                    results = self._insert(conn, item[1])
                    if item[3] is not None:  # their callbacks, in the same transaction
                        _values(
                            conn, "INSERT OR REPLACE INTO callbacks", 3,
                            [(mid, cb[0], cb[1]) for (mid, created), cb in zip(results, item[3]) if created and cb is not None],
                        )
                    done.append((item[2], results, None))
                    ops += 1
                else:  # flush
                    done.append((item[1], None, None))
                    ops += 1
            for p in passes:
                for entries in p.pacing:  # (rare: in queue order, upserts and deletes of one number alternate)
                    conn.executemany(
                        "INSERT INTO pacing VALUES (?, ?, ?) ON CONFLICT(number) DO UPDATE SET "
                        "not_before = excluded.not_before, in_flight = excluded.in_flight",
                        [(n, nb, int(fl)) for n, nb, fl in entries if nb is not None or fl],
                    )
                    conn.executemany("DELETE FROM pacing WHERE number = ?", [(n,) for n, nb, fl in entries if nb is None and not fl])
            if any(p.suppress for p in passes):
                conn.executemany("INSERT OR REPLACE INTO suppression VALUES (?, ?, ?, ?)", _flatten(p.suppress for p in passes))
            if any(p.statuses for p in passes):
                conn.executemany("UPDATE messages SET status = ?, updated_at = ? WHERE id = ?", _flatten(p.statuses for p in passes))
            if any(p.updates for p in passes):
                fields: dict[tuple[str, ...], list[tuple[Any, ...]]] = {}
                for update in _flatten(p.updates for p in passes):
                    assert update.fields is not None
                    names = tuple(sorted(update.fields))
                    values = tuple(_column(n, update.fields[n]) for n in names)
                    if update.status is not None:
                        names += ("status", "updated_at")
                        values += (update.status, update.at)
                    fields.setdefault(names, []).append((*values, update.id))
                for names, rows in fields.items():
                    sets = ", ".join(f"{n} = ?" for n in names)
                    conn.executemany(f"UPDATE messages SET {sets} WHERE id = ?", rows)
            submitted = list(_flatten(p.submitted for p in passes))
            if submitted:
                _values(conn, _SUBMITTED, 4, submitted)
            if any(p.parts for p in passes):
                conn.executemany(
                    "INSERT INTO parts VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(message_id, seq) DO UPDATE SET "
                    "carrier_id = coalesce(excluded.carrier_id, carrier_id), key = coalesce(excluded.key, key), "
                    "state = coalesce(excluded.state, state), stat = coalesce(excluded.stat, stat), "
                    "err = coalesce(excluded.err, err), at = coalesce(excluded.at, at)",
                    _flatten(p.parts for p in passes),
                )
            finished = list(_flatten(p.finished for p in passes))
            if finished:
                _values(conn, _FINISHED, 6, finished)
            if any(p.history for p in passes):
                conn.executemany("INSERT OR IGNORE INTO history VALUES (?, ?, ?)", _flatten(p.history for p in passes))
            if any(p.outbox for p in passes):
                _values(conn, _OUTBOX, 7, list(_flatten(p.outbox for p in passes)))
            if any(p.notified for p in passes):
                outcomes = list(_flatten(p.notified for p in passes))
                sent = [o[0] for o in outcomes if o[1] == "sent"]
                _where_in(conn, "DELETE FROM outbox WHERE seq IN", sent)
                if sent:  # the highest seq (event_id) handed out outlives its row: never handed out again
                    conn.execute(_KEEP_TOP_SEQ, (max(sent),))
                conn.executemany(
                    "UPDATE outbox SET attempts = ?, next_at = ?, last_error = ?, state = ? WHERE seq = ?",
                    [(o[2], o[3], o[4], "dead" if o[1] == "dead" else "pending", o[0]) for o in outcomes if o[1] != "sent"],
                )
            conn.execute("COMMIT")
            callbacks = list(_flatten(p.callbacks for p in passes))
            listener = self.on_outbox_committed
            if listener is not None and any(p.outbox for p in passes):
                # one call for all of this commit's notifications: they may be sent now
                callbacks.append(partial(listener, list(_flatten(p.outbox for p in passes))))
        except BaseException as exc:  # noqa: BLE001 - every waiter hears about it
            if self._failure is None:
                log.exception("store commit failed")
                self._failure = exc
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            done = [(fut, None, exc) for fut in _waiters(items)]
            callbacks = []  # what depended on this commit must not go ahead
            ops = sum(item[1].ops if item[0] == "batch" else 1 for item in items)
        elapsed = time.perf_counter() - started
        self.commits += 1
        self.committed_ops += len(items)  # queue items (a loop pass's transitions travel as one)
        self.committed_writes += ops
        self._done_ops += ops
        self.commit_seconds += elapsed
        self.last_commit_seconds = elapsed
        if (done or callbacks) and self._loop is not None:
            self._loop.call_soon_threadsafe(_resolve, done, callbacks)

    def _insert(self, conn: sqlite3.Connection, messages: list[NewMessage]) -> list[tuple[int, bool]]:
        now = self._wall()
        n = len(messages)
        if list(map(_client_ref, messages)).count(None) == n and set(map(type, messages)) == {NewMessage}:
            # no client_ref to look up (the usual case): ids and rows without a Python
            # loop over the fields (astuple is C), nothing to read before the insert
            ids = self._ids.take(n)
            for m, mid in zip(messages, ids):
                m.id = mid
            _values(conn, _INSERT, len(_NEW_FIELDS), list(map(_astuple, messages)), now)
            return list(zip(ids, repeat(True)))
        results: list[tuple[int, bool]] = []
        rows = []
        seen: dict[tuple[str, str], int] = {}
        for m in messages:
            if m.client_ref is not None:
                key = (m.account, m.client_ref)
                existing = seen.get(key)
                if existing is None:
                    row = conn.execute(
                        "SELECT id FROM messages WHERE account = ? AND client_ref = ?", key
                    ).fetchone()
                    existing = row[0] if row else None
                if existing is not None:
                    results.append((existing, False))
                    continue
            mid = self._ids()
            m.id = mid
            if m.client_ref is not None:
                seen[(m.account, m.client_ref)] = mid
            rows.append(
                (
                    m.account, m.client_ref, m.carrier, m.number, m.sender, m.text, m.priority, m.send_at,
                    m.expires_at, m.parts, m.billing_units, m.ref, m.status, mid,
                )
            )
            results.append((mid, True))
        _values(conn, _INSERT, len(_NEW_FIELDS), rows, now)
        return results

    def _check(self) -> None:
        if self._writer is None:
            raise RuntimeError("the store is not open")

    # --- writes ---------------------------------------------------------------------

    async def accept(
        self, messages: list[NewMessage], callbacks: list[tuple[str, int] | None] | None = None
    ) -> list[tuple[int, bool]]:
        """Insert new messages (duplicates by client_ref are found, not inserted);
        ``callbacks``, aligned with ``messages``: a (url, mask) stored with each new one."""
        self._check()
        if not messages:
            return []
        future: asyncio.Future[list[tuple[int, bool]]] = asyncio.get_running_loop().create_future()
        self._ship()
        self._put(("accept", messages, future, callbacks))
        return await future

    def accept_then(
        self,
        messages: list[NewMessage],
        callbacks: list[tuple[str, int] | None] | None,
        then: Callable[[list[tuple[int, bool]] | None, BaseException | None], None],
    ) -> None:
        """:meth:`accept` for a caller in the event loop that wants a plain call,
        ``then(results, None)`` or ``then(None, error)``, made in the loop pass that
        hears of the commit — not a future to await, whose waiter wakes a pass
        later, and again for each future it resolves in turn (request → 202 is a
        chain of such passes, each as long as everything else the loop does)."""
        self._check()
        if not messages:
            then([], None)
            return
        self._ship()
        self._put(("accept", messages, _Then(then), callbacks))

    def record(self, update: Update, carrier: str = "") -> None:
        """Queue a transition (``carrier`` names the carrier of a part record)."""
        p = self._pass
        fields = update.fields
        if fields:
            if not _UPDATABLE.issuperset(fields):
                raise ValueError(f"not updatable: {sorted(set(fields) - _UPDATABLE)}")
            p.updates.append(update)  # its status too: in the same statement as its fields
        elif update.status is not None:
            p.statuses.append((update.status, update.at, update.id))
        if update.history and update.status is not None:
            p.history.append((update.id, update.at, update.status))
        if update.part is not None:
            r = update.part
            p.parts.append((update.id, r.seq, carrier, r.carrier_id, r.key, r.state, r.stat, r.err, r.at))
        self._put_ops += 1
        if not self._ship_due:
            self._schedule_ship()

    # the hot transitions: one tuple straight into this pass's list (no op object, no call)

    def submitted(self, message_id: int, at: float, carrier_id: str | None = None, key: str | None = None) -> None:
        self._pass.submitted.append((at, carrier_id, key, message_id))
        self._put_ops += 1
        if not self._ship_due:
            self._schedule_ship()

    def part(self, message_id: int, carrier: str, part: PartRecord) -> None:
        p = part
        self._pass.parts.append((message_id, p.seq, carrier, p.carrier_id, p.key, p.state, p.stat, p.err, p.at))
        self._put_ops += 1
        if not self._ship_due:
            self._schedule_ship()

    def finished(
        self, message_id: int, status: str, at: float, *, billable_units: int, delivered_parts: int,
        error: dict[str, Any] | None = None, history: bool = False,
    ) -> None:
        encoded = _json(error).decode() if error is not None else None
        self._pass.finished.append((status, at, billable_units, delivered_parts, encoded, message_id))
        if history:
            self._pass.history.append((message_id, at, status))
        self._put_ops += 1
        if not self._ship_due:
            self._schedule_ship()

    async def flush(self) -> None:
        self._check()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._ship()
        self._put(("flush", future))
        await future

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (in the event loop) once everything queued so far is committed;
        never, if that commit fails."""
        self._pass.callbacks.append(callback)
        if not self._ship_due:
            self._schedule_ship()

    def _put(self, item: tuple[Any, ...]) -> None:
        """An item of its own (accept, flush), after what was staged before it."""
        self._put_ops += 1
        self._shipped_ops += 1
        self._queue.put(item)

    def _schedule_ship(self) -> None:
        """The transitions (and commit callbacks) of one pass of the event loop
        travel to the writer as one item at the end of the pass: an item each
        cost as much as the write itself (a thread wake-up per put)."""
        self._ship_due = True
        if self._loop is not None:
            self._loop.call_soon(self._ship)
        else:
            self._ship()

    def _ship(self) -> None:
        self._ship_due = False
        p = self._pass
        if p.callbacks:
            self._put_ops += 1  # one commit marker for all of them
        p.ops = self._put_ops - self._shipped_ops
        if p.ops:
            self._shipped_ops = self._put_ops
            self._pass = _Pass()
            self._queue.put(("batch", p))

    def save_pacing(self, entries: list[tuple[str, float | None, bool]]) -> None:
        if entries:
            self._pass.pacing.append(entries)
            self._put_ops += 1
            if not self._ship_due:
                self._schedule_ship()

    def notify(self, entries: list[tuple[Any, ...]]) -> None:
        """New outbox entries ``(seq, account, kind, message_id, url, body, created_at)``,
        committed with whatever else this loop pass staged (the status they report)."""
        if entries:
            self._pass.outbox.extend(entries)
            self._put_ops += 1
            if not self._ship_due:
                self._schedule_ship()

    def notified(self, outcomes: Sequence[tuple[Any, ...]]) -> None:
        """Delivery outcomes ``(seq, "sent"|"retry"|"dead", attempts, next_at, error)``."""
        if outcomes:
            self._pass.notified.extend(outcomes)
            self._put_ops += 1
            if not self._ship_due:
                self._schedule_ship()

    def suppress(self, number: str, carrier: str, reason: str, at: float) -> None:
        self._pass.suppress.append((number, carrier, reason, at))
        self._put_ops += 1
        if not self._ship_due:
            self._schedule_ship()

    @property
    def queued_ops(self) -> int:
        """Transitions handed over and not committed yet."""
        return self._put_ops - self._done_ops

    # --- reads ----------------------------------------------------------------------

    async def _read(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._reader, fn)

    def _rows(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        assert self._read_conn is not None
        return self._read_conn.execute(sql, params).fetchall()

    async def get(self, message_id: int) -> StoredMessage | None:
        def read() -> StoredMessage | None:
            rows = self._rows(f"SELECT {_COLUMNS} FROM messages WHERE id = ?", (message_id,))
            if not rows:
                return None
            message = _message(rows[0])
            if not message.part_records:  # (a single-part message has its part on its row)
                message.part_records = [
                    PartRecord(seq=r[0], carrier_id=r[1], key=r[2], state=r[3], stat=r[4], err=r[5], at=r[6])
                    for r in self._rows(
                        "SELECT seq, carrier_id, key, state, stat, err, at FROM parts WHERE message_id = ? ORDER BY seq",
                        (message_id,),
                    )
                ]
            message.history = _history(message, self._rows("SELECT status, at FROM history WHERE message_id = ?", (message_id,)))
            return message

        return await self._read(read)

    async def load(
        self, *, statuses: tuple[str, ...], carrier: str | None = None, after_id: int = 0, limit: int = 1000
    ) -> list[StoredMessage]:
        marks = ", ".join("?" for _ in statuses)
        sql = f"SELECT {_COLUMNS} FROM messages WHERE status IN ({marks}) AND id > ?"
        params: tuple[Any, ...] = (*statuses, after_id)
        if carrier is not None:
            sql += " AND carrier = ?"
            params += (carrier,)
        sql += " ORDER BY id LIMIT ?"
        params += (limit,)
        return await self._read(lambda: [_message(r) for r in self._rows(sql, params)])

    async def load_lane(self, carrier: str, priority: str, account: str, *, after_id: int, limit: int) -> list[StoredMessage]:
        """Queued messages of one (carrier, priority, account) lane, by id (the backlog index)."""
        sql = (
            f"SELECT {_COLUMNS} FROM messages WHERE carrier = ? AND priority = ? AND account = ? "
            "AND status IN ('accepted', 'queued') AND id > ? ORDER BY id LIMIT ?"
        )
        params = (carrier, priority, account, after_id, limit)
        return await self._read(lambda: [_message(r) for r in self._rows(sql, params)])

    async def lanes(self) -> list[tuple[str, str, str, int]]:
        """(carrier, priority, account, count) of every lane with a backlog."""
        sql = (
            "SELECT carrier, priority, account, count(*) FROM messages "
            "WHERE status IN ('accepted', 'queued') GROUP BY carrier, priority, account"
        )
        return await self._read(lambda: [tuple(r) for r in self._rows(sql)])

    async def load_parts(self, message_ids: list[int]) -> dict[int, list[PartRecord]]:
        def read() -> dict[int, list[PartRecord]]:
            out: dict[int, list[PartRecord]] = {}
            for i in range(0, len(message_ids), 500):
                chunk = message_ids[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                for r in self._rows(
                    f"SELECT message_id, seq, carrier_id, key, state, stat, err, at FROM parts WHERE message_id IN ({marks})",
                    tuple(chunk),
                ):
                    out.setdefault(r[0], []).append(
                        PartRecord(seq=r[1], carrier_id=r[2], key=r[3], state=r[4], stat=r[5], err=r[6], at=r[7])
                    )
                for r in self._rows(
                    f"SELECT {_COLUMNS} FROM messages WHERE carrier_id IS NOT NULL AND id IN ({marks})", tuple(chunk)
                ):
                    message = _message(r)
                    out[message.id] = message.part_records
            return out

        return await self._read(read)

    async def find_refs(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, str]]:
        """``(account, client_ref)`` → ``(id, status)`` of the messages already stored under them."""

        def read() -> dict[tuple[str, str], tuple[int, str]]:
            out = {}
            for account, ref in keys:
                for r in self._rows("SELECT id, status FROM messages WHERE account = ? AND client_ref = ?", (account, ref)):
                    out[(account, ref)] = (r[0], r[1])
            return out

        return await self._read(read) if keys else {}

    async def counts(self) -> dict[str, int]:
        return await self._read(lambda: dict(self._rows("SELECT status, count(*) FROM messages GROUP BY status")))

    async def load_pacing(self) -> list[tuple[str, float | None, bool]]:
        return await self._read(lambda: [(r[0], r[1], bool(r[2])) for r in self._rows("SELECT number, not_before, in_flight FROM pacing")])

    async def unsuppress(self, number: str) -> bool:
        await self.flush()

        def delete() -> bool:
            # a one-off write: through the writer would need a result channel; WAL allows it here
            assert self._read_conn is not None
            cur = self._read_conn.execute("DELETE FROM suppression WHERE number = ?", (number,))
            return cur.rowcount > 0

        return await self._read(delete)

    async def suppressed(self) -> list[tuple[str, str, str, float]]:
        return await self._read(lambda: [tuple(r) for r in self._rows("SELECT number, carrier, reason, at FROM suppression ORDER BY at")])

    async def is_suppressed(self, numbers: list[str]) -> set[str]:
        def read() -> set[str]:
            found: set[str] = set()
            for i in range(0, len(numbers), 500):
                chunk = numbers[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                found.update(r[0] for r in self._rows(f"SELECT number FROM suppression WHERE number IN ({marks})", tuple(chunk)))
            return found

        return await self._read(read)

    async def load_outbox(self, *, after_seq: int = 0, limit: int = 10_000) -> tuple[list[tuple[Any, ...]], int]:
        """Pending notifications after ``after_seq``, in order —
        ``(seq, account, kind, message_id, url, body, created_at, attempts)`` — and
        the highest seq handed out when they were read (one snapshot)."""
        sql = (
            "SELECT seq, account, kind, message_id, url, body, created_at, attempts FROM outbox "
            "WHERE seq > ? AND state = 'pending' ORDER BY seq LIMIT ?"
        )

        def read() -> tuple[list[tuple[Any, ...]], int]:
            assert self._read_conn is not None
            with self._read_conn:  # one read transaction: the rows and the top agree
                self._read_conn.execute("BEGIN")
                rows = [tuple(r) for r in self._rows(sql, (after_seq, limit))]
                top = self._rows(_TOP_SEQ)[0][0]
            return rows, top

        return await self._read(read)

    async def max_outbox_seq(self) -> int:
        """The highest seq ever handed out (sent entries are deleted; meta keeps their top)."""
        return await self._read(lambda: self._rows(_TOP_SEQ)[0][0])

    async def dead_notifications(self, account: str, *, limit: int = 100) -> list[tuple[Any, ...]]:
        """``(seq, kind, message_id, url, body, created_at, attempts, last_error)`` of dead ones, newest first."""
        sql = (
            "SELECT seq, kind, message_id, url, body, created_at, attempts, last_error FROM outbox "
            "WHERE account = ? AND state = 'dead' ORDER BY seq DESC LIMIT ?"
        )
        return await self._read(lambda: [tuple(r) for r in self._rows(sql, (account, limit))])

    async def load_callbacks(self, message_ids: list[int]) -> dict[int, tuple[str, int]]:
        def read() -> dict[int, tuple[str, int]]:
            out: dict[int, tuple[str, int]] = {}
            for i in range(0, len(message_ids), 500):
                chunk = message_ids[i : i + 500]
                marks = ", ".join("?" for _ in chunk)
                for r in self._rows(f"SELECT message_id, url, mask FROM callbacks WHERE message_id IN ({marks})", tuple(chunk)):
                    out[r[0]] = (r[1], r[2])
            return out

        return await self._read(read) if message_ids else {}

    def stats(self) -> dict[str, Any]:
        return {
            "commits": self.commits,
            "committed_writes": self.committed_writes,
            "writes_per_commit": round(self.committed_writes / self.commits, 1) if self.commits else 0.0,
            "commit_seconds_total": round(self.commit_seconds, 3),
            "last_commit_ms": round(self.last_commit_seconds * 1000, 3),
            "queued_ops": self.queued_ops,
        }


class _Then:
    """In a writer item where a future would be: :func:`_resolve` calls it at once."""

    __slots__ = ("fn", "called")

    def __init__(self, fn: Callable[[Any, BaseException | None], None]) -> None:
        self.fn = fn
        self.called = False

    def done(self) -> bool:
        return self.called

    def set_result(self, result: Any) -> None:
        self.called = True
        self.fn(result, None)

    def set_exception(self, exc: BaseException) -> None:
        self.called = True
        self.fn(None, exc)


def _waiters(items: list[tuple[Any, ...]]) -> list[asyncio.Future[Any]]:
    """The futures of the accepts and flushes among these queue items."""
    return [item[2] if item[0] == "accept" else item[1] for item in items if item[0] in ("accept", "flush")]


def _resolve(done: list[tuple[asyncio.Future[Any], Any, BaseException | None]], callbacks: list[Callable[[], None]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:  # noqa: BLE001 - one failing callback must not stop the others
            log.exception("store commit callback failed")
    for future, result, exc in done:
        if future.done():
            continue
        if exc is not None:
            future.set_exception(exc)
        else:
            future.set_result(result)


def _history(message: StoredMessage, extra: list[tuple[Any, ...]]) -> list[tuple[str, float]]:
    """The usual transitions from the row's timestamps, plus the recorded unusual ones,
    in time order (ties keep the order of the life cycle)."""
    events: list[tuple[str, float]] = [("accepted", message.created_at)]
    queued_at = max(message.created_at, message.send_at or 0.0)  # at once, or at its send time
    never_queued = message.done_at is not None and message.submitted_at is None and message.done_at < queued_at
    if message.status != "accepted" and not never_queued:  # (e.g. a scheduled message cancelled early)
        events.append(("queued", queued_at))
    if message.submitted_at is not None:
        events.append(("submitted", message.submitted_at))
    events.extend((status, at) for status, at in sorted(extra, key=lambda e: e[1]))
    if message.done_at is not None:
        events.append((message.status, message.done_at))
    unique = list(dict.fromkeys(events))
    return sorted(unique, key=lambda e: e[1])  # stable: equal times keep their order


def _message(row: tuple[Any, ...]) -> StoredMessage:
    (
        mid, account, client_ref, carrier, number, sender, text, priority, status, parts, billing_units,
        billable_units, delivered_parts, ref, created_at, send_at, expires_at, submitted_at, done_at, error,
        carrier_id, key,
    ) = row
    message = StoredMessage(
        id=mid, account=account, client_ref=client_ref, carrier=carrier, number=number, sender=sender, text=text,
        priority=priority, status=status, parts=parts, billing_units=billing_units, billable_units=billable_units,
        delivered_parts=delivered_parts, ref=ref, created_at=created_at, send_at=send_at, expires_at=expires_at,
        submitted_at=submitted_at, done_at=done_at, error=json.loads(error) if error else None,
    )
    if carrier_id is not None:
        message.part_records = [_single_part(message, carrier_id, key)]
    return message


_PART_STATE = {"delivered": "delivered", "expired": "expired", "undeliverable": "failed", "partially_failed": "failed"}


def _single_part(message: StoredMessage, carrier_id: str, key: str | None) -> PartRecord:
    """A single-part message keeps its part on its own row: the record, rebuilt."""
    state = _PART_STATE.get(message.status)
    error = message.error or {}
    stat = error.get("stat") or ("DELIVRD" if state == "delivered" else None)
    return PartRecord(seq=1, carrier_id=carrier_id, key=key, state=state, stat=stat, err=error.get("err"), at=message.done_at if state else None)
