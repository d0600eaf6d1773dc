"""The durable store (engine.store.sqlite.SqliteStore) against real SQLite files.

No sleeps: every test waits on the store's own futures (accept, flush, reads)
or on callbacks.  Where a test needs several operations in *one* writer
transaction it holds the writer thread at a gate (:class:`HeldWriter`) while
it queues them; where it needs them in *separate* transactions it opens the
store with ``max_batch=1`` and lets one event-loop pass go by between them
(:func:`next_pass`: the transitions of one pass may travel to the writer
together).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from engine.store.base import (
    IdGenerator,
    NewMessage,
    PartRecord,
    Update,
    format_id,
    parse_id,
)
import engine.store.sqlite as sqlite_module
from engine.store.sqlite import SCHEMA_VERSION, SqliteStore

WALL0 = 1_800_000_000.0


class Wall:
    """An injectable wall clock the test moves by hand."""

    def __init__(self, t: float = WALL0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def new(i: int = 0, **kw: Any) -> NewMessage:
    fields: dict[str, Any] = {
        "account": "acme", "carrier": "docomo", "number": f"+8190{i:08d}", "sender": "DENPO", "text": f"hello {i}"
    }
    fields.update(kw)
    return NewMessage(**fields)


def plain_row(path: Path, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Read the file through a connection of its own (not the store's)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


class HeldWriter:
    """Once :meth:`hold` was awaited, the writer thread waits inside a commit until
    :meth:`release`: everything queued meanwhile goes into the following
    transaction together."""

    def __init__(self, store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.store = store
        self.armed = False
        self.gate = threading.Event()
        self.entered = threading.Event()
        original = store._commit

        def commit(*args: Any) -> None:
            if self.armed and not self.gate.is_set():
                self.entered.set()
                assert self.gate.wait(10), "the test never released the writer"
            original(*args)

        monkeypatch.setattr(store, "_commit", commit)

    async def hold(self) -> None:
        await self.store.flush()
        self.armed = True
        self.store.save_pacing([("+81000000000", None, False)])  # a no-op write for the writer to stop in
        assert await asyncio.to_thread(self.entered.wait, 10)

    def release(self) -> None:
        self.gate.set()


async def next_pass() -> None:
    """Let one pass of the event loop go by (no wall-clock wait): what was queued
    in the previous pass goes to the writer on its own."""
    await asyncio.sleep(0)


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "denpo.db"


@pytest.fixture
async def store(path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(path, wallclock=Wall())
    await s.open()
    yield s
    await s.close()


# --- ids ---------------------------------------------------------------------------------


def test_format_and_parse_id_round_trip() -> None:
    for value in (0, 1, 0xABCDEF, int(WALL0 * 1000) << 16, 2**63 - 1):
        text = format_id(value)
        assert len(text) == 16 and text == text.lower()
        assert parse_id(text) == value
    assert parse_id("00000000000000AB") == 0xAB  # upper case is the same id


@pytest.mark.parametrize(
    "text",
    [
        "",
        "abc",
        "000000000000001",  # 15 digits
        "00000000000000001",  # 17 digits
        "000000000000000g",
        "zzzzzzzzzzzzzzzz",
        "8000000000000000",  # 2**63: not a signed 64-bit integer
        "ffffffffffffffff",
        "-000000000000001",  # int() takes a sign ...
        "+000000000000001",
        "0x0000000000000f",  # ... a prefix ...
        "0000_0000_00001f",  # ... underscores ...
        " 00000000000001f",  # ... surrounding blanks ...
        "00000000000001f\n",
        "٠٠٠٠٠٠٠٠٠٠٠٠٠٠٠١",  # ... and other scripts' digits: none of them is a public id
    ],
)
def test_parse_id_rejects(text: str) -> None:
    assert parse_id(text) is None


def test_id_generator_runs_ahead_of_a_stuck_clock_and_continues_after() -> None:
    wall = Wall()
    ids = IdGenerator(wall)
    first = ids.batch(3)
    base = int(WALL0 * 1000) << 16
    assert first == [base, base + 1, base + 2]
    ids.continue_after(base + 100)
    assert ids() == base + 101
    wall.t -= 3600  # backwards: still increasing
    assert ids() == base + 102



def test_id_generator_take_is_what_single_calls_would_give() -> None:
    wall = Wall()
    one, many = IdGenerator(wall), IdGenerator(wall)
    assert list(many.take(5)) == [one() for _ in range(5)]
    assert list(many.take(0)) == []
    assert many() == one()  # continues after the block
    many.continue_after(many() + 1000)
    block = many.take(3)
    assert block[0] > 1000 and list(block) == [block[0], block[0] + 1, block[0] + 2]

async def test_accept_returns_ids_in_order_increasing_and_committed(path: Path) -> None:
    wall = Wall()
    store = SqliteStore(path, wallclock=wall)
    await store.open()
    messages = [new(i) for i in range(5)]
    first = await store.accept(messages)
    assert [created for _id, created in first] == [True] * 5
    ids = [mid for mid, _created in first]
    assert ids == sorted(ids) and len(set(ids)) == 5
    assert [m.id for m in messages] == ids  # assigned on the NewMessage too
    # committed when accept returned: another connection sees the rows
    assert plain_row(path, "SELECT id FROM messages ORDER BY id") == [(i,) for i in ids]
    wall.t += 1
    second = await store.accept([new(10), new(11)])
    assert min(mid for mid, _ in second) > max(ids)
    assert await store.accept([]) == []
    await store.close()

    again = SqliteStore(path, wallclock=wall)
    await again.open()
    try:
        for mid, m in zip(ids, messages):
            row = await again.get(mid)
            assert row is not None
            assert (row.id, row.number, row.text, row.status, row.created_at) == (mid, m.number, m.text, "queued", WALL0)
        assert await again.counts() == {"queued": 7}
    finally:
        await again.close()


async def test_client_ref_idempotent_within_and_across_batches(path: Path, store: SqliteStore) -> None:
    batch = [
        new(1, client_ref="r1"),
        new(2, client_ref="r1", text="a retry with other text"),  # same account and ref: the first one
        new(3),  # no ref: always new
        new(4),
        new(5, client_ref="r1", account="other"),  # same ref, other account: new
    ]
    result = await store.accept(batch)
    (a, ca), (b, cb), (c, cc), (d, cd), (e, ce) = result
    assert (ca, cb, cc, cd, ce) == (True, False, True, True, True)
    assert b == a and len({a, c, d, e}) == 4

    later = await store.accept([new(6, client_ref="r2"), new(7, client_ref="r1"), new(8, client_ref="r2")])
    (f, cf), (g, cg), (h, ch) = later
    assert (cf, cg, ch) == (True, False, False)
    assert g == a and h == f

    row = await store.get(a)
    assert row is not None and row.text == "hello 1" and row.client_ref == "r1"
    assert plain_row(path, "SELECT count(*) FROM messages") == [(5,)]



async def test_client_refs_holding_nul_are_told_apart(store: SqliteStore) -> None:
    """Refs are looked up as JSON; one holding NUL is looked up on its own (SQLite's JSON
    reader would cut it there, and "a" would find "a\\x00b")."""
    [(a, ca), (b, cb)] = await store.accept([new(1, client_ref="a\x00b"), new(2, client_ref="a")])
    [(c, cc), (d, cd), (e, ce)] = await store.accept(
        [new(3, client_ref="a\x00c"), new(4, client_ref="a\x00b"), new(5, client_ref="a")]
    )
    assert (ca, cb, cc, cd, ce) == (True, True, True, False, False)
    assert len({a, b, c}) == 3 and (d, e) == (a, b)

async def test_client_ref_idempotent_across_accepts_in_one_transaction(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldWriter(store, monkeypatch)
    await held.hold()
    first = asyncio.ensure_future(store.accept([new(1, client_ref="dup")]))
    second = asyncio.ensure_future(store.accept([new(2, client_ref="dup")]))
    await next_pass()  # both are queued now
    commits = store.commits
    held.release()
    [(a, ca)], [(b, cb)] = await first, await second
    assert store.commits == commits + 2  # the held one, then both accepts together
    assert (ca, cb) == (True, False) and a == b


async def test_ids_stay_unique_after_reopening_with_the_clock_gone_back(path: Path) -> None:
    store = SqliteStore(path, wallclock=Wall(WALL0))
    await store.open()
    before = [mid for mid, _ in await store.accept([new(i) for i in range(3)])]
    await store.close()

    earlier = SqliteStore(path, wallclock=Wall(WALL0 - 86_400))  # a day back
    await earlier.open()
    try:
        after = [mid for mid, _ in await earlier.accept([new(i) for i in range(3, 6)])]
        assert min(after) > max(before)
        assert after == sorted(after) and len(set(before + after)) == 6
        assert sorted(m.id for m in await earlier.load(statuses=("queued",))) == before + after
    finally:
        await earlier.close()


# --- transitions ----------------------------------------------------------------------------


async def _lifecycle(store: SqliteStore, mid: int) -> None:
    store.record(Update(id=mid, status="queued", at=WALL0 + 1))
    await next_pass()
    store.submitted(mid, WALL0 + 2, "c-1", "C-1")
    await next_pass()
    store.finished(
        mid, "undeliverable", WALL0 + 3, billable_units=1, delivered_parts=0,
        error={"stat": "UNDELIV", "err": "001", "nested": {"list": [1, 2.5, None]}, "text": "日本語"},
    )


@pytest.mark.parametrize("batching", ["one transaction", "one op per transaction"])
async def test_transitions_land_in_order(path: Path, batching: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SqliteStore(path, wallclock=Wall(), max_batch=1 if batching == "one op per transaction" else 1000)
    await store.open()
    try:
        [(mid, _)] = await store.accept([new(1, status="accepted", send_at=WALL0 + 1)])
        if batching == "one transaction":
            held = HeldWriter(store, monkeypatch)
            await held.hold()
            await _lifecycle(store, mid)
            flushed = asyncio.ensure_future(store.flush())
            await next_pass()
            held.release()
            await flushed
        else:
            commits = store.commits
            await _lifecycle(store, mid)
            await store.flush()
            assert store.commits == commits + 4  # (queued, submitted, finished, flush)
        row = await store.get(mid)
        assert row is not None
        assert row.status == "undeliverable"
        assert (row.created_at, row.send_at, row.submitted_at, row.done_at) == (WALL0, WALL0 + 1, WALL0 + 2, WALL0 + 3)
        assert (row.billable_units, row.delivered_parts) == (1, 0)
        assert row.error == {"stat": "UNDELIV", "err": "001", "nested": {"list": [1, 2.5, None]}, "text": "日本語"}
        assert row.history == [
            ("accepted", WALL0), ("queued", WALL0 + 1), ("submitted", WALL0 + 2), ("undeliverable", WALL0 + 3)
        ]
        assert await store.lanes() == []
    finally:
        await store.close()


async def test_accept_submitted_finished_in_one_transaction(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The accept of a message and its next transitions in one writer batch: the ids are
    predictable with a stuck clock, so they can be queued before accept returns."""
    held = HeldWriter(store, monkeypatch)
    [(first, _)] = await store.accept([new(0)])
    await held.hold()
    accepted = asyncio.ensure_future(store.accept([new(1)]))
    await next_pass()
    mid = first + 1  # the clock does not move: the next id
    store.submitted(mid, WALL0 + 2, "c-9", "C-9")
    store.finished(mid, "delivered", WALL0 + 3, billable_units=1, delivered_parts=1)
    flushed = asyncio.ensure_future(store.flush())
    await next_pass()
    held.release()
    assert await accepted == [(mid, True)]
    await flushed
    row = await store.get(mid)
    assert row is not None and (row.status, row.submitted_at, row.done_at, row.error) == ("delivered", WALL0 + 2, WALL0 + 3, None)


