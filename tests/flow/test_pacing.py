"""The au pacing gate on virtual time: ``now`` values passed in, exact send times asserted."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.flow.pacing import Pacer

A = "+819011110001"
B = "+819022220002"
C = "+818033330003"


def test_first_message_goes_at_once_and_blocks_while_in_flight():
    p = Pacer(12.0)
    assert p.offer(A, "a1", 0.0) is True
    assert p.is_in_flight(A)
    assert p.offer(A, "a2", 1000.0) is False  # no end yet: blocked however long
    assert p.next_due() is None  # nothing becomes free by time alone
    assert p.release(10_000.0) == []
    assert (p.in_flight, p.parked, p.numbers_waiting) == (1, 1, 1)


def test_exact_not_before_is_end_plus_interval():
    p = Pacer(12.0)
    assert p.offer(A, "a1", 0.0)
    p.ended(A, 3.5)
    assert p.not_before(A) == 15.5
    assert not p.is_in_flight(A)
    assert p.offer(A, "a2", 15.4) is False
    assert p.next_due() == 15.5
    assert p.release(15.499) == []
    assert p.release(15.5) == ["a2"]
    assert p.is_in_flight(A)
    assert p.offer(A, "a3", 15.5) is False  # a2 in flight now


def test_offer_exactly_at_not_before_goes_at_once():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    p.ended(A, 1.0)
    assert p.offer(A, "a2", 12.999) is False
    p2 = Pacer(12.0)
    p2.offer(A, "a1", 0.0)
    p2.ended(A, 1.0)
    assert p2.offer(A, "a2", 13.0) is True


def test_paced_number_never_blocks_others():
    p = Pacer(12.0)
    assert p.offer(A, "a1", 0.0)
    for i in range(50):  # a backlog on A
        assert p.offer(A, f"a{i + 2}", 0.1) is False
    assert p.offer(B, "b1", 0.2) is True  # B is not behind A
    p.ended(B, 0.5)
    assert p.offer(C, "c1", 0.6) is True
    assert p.release(12.5) == []  # B has nothing parked
    assert p.offer(B, "b2", 12.5) is True  # B free at 12.5, A still in flight
    p.ended(A, 20.0)
    p.ended(B, 13.0)
    assert p.offer(B, "b3", 14.0) is False
    assert p.next_due() == 25.0  # B's not-before comes first
    assert p.release(25.0) == ["b3"]
    assert p.release(31.999) == []
    assert p.release(32.0) == ["a2"]


def test_fifo_per_number_one_at_a_time():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    for name in ("a2", "a3", "a4"):
        assert p.offer(A, name, 0.0) is False
    sent = []
    now = 0.0
    for _ in range(3):
        now += 1.0
        p.ended(A, now)  # the in-flight one got its receipt
        now += 12.0
        out = p.release(now)
        assert len(out) == 1  # at most one per number per release
        sent += out
    assert sent == ["a2", "a3", "a4"]


def test_new_offer_for_free_number_queues_behind_parked_items():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    p.offer(A, "a2", 0.0)
    p.ended(A, 0.0)
    assert p.offer(A, "a3", 12.0) is False  # a2 is due but not yet released: a3 goes behind it
    assert p.release(12.0) == ["a2"]


@pytest.mark.parametrize("cause", ["final_receipt", "receipt_timeout", "connection_lost"])
def test_message_ends_by_receipt_timeout_or_loss(cause):
    """The caller calls ``ended`` at the moment its case happens; the clock runs from then."""
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    p.offer(A, "a2", 0.0)
    when = {"final_receipt": 4.0, "receipt_timeout": 60.0, "connection_lost": 0.7}[cause]
    assert p.release(when) == []
    p.ended(A, when)
    assert p.next_due() == when + 12.0
    assert p.release(when + 12.0) == ["a2"]


def test_multi_part_message_is_one_message_to_the_pacer():
    """Three parts, three receipts: the caller ends the message at the last one."""
    p = Pacer(12.0)
    assert p.offer(A, "long", 0.0)
    assert p.offer(A, "next", 0.0) is False
    receipts = {1: 2.0, 2: 2.5, 3: 4.25}
    p.ended(A, max(receipts.values()))
    assert p.next_due() == 16.25
    assert p.release(16.25) == ["next"]


def test_orphan_receipt_pushes_the_clock():
    p = Pacer(12.0)
    p.push(A, 5.0)  # a receipt for a message we lost track of
    assert p.offer(A, "a1", 16.9) is False
    assert p.release(17.0) == ["a1"]
    # ended() with nothing in flight does the same
    p2 = Pacer(12.0)
    p2.ended(B, 5.0)
    assert p2.offer(B, "b1", 16.9) is False
    assert p2.next_due() == 17.0
    assert p2.stats()["ended_not_in_flight"] == 1


def test_push_never_shortens_and_keeps_in_flight():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    p.ended(A, 10.0)  # not before 22
    p.push(A, 1.0)  # an older receipt: 13 < 22, no change
    assert p.not_before(A) == 22.0
    p.push(A, 11.0)  # later: 23
    assert p.not_before(A) == 23.0
    assert p.offer(A, "a2", 23.0)
    p.push(A, 24.0)  # late receipt of something else while a2 is in flight
    assert p.is_in_flight(A)
    assert p.offer(A, "a3", 100.0) is False
    p.ended(A, 30.0)
    assert p.next_due() == 42.0


def test_push_on_waiting_number_moves_its_release():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    p.ended(A, 1.0)
    p.offer(A, "a2", 2.0)
    assert p.next_due() == 13.0
    p.push(A, 5.0)
    assert p.next_due() == 17.0
    assert p.release(13.0) == []
    assert p.release(17.0) == ["a2"]


def test_state_expires_once_wait_has_passed():
    p = Pacer(12.0, tick=1.0)
    for i in range(1000):
        n = f"+8190{i:08d}"
        assert p.offer(n, i, 0.0)
        p.ended(n, 1.0)
    assert p.tracked == 1000
    assert p.expire(12.9) == 0  # still waiting (not before 13)
    assert p.tracked == 1000
    p.release(14.0)  # release sweeps too
    assert p.tracked == 0
    assert p.stats()["expired"] == 1000
    assert p.stats()["expiry_refs"] == 0


def test_state_kept_while_parked_or_in_flight():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    p.ended(A, 0.0)
    p.offer(A, "a2", 1.0)  # parked
    p.offer(B, "b1", 0.0)  # in flight
    p.push(B, 0.0)
    assert p.expire(100.0) == 0
    assert p.not_before(A) == 12.0  # kept: release will take a2
    assert p.is_in_flight(B)  # in flight blocks regardless of expiry
    assert p.release(100.0) == ["a2"]
    assert p.offer(B, "b2", 100.0) is False


def test_cancel_parked_item_and_state_still_expires():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    x, y = object(), object()
    p.offer(A, x, 0.0)
    p.offer(A, y, 0.0)
    p.ended(A, 0.0)
    assert p.cancel(A, x) is True
    assert p.cancel(A, x) is False
    assert p.cancel(B, x) is False
    assert p.parked == 1
    assert p.expire(50.0) == 0  # A still has y parked, and is due
    assert p.cancel(A, y) is True
    assert p.numbers_waiting == 0 and p.parked == 0
    assert p.next_due() is None
    assert p.expire(51.0) == 1
    assert p.tracked == 0


def test_cancel_compares_identity_not_equality():
    p = Pacer(12.0)
    p.offer(A, "first", 0.0)
    one, two = [1], [1]
    p.offer(A, one, 0.0)
    p.offer(A, two, 0.0)
    assert p.cancel(A, two)
    p.ended(A, 0.0)
    assert p.release(12.0)[0] is one


def test_release_limit_leaves_the_rest_due():
    p = Pacer(12.0)
    numbers = [f"+8170{i:08d}" for i in range(5)]
    for i, n in enumerate(numbers):
        p.offer(n, f"{i}-1", 0.0)
        p.offer(n, f"{i}-2", 0.0)
        p.ended(n, float(i))
    assert p.release(100.0, limit=2) == ["0-2", "1-2"]  # earliest not-before first
    assert p.next_due() == 14.0
    assert p.release(100.0) == ["2-2", "3-2", "4-2"]


def test_snapshot_restore_round_trip():
    p = Pacer(12.0)
    p.offer(A, "a1", 100.0)
    p.ended(A, 101.0)  # not before 113
    p.offer(B, "b1", 100.0)
    p.ended(B, 104.5)  # not before 116.5
    p.offer(C, "c1", 50.0)
    p.ended(C, 50.0)  # past
    snap = dict(p.snapshot(105.0))
    assert snap == {A: 8.0, B: 11.5}
    # the caller stores wall-clock deadlines, then restarts on a new monotonic origin
    wall_saved = 1_700_000_000.0
    stored = {n: wall_saved + left for n, left in snap.items()}
    wall_restart = wall_saved + 3.0
    q = Pacer(12.0)
    q.restore([(n, dl - wall_restart) for n, dl in stored.items()], now=7.0, in_flight=[C])
    assert q.not_before(A) == pytest.approx(12.0)
    assert q.not_before(B) == pytest.approx(15.5)
    assert q.offer(A, "a2", 11.9) is False
    assert q.release(12.0 + 1e-9) == ["a2"]
    assert q.offer(C, "c2", 1000.0) is False  # in flight at crash time: blocked until its end is known
    q.ended(C, 1000.0)
    assert q.release(1012.0) == ["c2"]


def test_restore_ignores_passed_entries_and_keeps_later_not_before():
    p = Pacer(12.0)
    p.offer(A, "a1", 0.0)
    p.ended(A, 10.0)  # 22
    p.restore([(A, 5.0), (B, 0.0), (C, -3.0)], now=10.0)
    assert p.not_before(A) == 22.0
    assert p.not_before(B) is None and p.not_before(C) is None


def test_snapshot_offsets_survive_json():
    import json

    p = Pacer(12.0)
    p.ended(A, 0.0)
    entries = json.loads(json.dumps(p.snapshot(2.0)))
    q = Pacer(12.0)
    q.restore(entries, 0.0)
    assert q.not_before(A) == 10.0


@pytest.mark.parametrize("interval", [None, 0, 0.0])
def test_disabled_pacing_is_always_ready(interval):
    p = Pacer(interval)
    assert not p.enabled
    assert all(p.offer(A, i, 0.0) for i in range(5))
    p.ended(A, 0.0)
    p.push(A, 0.0)
    assert p.offer(A, "x", 0.0)
    assert p.release(100.0) == [] and p.next_due() is None
    assert p.tracked == 0 and p.in_flight == 0


def test_configurable_interval():
    p = Pacer(2.5)
    p.offer(A, 1, 0.0)
    p.offer(A, 2, 0.0)
    p.ended(A, 1.0)
    assert p.release(3.5) == [2]


def test_rejects_bad_configuration():
    with pytest.raises(ValueError):
        Pacer(-1.0)
    with pytest.raises(ValueError):
        Pacer(12.0, tick=0)


@pytest.mark.parametrize("compact", [True, False])
def test_key_forms(compact):
    p = Pacer(12.0, compact_keys=compact)
    for n in (A, "alias-not-e164", "+0123", "+８１９０"):
        assert p.offer(n, 1, 0.0)
        p.ended(n, 0.0)
    assert sorted(n for n, _ in p.snapshot(1.0)) == sorted([A, "alias-not-e164", "+0123", "+８１９０"])


def test_stats_and_repr():
    p = Pacer(12.0)
    p.offer(A, 1, 0.0)
    p.offer(A, 2, 0.0)
    s = p.stats()
    assert s["offered"] == 2 and s["sent_at_once"] == 1 and s["parked"] == 1 and s["in_flight"] == 1
    assert "parked=1" in repr(p)


# -- properties ---------------------------------------------------------------------------

NUMBERS = [A, B, C, "+817044440004"]
INTERVAL = 12.0

op = st.one_of(
    st.tuples(st.just("advance"), st.sampled_from([0.0, 0.25, 1.0, 5.0, 11.75, 12.0, 12.25, 40.0])),
    st.tuples(st.just("offer"), st.sampled_from(NUMBERS)),
    st.tuples(st.just("end"), st.sampled_from(NUMBERS)),  # receipt, timeout or loss; orphan if nothing in flight
    st.tuples(st.just("push"), st.sampled_from(NUMBERS)),
    st.tuples(st.just("release"), st.sampled_from([None, 1, 2])),
    st.tuples(st.just("cancel"), st.sampled_from(NUMBERS)),
)


@settings(max_examples=300)
@given(ops=st.lists(op, max_size=80), tick=st.sampled_from([1.0, 0.3, 7.0]), compact=st.booleans())
def test_random_interleavings_keep_the_rule_and_never_starve(ops, tick, compact):
    p: Pacer[tuple[str, int]] = Pacer(INTERVAL, tick=tick, compact_keys=compact)
    now = 0.0
    not_before: dict[str, float] = {}  # the model's clock per number
    in_flight: set[str] = set()
    queues: dict[str, list[tuple[str, int]]] = {n: [] for n in NUMBERS}
    sent: dict[str, list[int]] = {n: [] for n in NUMBERS}
    seq = 0

    def send(item: tuple[str, int]) -> None:
        number, i = item
        assert number not in in_flight, "two messages in flight to one number"
        assert now >= not_before.get(number, -1.0), f"{number} sent {not_before[number] - now}s early"
        assert queues[number] and queues[number][0] == item, "not FIFO"
        queues[number].pop(0)
        in_flight.add(number)
        sent[number].append(i)

    for kind, arg in ops:
        if kind == "advance":
            now += arg
        elif kind == "offer":
            seq += 1
            item = (arg, seq)
            queues[arg].append(item)
            free = arg not in in_flight and now >= not_before.get(arg, -1.0) and len(queues[arg]) == 1
            ok = p.offer(arg, item, now)
            assert ok == free, "a free number must go at once, a blocked one must wait"
            if ok:
                send(item)
        elif kind in ("end", "push"):
            if kind == "end":
                p.ended(arg, now)
                in_flight.discard(arg)
            else:
                p.push(arg, now)
            not_before[arg] = max(not_before.get(arg, -1.0), now + INTERVAL)
        elif kind == "release":
            for item in p.release(now, arg):
                send(item)
            if arg is None:  # nothing that is free stays parked
                for n in NUMBERS:
                    if queues[n] and n not in in_flight:
                        assert not_before.get(n, -1.0) > now, f"{n} starved"
        elif kind == "cancel" and queues[arg]:
            assert p.cancel(arg, queues[arg].pop())  # the newest one
        # invariants after every step
        assert p.parked == sum(map(len, queues.values()))
        assert p.in_flight == len(in_flight)
        due = [not_before.get(n, -1.0) for n in NUMBERS if queues[n] and n not in in_flight]
        assert p.next_due() == (min(due) if due else None)
        for n in NUMBERS:  # no message skipped, order kept
            assert sent[n] == sorted(sent[n])

    # drain: end everything and let time run; every parked item goes, state empties
    for _ in range(len(ops) + 1):
        for n in list(in_flight):
            p.ended(n, now)
            in_flight.discard(n)
            not_before[n] = max(not_before.get(n, -1.0), now + INTERVAL)
        now += INTERVAL
        for item in p.release(now):
            send(item)
    assert not any(queues.values())
    for n in list(in_flight):
        p.ended(n, now)
    p.expire(now + INTERVAL + 2 * tick)
    assert p.tracked == 0 and p.stats()["expiry_refs"] == 0