async def test_late_final_after_indefinite_keeps_both_in_history(store: SqliteStore) -> None:
    [(mid, _)] = await store.accept([new(1)])
    store.submitted(mid, WALL0 + 1, "c-1", "C-1")
    store.finished(mid, "indefinite", WALL0 + 50, billable_units=1, delivered_parts=0,
                   error={"reason": "no receipt by the timeout"}, history=True)
    await store.flush()
    row = await store.get(mid)
    assert row is not None and row.status == "indefinite" and row.error == {"reason": "no receipt by the timeout"}
    assert row.part_records == [PartRecord(seq=1, carrier_id="c-1", key="C-1")]  # indefinite: no part state

    store.finished(mid, "delivered", WALL0 + 70, billable_units=1, delivered_parts=1, history=True)
    await store.flush()
    row = await store.get(mid)
    assert row is not None
    assert (row.status, row.done_at, row.delivered_parts, row.error) == ("delivered", WALL0 + 70, 1, None)
    assert row.history == [
        ("accepted", WALL0), ("queued", WALL0), ("submitted", WALL0 + 1), ("indefinite", WALL0 + 50), ("delivered", WALL0 + 70)
    ]



async def test_every_column_of_an_accepted_message_is_stored(store: SqliteStore) -> None:
    """A batch without client_refs takes the insert's fast path, one with one the
    path that looks refs up: both store the same columns."""
    fields: dict[str, Any] = {
        "account": "acme", "carrier": "au", "number": "+819012345678", "sender": "DENPO", "text": "日本語 ✉ 😀",
        "priority": "high", "send_at": WALL0 + 60, "expires_at": WALL0 + 3600, "parts": 2, "billing_units": 3,
        "ref": 200, "status": "accepted",
    }
    [(a, _)] = await store.accept([NewMessage(**fields)])
    [(b, _)] = await store.accept([NewMessage(**fields, client_ref="x")])
    for mid, client_ref in ((a, None), (b, "x")):
        row = await store.get(mid)
        assert row is not None
        assert {name: getattr(row, name) for name in fields} == fields
        assert (row.id, row.client_ref, row.created_at, row.submitted_at, row.done_at) == (mid, client_ref, WALL0, None, None)



async def test_strings_with_nul_and_json_specials_are_stored_exactly(store: SqliteStore) -> None:
    """Batches travel to SQLite as bound parameters of multi-row VALUES: NUL, quotes and
    other scripts arrive exactly (a JSON batch parameter would cut a string at \\u0000)."""
    texts = ["nul \x00 inside", 'quote " backslash \\ tab \t nl \n', "\u2028 \x01 😀 日本語"]
    for i, text in enumerate(texts):  # a batch each
        [(mid, _)] = await store.accept([new(i, text=text)])
        store.submitted(mid, WALL0 + 1.1, f"id {text}", "K")
        store.finished(mid, "undeliverable", WALL0 + 2.2, billable_units=1, delivered_parts=0, error={"err": text})
        await store.flush()
        row = await store.get(mid)
        assert row is not None and row.text == text and row.error == {"err": text}
        assert (row.submitted_at, row.done_at) == (WALL0 + 1.1, WALL0 + 2.2)
        assert row.part_records[0].carrier_id == f"id {text}"

async def test_transitions_of_one_message_in_one_transaction_apply_in_queue_order(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Within one writer transaction (several loop passes): submitted twice (a re-send:
    the second carries no carrier id, the first one's stays), then a final status
    and a late change of it; the later of each kind lands last."""
    [(mid, _), (other, _)] = await store.accept([new(1), new(2)])
    held = HeldWriter(store, monkeypatch)
    await held.hold()
    commits = store.commits
    store.submitted(mid, WALL0 + 1, "c-1", "C-1")
    store.finished(other, "expired", WALL0 + 1, billable_units=0, delivered_parts=0)
    await next_pass()
    store.submitted(mid, WALL0 + 2)
    store.finished(mid, "indefinite", WALL0 + 50, billable_units=1, delivered_parts=0, history=True)
    await next_pass()
    store.finished(mid, "delivered", WALL0 + 70, billable_units=1, delivered_parts=1, history=True)
    store.finished(other, "delivered", WALL0 + 80, billable_units=1, delivered_parts=1, history=True)
    flushed = asyncio.ensure_future(store.flush())
    await next_pass()
    held.release()
    await flushed
    assert store.commits == commits + 2  # the held one, then all of the above together
    row = await store.get(mid)
    assert row is not None
    assert (row.status, row.submitted_at, row.done_at, row.delivered_parts) == ("delivered", WALL0 + 2, WALL0 + 70, 1)
    assert row.part_records[0].carrier_id == "c-1"
    assert row.history == [
        ("accepted", WALL0), ("queued", WALL0), ("submitted", WALL0 + 2), ("indefinite", WALL0 + 50), ("delivered", WALL0 + 70)
    ]
    row = await store.get(other)
    assert row is not None and (row.status, row.done_at) == ("delivered", WALL0 + 80)

async def test_a_large_batch_lands_in_queue_order_across_statement_chunks(
    store: SqliteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch bigger than one statement's chunk (256 rows, then 64, 16, 4, 1): every
    row is written, and a message's later transition lands last even when its two
    rows fall into different chunks (rows 256 and 257 of the batch) or the same one."""
    accepted = await store.accept([new(i) for i in range(341)])  # 256 + 64 + 16 + 4 + 1
    ids = [mid for mid, _ in accepted]
    assert [m.id for m in await store.load(statuses=("queued",), limit=1000)] == ids
    held = HeldWriter(store, monkeypatch)
    await held.hold()
    first, second = ids[0], ids[1]
    for n, mid in enumerate(ids[2:257]):  # rows 0..254 of the batch
        store.submitted(mid, WALL0 + 1, f"c-{n}", None)
    store.submitted(first, WALL0 + 1, "early", "EARLY")  # row 255: the first chunk's last
    store.submitted(first, WALL0 + 2, "late", None)  # row 256: the next chunk's first
    store.submitted(second, WALL0 + 1, "x", "X")  # two rows in one chunk
    store.submitted(second, WALL0 + 3, "y", None)
    for mid in ids[257:]:
        store.submitted(mid, WALL0 + 1)
    store.finished(first, "indefinite", WALL0 + 50, billable_units=1, delivered_parts=0, history=True)
    store.finished(first, "delivered", WALL0 + 60, billable_units=1, delivered_parts=1, history=True)
    flushed = asyncio.ensure_future(store.flush())
    await next_pass()
    held.release()
    await flushed
    row = await store.get(first)
    assert row is not None and (row.status, row.submitted_at, row.done_at) == ("delivered", WALL0 + 2, WALL0 + 60)
    assert row.part_records[0].carrier_id == "late" and row.part_records[0].key == "EARLY"
    row = await store.get(second)
    assert row is not None and row.submitted_at == WALL0 + 3
    assert (row.part_records[0].carrier_id, row.part_records[0].key) == ("y", "X")
    assert await store.counts() == {"submitted": 340, "delivered": 1}
    parts = await store.load_parts(ids[2:257])
    assert [parts[mid][0].carrier_id for mid in ids[2:257]] == [f"c-{n}" for n in range(255)]


async def test_record_with_fields_and_history(store: SqliteStore) -> None:
    [(mid, _)] = await store.accept([new(1, status="accepted", send_at=WALL0 + 100)])
    store.record(Update(id=mid, fields={"send_at": WALL0 + 200, "ref": 7}))  # no status: only the columns
    store.record(Update(id=mid, status="cancelled", at=WALL0 + 5,
                        fields={"done_at": WALL0 + 5, "error": {"reason": "cancelled by the client"}}, history=True))
    await store.flush()
    row = await store.get(mid)
    assert row is not None
    assert (row.status, row.send_at, row.ref, row.done_at) == ("cancelled", WALL0 + 200, 7, WALL0 + 5)
    assert row.error == {"reason": "cancelled by the client"}
    # cancelled before its send time: it was never queued
    assert row.history == [("accepted", WALL0), ("cancelled", WALL0 + 5)]


async def test_history_of_a_send_time_in_the_past(store: SqliteStore) -> None:
    [(mid, _)] = await store.accept([new(1, send_at=WALL0 - 60)])  # queued at once
    row = await store.get(mid)
    assert row is not None and row.history == [("accepted", WALL0), ("queued", WALL0)]
    store.finished(mid, "expired", WALL0 + 1, billable_units=0, delivered_parts=0, error={"reason": "validity"})
    await store.flush()
    row = await store.get(mid)
    assert row is not None and row.history == [("accepted", WALL0), ("queued", WALL0), ("expired", WALL0 + 1)]


async def test_submitted_again_after_the_end_keeps_the_final_status(path: Path) -> None:
    """A single-part message submitted once more after it ended (the engine records the new
    carrier id): the row keeps its final status, as it would if both landed in one batch."""
    store = SqliteStore(path, wallclock=Wall(), max_batch=1)
    await store.open()
    try:
        [(mid, _)] = await store.accept([new(1)])
        store.submitted(mid, WALL0 + 1, "c-1", "C-1")
        await next_pass()
        store.finished(mid, "delivered", WALL0 + 9, billable_units=1, delivered_parts=1)
        await store.flush()
        commits = store.commits
        store.submitted(mid, WALL0 + 1, "c-2", "C-2")
        await store.flush()
        assert store.commits == commits + 2  # the late submitted was a transaction of its own
        row = await store.get(mid)
        assert row is not None
        assert (row.status, row.done_at, row.submitted_at) == ("delivered", WALL0 + 9, WALL0 + 1)
        assert row.part_records == [
            PartRecord(seq=1, carrier_id="c-2", key="C-2", state="delivered", stat="DELIVRD", at=WALL0 + 9)
        ]
        assert await store.load(statuses=("submitted",)) == []
    finally:
        await store.close()


# --- parts ----------------------------------------------------------------------------------


async def test_single_part_record_is_synthesised_from_the_row(store: SqliteStore) -> None:
    [(ok, _), (bad, _), (waiting, _)] = await store.accept([new(1), new(2), new(3)])
    for mid, n in ((ok, 1), (bad, 2), (waiting, 3)):
        store.submitted(mid, WALL0 + 1, f"c-{n}", f"C-{n}")
    await store.flush()
    row = await store.get(ok)
    assert row is not None and row.status == "submitted" and row.submitted_at == WALL0 + 1
    assert row.part_records == [PartRecord(seq=1, carrier_id="c-1", key="C-1")]

    store.finished(ok, "delivered", WALL0 + 5, billable_units=1, delivered_parts=1)
    store.finished(bad, "undeliverable", WALL0 + 6, billable_units=1, delivered_parts=0,
                   error={"stat": "UNDELIV", "err": "001"})
    await store.flush()
    row = await store.get(ok)
    assert row is not None
    assert row.part_records == [PartRecord(seq=1, carrier_id="c-1", key="C-1", state="delivered", stat="DELIVRD", at=WALL0 + 5)]
    row = await store.get(bad)
    assert row is not None
    assert row.part_records == [
        PartRecord(seq=1, carrier_id="c-2", key="C-2", state="failed", stat="UNDELIV", err="001", at=WALL0 + 6)
    ]
    parts = await store.load_parts([ok, bad, waiting])
    assert parts == {
        ok: [PartRecord(seq=1, carrier_id="c-1", key="C-1", state="delivered", stat="DELIVRD", at=WALL0 + 5)],
        bad: [PartRecord(seq=1, carrier_id="c-2", key="C-2", state="failed", stat="UNDELIV", err="001", at=WALL0 + 6)],
        waiting: [PartRecord(seq=1, carrier_id="c-3", key="C-3")],
    }


async def test_multi_part_records_and_load_parts(store: SqliteStore) -> None:
    [(multi, _), (single, _), (unsent, _)] = await store.accept(
        [new(1, parts=3, billing_units=3), new(2), new(3, parts=2, billing_units=2)]
    )
    for seq in (1, 2, 3):
        store.part(multi, "docomo", PartRecord(seq=seq, carrier_id=f"m-{seq}", key=f"M-{seq}"))
    store.submitted(multi, WALL0 + 1)  # every part accepted: no carrier id on the row
    store.submitted(single, WALL0 + 1, "s-1", "S-1")
    await store.flush()
    row = await store.get(multi)
    assert row is not None and row.status == "submitted"
    assert row.part_records == [PartRecord(seq=s, carrier_id=f"m-{s}", key=f"M-{s}") for s in (1, 2, 3)]

    # receipts: the state fields fill in, what they leave None is kept
    store.part(multi, "docomo", PartRecord(seq=2, state="delivered", stat="DELIVRD", at=WALL0 + 4))
    store.part(multi, "docomo", PartRecord(seq=1, state="delivered", stat="DELIVRD", at=WALL0 + 3))
    store.record(Update(id=multi, part=PartRecord(seq=3, state="failed", stat="UNDELIV", err="005", at=WALL0 + 5)), "docomo")
    store.finished(multi, "partially_failed", WALL0 + 5, billable_units=3, delivered_parts=2,
                   error={"stat": "UNDELIV", "err": "005"})
    await store.flush()
    expected = [
        PartRecord(seq=1, carrier_id="m-1", key="M-1", state="delivered", stat="DELIVRD", at=WALL0 + 3),
        PartRecord(seq=2, carrier_id="m-2", key="M-2", state="delivered", stat="DELIVRD", at=WALL0 + 4),
        PartRecord(seq=3, carrier_id="m-3", key="M-3", state="failed", stat="UNDELIV", err="005", at=WALL0 + 5),
    ]
    row = await store.get(multi)
    assert row is not None and row.status == "partially_failed" and row.part_records == expected
    assert plain_row(store.path, "SELECT DISTINCT carrier FROM parts") == [("docomo",)]

    parts = await store.load_parts([single, multi, unsent, 12345])
    assert set(parts) == {single, multi}  # nothing known of the unsent one, nor of an unknown id
    assert sorted(parts[multi], key=lambda p: p.seq) == expected
    assert parts[single] == [PartRecord(seq=1, carrier_id="s-1", key="S-1")]
    assert await store.load_parts([]) == {}


async def test_load_parts_in_chunks(store: SqliteStore) -> None:
    accepted = await store.accept([new(i) for i in range(1203)])
    for n, (mid, _) in enumerate(accepted):
        store.submitted(mid, WALL0 + 1, f"c-{n}", None)
    await store.flush()
    parts = await store.load_parts([mid for mid, _ in accepted])
    assert len(parts) == 1203
    assert all(parts[mid] == [PartRecord(seq=1, carrier_id=f"c-{n}")] for n, (mid, _) in enumerate(accepted))


# --- the backlog ----------------------------------------------------------------------------


async def test_load_lanes_and_paging(store: SqliteStore) -> None:
    spec = [
        {"carrier": "docomo", "priority": "normal", "account": "a"},
        {"carrier": "docomo", "priority": "normal", "account": "a"},
        {"carrier": "docomo", "priority": "high", "account": "a"},
        {"carrier": "au", "priority": "normal", "account": "b"},
        {"carrier": "docomo", "priority": "normal", "account": "a", "status": "accepted", "send_at": WALL0 + 60},
        {"carrier": "docomo", "priority": "normal", "account": "b"},
        {"carrier": "docomo", "priority": "normal", "account": "a"},
    ]
    ids = [mid for mid, _ in await store.accept([new(i, **kw) for i, kw in enumerate(spec)])]
    assert sorted(await store.lanes()) == [
        ("au", "normal", "b", 1), ("docomo", "high", "a", 1), ("docomo", "normal", "a", 4), ("docomo", "normal", "b", 1)
    ]
    assert await store.counts() == {"queued": 6, "accepted": 1}

    queued = await store.load(statuses=("queued",))
    assert [m.id for m in queued] == [mid for mid, kw in zip(ids, spec) if "status" not in kw]
    backlog = await store.load(statuses=("accepted", "queued"))
    assert [m.id for m in backlog] == ids
    assert backlog[4].status == "accepted" and backlog[4].send_at == WALL0 + 60
    assert [m.id for m in await store.load(statuses=("accepted", "queued"), carrier="au")] == [ids[3]]

    pages: list[int] = []
    after = 0
    while True:
        page = await store.load(statuses=("accepted", "queued"), after_id=after, limit=3)
        assert len(page) <= 3
        if not page:
            break
        pages += [m.id for m in page]
        after = page[-1].id
    assert pages == ids

    lane = [ids[0], ids[1], ids[4], ids[6]]
    assert [m.id for m in await store.load_lane("docomo", "normal", "a", after_id=0, limit=10)] == lane
    assert [m.id for m in await store.load_lane("docomo", "normal", "a", after_id=0, limit=2)] == lane[:2]
    assert [m.id for m in await store.load_lane("docomo", "normal", "a", after_id=lane[1], limit=10)] == lane[2:]
    assert await store.load_lane("softbank", "normal", "a", after_id=0, limit=10) == []

    # submitted ones leave the backlog (and the lanes); the others stay
    store.submitted(ids[0], WALL0 + 1, "x-0", "X-0")
    store.submitted(ids[3], WALL0 + 1, "x-3", "X-3")
    store.record(Update(id=ids[4], status="queued", at=WALL0 + 60))
    await store.flush()
    assert sorted(await store.lanes()) == [
        ("docomo", "high", "a", 1), ("docomo", "normal", "a", 3), ("docomo", "normal", "b", 1)
    ]
    assert [m.id for m in await store.load_lane("docomo", "normal", "a", after_id=0, limit=10)] == lane[1:]
    assert [m.id for m in await store.load(statuses=("submitted",))] == [ids[0], ids[3]]
    assert await store.counts() == {"queued": 5, "submitted": 2}
    assert await store.get(12345) is None


# --- pacing and suppression -----------------------------------------------------------------


async def test_pacing_upsert_and_delete(path: Path, store: SqliteStore) -> None:
    store.save_pacing([("+819000000001", WALL0 + 10, False), ("+819000000002", None, True), ("+819000000003", WALL0 + 5, True)])
    await store.flush()
    assert sorted(await store.load_pacing()) == [
        ("+819000000001", WALL0 + 10, False), ("+819000000002", None, True), ("+819000000003", WALL0 + 5, True)
    ]
    store.save_pacing([("+819000000001", WALL0 + 20, True)])  # update
    store.save_pacing([("+819000000002", None, False)])  # no clock, not in flight: gone
    store.save_pacing([("+819000000003", None, True)])  # no clock, still in flight: kept
    store.save_pacing([("+819000000004", None, False)])  # deleting what is not there
    store.save_pacing([])
    await store.flush()
    assert sorted(await store.load_pacing()) == [("+819000000001", WALL0 + 20, True), ("+819000000003", None, True)]
    assert sorted(plain_row(path, "SELECT number, not_before, in_flight FROM pacing")) == [
        ("+819000000001", WALL0 + 20, 1), ("+819000000003", None, 1)
    ]


async def test_suppression(path: Path) -> None:
    store = SqliteStore(path, wallclock=Wall())
    await store.open()
    store.suppress("+819000000001", "docomo", "unknown subscriber", WALL0 + 10)
    store.suppress("+819000000002", "au", "unknown subscriber", WALL0 + 5)
    await store.flush()
    assert await store.is_suppressed(["+819000000001", "+819000000002", "+819000000003"]) == {"+819000000001", "+819000000002"}
    assert await store.is_suppressed([]) == set()
    assert await store.suppressed() == [
        ("+819000000002", "au", "unknown subscriber", WALL0 + 5),
        ("+819000000001", "docomo", "unknown subscriber", WALL0 + 10),
    ]
    store.suppress("+819000000001", "docomo", "reported again", WALL0 + 1)  # replaces
    store.suppress("+819000000003", "softbank", "unknown subscriber", WALL0 + 20)
    assert await store.unsuppress("+819000000003") is True  # unsuppress flushes first: it sees the queued one
    assert await store.unsuppress("+819000000003") is False
    assert await store.suppressed() == [
        ("+819000000001", "docomo", "reported again", WALL0 + 1),
        ("+819000000002", "au", "unknown subscriber", WALL0 + 5),
    ]
    assert await store.unsuppress("+819000000002") is True
    assert await store.is_suppressed(["+819000000001", "+819000000002"]) == {"+819000000001"}
    await store.close()
    assert plain_row(path, "SELECT number FROM suppression") == [("+819000000001",)]


# --- commits and callbacks ------------------------------------------------------------------


async def test_on_commit_runs_after_what_was_queued_before_it(path: Path, store: SqliteStore) -> None:
    [(mid, _)] = await store.accept([new(1)])
    seen: list[tuple[Any, ...]] = []
    done = asyncio.get_running_loop().create_future()

    def callback() -> None:
        seen.extend(plain_row(path, "SELECT status, submitted_at, key FROM messages WHERE id = ?", (mid,)))
        done.set_result(None)

    store.submitted(mid, WALL0 + 1, "c-1", "C-1")
    store.on_commit(callback)
    assert not seen
    await done  # no flush: the marker goes to the writer at the end of this loop pass
    assert seen == [("submitted", WALL0 + 1, "C-1")]


async def test_on_commit_callbacks_of_one_pass_share_one_marker(store: SqliteStore) -> None:
    await store.flush()
    commits, ops = store.commits, store.committed_ops
    calls: list[int] = []
    done = asyncio.get_running_loop().create_future()
    for n in range(5):
        store.on_commit(lambda n=n: calls.append(n))
    store.on_commit(lambda: done.set_result(None))
    assert store.queued_ops == 0  # not yet: at the end of the loop pass
    await done
    assert calls == [0, 1, 2, 3, 4]
    assert (store.commits, store.committed_ops) == (commits + 1, ops + 1)  # one marker for six callbacks


async def test_a_failing_callback_does_not_stop_the_others(store: SqliteStore) -> None:
    calls: list[str] = []

    def bad() -> None:
        calls.append("bad")
        raise RuntimeError("callback bug")

    store.on_commit(bad)
    store.on_commit(lambda: calls.append("good"))
    await store.flush()
    assert calls == ["bad", "good"]


async def test_flush_delivers_pending_callbacks(store: SqliteStore) -> None:
    calls: list[str] = []
    store.on_commit(lambda: calls.append("first"))
    store.on_commit(lambda: calls.append("second"))
    await store.flush()  # no loop pass in between: flush takes the pending marker along
    assert calls == ["first", "second"]
    await store.flush()
    assert calls == ["first", "second"]  # each runs once


async def test_group_commit_and_stats(store: SqliteStore, monkeypatch: pytest.MonkeyPatch) -> None:
    accepted = await store.accept([new(i) for i in range(50)])
    await store.flush()
    stats = store.stats()
    assert stats["commits"] == 2 and stats["queued_ops"] == 0
    held = HeldWriter(store, monkeypatch)
    await held.hold()
    commits = store.commits  # the writer waits inside the held commit
    for n, (mid, _) in enumerate(accepted):
        store.submitted(mid, WALL0 + 1, None, None)
        if n % 10 == 9:
            await next_pass()  # several loop passes' worth queued behind the held commit
    fired: list[int] = []
    store.on_commit(lambda: fired.append(store.commits))
    flushed = asyncio.ensure_future(store.flush())
    await next_pass()
    assert store.queued_ops > 0
    held.release()
    await flushed
    stats = store.stats()
    assert stats["commits"] == commits + 2  # the held commit, then everything queued meanwhile in one
    assert stats["queued_ops"] == 0 and stats["commit_seconds_total"] >= 0 and stats["last_commit_ms"] >= 0
    assert fired == [commits + 2]
    assert await store.counts() == {"submitted": 50}


# --- failures -------------------------------------------------------------------------------


async def test_record_rejects_columns_it_may_not_update(store: SqliteStore) -> None:
    [(mid, _)] = await store.accept([new(1)])
    for fields in ({"status": "delivered"}, {"carrier_id": "x"}, {"id": 5}, {"done_at": 1.0, "text": "changed"}):
        with pytest.raises(ValueError, match="not updatable"):
            store.record(Update(id=mid, fields=fields))
    assert store.queued_ops == 0  # nothing was queued
    await store.flush()
    row = await store.get(mid)
    assert row is not None and row.status == "queued" and row.done_at is None and row.text == "hello 1"


async def test_a_failed_commit_fails_its_waiters_and_drops_its_callbacks(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SqliteStore(path, wallclock=Wall())
    await store.open()
    [(kept, _)] = await store.accept([new(0)])

    def broken_insert(conn: sqlite3.Connection, messages: list[NewMessage]) -> list[tuple[int, bool]]:
        raise sqlite3.OperationalError("database or disk is full")

    held = HeldWriter(store, monkeypatch)
    await held.hold()
    monkeypatch.setattr(store, "_insert", broken_insert)
    accepted = asyncio.ensure_future(store.accept([new(1)]))
    await next_pass()
    store.submitted(kept, WALL0 + 1, "c-0", "C-0")
    calls: list[str] = []
    store.on_commit(lambda: calls.append("ran"))
    flushed = asyncio.ensure_future(store.flush())
    await next_pass()
    held.release()
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        await accepted
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        await flushed
    assert calls == []
    # the whole transaction rolled back: the transition queued with the accept is not there
    assert plain_row(path, "SELECT status FROM messages") == [("queued",)]

    # the store stops: what comes later never claims to be committed
    monkeypatch.undo()
    store.on_commit(lambda: calls.append("later"))
    with pytest.raises(RuntimeError, match="failed commit"):
        await store.flush()
    with pytest.raises(RuntimeError, match="failed commit"):
        await store.accept([new(2)])
    assert calls == []
    with pytest.raises(RuntimeError, match="failed commit"):
        await store.close()  # reports the failure, and still shuts down
    assert store._writer is None
    assert plain_row(path, "SELECT status FROM messages") == [("queued",)]


async def test_a_failed_transition_commit_fails_later_flushes_and_callbacks(path: Path) -> None:
    """One op per transaction: the bad transition fails alone; the callback and the flush
    queued after it must not report it committed."""
    store = SqliteStore(path, wallclock=Wall(), max_batch=1)
    await store.open()
    [(mid, _)] = await store.accept([new(1)])
    store.record(Update(id=mid, fields={"billable_units": object()}))  # SQLite cannot bind it
    await next_pass()
    calls: list[str] = []
    store.on_commit(lambda: calls.append("ran"))
    with pytest.raises((sqlite3.Error, RuntimeError)):
        await store.flush()
    assert calls == []
    with pytest.raises(RuntimeError, match="failed commit"):
        await store.close()
    assert store._writer is None


async def test_a_different_schema_version_is_refused(path: Path) -> None:
    store = SqliteStore(path)
    await store.open()
    await store.close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    conn.close()

    other = SqliteStore(path)
    with pytest.raises(RuntimeError, match=rf"schema version 1, this denpo knows {SCHEMA_VERSION}"):
        await other.open()
    await asyncio.wait_for(other.close(), 10)  # nothing to close, and no hang
    with pytest.raises(RuntimeError, match="not open"):
        await other.flush()


async def test_not_open(path: Path) -> None:
    store = SqliteStore(path)
    with pytest.raises(RuntimeError, match="not open"):
        await store.accept([new(1)])
    with pytest.raises(RuntimeError, match="not open"):
        await store.flush()
    await store.close()  # closing a store never opened is fine
    with pytest.raises(ValueError):
        SqliteStore(path, synchronous="EXTRA")


async def test_async_context_manager_and_synchronous_full(path: Path) -> None:
    async with SqliteStore(path, synchronous="FULL", wallclock=Wall()) as store:
        [(mid, _)] = await store.accept([new(1)])
    assert plain_row(path, "SELECT id FROM messages") == [(mid,)]
    assert plain_row(path, "PRAGMA journal_mode") == [("wal",)]


# --- WAL checkpoints -----------------------------------------------------------------------


def _wal_frames(path: Path) -> int:
    """Frames in the WAL file (its header is 32 bytes, each frame 24 + a 4,096-byte page)."""
    wal = path.with_name(path.name + "-wal")
    return max(0, (wal.stat().st_size - 32) // (24 + 4096)) if wal.exists() else 0


async def test_wal_checkpoints_run_beside_the_writer_not_in_its_commits(path: Path) -> None:
    store = SqliteStore(path, wallclock=Wall(), checkpoint_s=0.01)
    await store.open()
    try:
        for round_ in range(40):  # ~3,000 frames and more: past SQLite's automatic 1,000
            await store.accept([new(round_ * 100 + i, text="x" * 3000) for i in range(100)])
        async with asyncio.timeout(30):
            while store.checkpoints == 0:
                await asyncio.sleep(0.01)  # polling the checkpoint thread's counter
        assert store._checkpointer is not None and store._checkpointer.is_alive()
        assert plain_row(path, "SELECT count(*) FROM messages") == [(4000,)]
    finally:
        await store.close()
    assert store._checkpointer is None  # joined on close


async def test_the_writers_commits_do_not_checkpoint(path: Path) -> None:
    store = SqliteStore(path, wallclock=Wall(), checkpoint_s=3600)  # the thread's first round: an hour away
    await store.open()
    try:
        for round_ in range(40):
            await store.accept([new(round_ * 100 + i, text="x" * 3000) for i in range(100)])
        assert store.checkpoints == 0
        assert _wal_frames(path) > 2000  # SQLite's automatic checkpoint (at ~1,000 frames) is off
    finally:
        await store.close()


async def test_without_the_checkpoint_thread_sqlite_checkpoints_in_the_commits(path: Path) -> None:
    store = SqliteStore(path, wallclock=Wall(), checkpoint_s=None)
    await store.open()
    try:
        for round_ in range(40):
            await store.accept([new(round_ * 100 + i, text="x" * 3000) for i in range(100)])
        assert store._checkpointer is None and store.checkpoints == 0
        assert _wal_frames(path) < 2000  # reset by SQLite's automatic checkpoint at ~1,000 frames
    finally:
        await store.close()


async def test_outbox_rows_and_their_outcomes_across_statement_chunks(store: SqliteStore) -> None:
    # 300 rows in one pass: chunks of 256, 16, 16, 4, 4, 4 — every row lands, every sent one leaves
    entries = [(seq, "acme", "result", seq * 10, "http://r/x", b'{"event_id":%d}' % seq, WALL0) for seq in range(1, 301)]
    store.notify(entries)
    await store.flush()
    pending, top = await store.load_outbox()
    assert [row[:7] for row in pending] == entries and top == 300
    outcomes: list[tuple[Any, ...]] = [(seq, "sent", 1, None, "") for seq in range(1, 301) if seq % 7]
    outcomes += [(seq, "retry", 1, WALL0 + 5, "HTTP 503") for seq in range(7, 301, 7)]
    store.notified(outcomes)
    await store.flush()
    pending, top = await store.load_outbox()
    assert [row[0] for row in pending] == list(range(7, 301, 7)) and all(row[7] == 1 for row in pending)
    assert top == 300 and await store.max_outbox_seq() == 300


async def test_accept_then_reports_in_the_pass_that_hears_of_the_commit(path: Path) -> None:
    store = SqliteStore(path, wallclock=Wall())
    with pytest.raises(RuntimeError, match="not open"):  # refused at once, nothing queued
        store.accept_then([new(0)], None, lambda results, exc: None)
    await store.open()
    loop = asyncio.get_running_loop()
    got = loop.create_future()
    store.accept_then([new(0), new(1, client_ref="r"), new(2, client_ref="r")], None, lambda r, e: got.set_result((r, e)))
    results, exc = await got
    assert exc is None and [created for _, created in results] == [True, True, False]
    assert results[1][0] == results[2][0]
    assert sorted(row[0] for row in plain_row(path, "SELECT id FROM messages")) == sorted({mid for mid, _ in results})
    # made inside the call that resolves the commit, not in a pass after it
    passes: list[str] = []
    original = sqlite_module._resolve

    def resolve(done: Any, callbacks: Any) -> None:
        passes.append("resolve")
        original(done, callbacks)
        passes.append("resolved")

    sqlite_module._resolve = resolve
    try:
        second = loop.create_future()
        store.accept_then([new(3)], None, lambda r, e: (passes.append("then"), second.set_result(r)))
        await second
    finally:
        sqlite_module._resolve = original
    assert passes == ["resolve", "then", "resolved"]
    empty = loop.create_future()
    store.accept_then([], None, lambda r, e: empty.set_result(r))
    assert empty.done() and empty.result() == []
    await store.close()
