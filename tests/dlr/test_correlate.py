"""Correlator: receipt before response, late receipts, orphans, bounds, memory per entry."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.dlr import (
    Correlator,
    CorrelatorConfig,
    IdScheme,
    Orphan,
    Receipt,
    parse_receipt,
)

from ._sim import sim_receipt

AU = "au"


def rcpt(text_id: str | None = None, tlv: str | None = None, state: int = 2) -> Receipt:
    return Receipt(
        message_id=tlv or text_id or "", tlv_id=tlv, text_id=text_id, state=state, final=state in (2, 3, 4, 5, 8), delivered=state == 2
    )


def corr(**cfg) -> Correlator:
    return Correlator(CorrelatorConfig(**cfg), schemes={AU: IdScheme(response="hex"), "docomo": IdScheme(response="decimal")})


def test_response_then_receipt():
    c = corr()
    assert c.register(AU, "16fee0e525", ("m1", 0), 0.0) == []
    assert c.match(AU, rcpt("98765432101"), 1.0) == ("m1", 0)
    assert c.match(AU, rcpt(tlv="16FEE0E525"), 1.0) == ("m1", 0)
    s = c.stats()
    assert s["matched"] == 2 and s["registered"] == 1 and s["pending"] == 0


def test_simulator_receipt_end_to_end():
    c = corr()
    c.register("docomo", "1763700000123456", "ref", 0.0)
    r = parse_receipt(sim_receipt("1763700000123456"))
    assert r is not None and c.match("docomo", r, 0.5) == "ref"


def test_receipt_before_response_is_held_then_returned():
    c = corr()
    enroute = rcpt("98765432101", state=1)
    final = rcpt("98765432101", state=2)
    assert c.match(AU, enroute, 0.0) is None
    assert c.match(AU, final, 0.1) is None
    assert c.stats()["pending"] == 2
    assert c.register(AU, "16fee0e525", "ref", 0.2) == [enroute, final]  # in arrival order
    s = c.stats()
    assert (s["pending"], s["held"], s["released"]) == (0, 2, 2)
    assert c.expire(1000.0) == []  # nothing left to orphan
    assert c.match(AU, final, 0.3) == "ref"


def test_held_under_several_keys_is_removed_from_all():
    c = Correlator(default_scheme=IdScheme(response="string"))
    r = rcpt("98765432101")  # no TLV, auto: three readings
    assert len(IdScheme().receipt_keys(r)) == 3
    assert c.match("x", r, 0.0) is None
    assert c.register("x", "16FEE0E525", "ref", 0.1) == [r]
    assert c._carriers["x"].pending == {}
    assert c.stats()["pending"] == 0


def test_orphans_expire_into_the_ring_and_are_counted():
    c = corr(pending_ttl=10.0, orphan_ring=3)
    receipts = [rcpt(str(i)) for i in range(5)]
    for i, r in enumerate(receipts):
        assert c.match(AU, r, float(i)) is None
    assert c.expire(9.9) == []
    out = c.expire(11.0)  # receipts 0 and 1 (held at 0 and 1) are past 10 s
    assert [o.receipt for o in out] == receipts[:2]
    assert all(isinstance(o, Orphan) and o.carrier == AU and o.reason == "expired" and o.at == 11.0 for o in out)
    assert c.expire(100.0)[-1].receipt is receipts[-1]
    s = c.stats()
    assert (s["orphans"], s["orphans_expired"], s["pending"], s["orphan_ring"]) == (5, 5, 0, 3)
    assert [o.receipt for o in c.orphans()] == receipts[2:]  # newest kept
    assert c.register(AU, "0", "late", 101.0) == []  # an orphan is not handed back


def test_pending_bound_evicts_oldest_as_orphans():
    c = corr(max_pending=5)
    receipts = [rcpt(str(1000 + i)) for i in range(8)]
    for r in receipts:
        c.match(AU, r, 0.0)
    s = c.stats()
    assert (s["pending"], s["orphans_evicted"]) == (5, 3)
    out = c.expire(1.0)  # evicted ones are reported at the next expire
    assert [o.receipt for o in out] == receipts[:3] and {o.reason for o in out} == {"evicted"}
    assert c.register(AU, "%x" % 1007, "r", 1.0) == [receipts[7]]


def test_receipt_without_id_is_an_orphan_at_once():
    c = corr()
    r = rcpt(None, state=5)
    assert c.match(AU, r, 3.0) is None
    assert c.stats()["orphans_no_id"] == 1 and c.stats()["pending"] == 0
    assert c.expire(3.0) == [Orphan(AU, r, "no_id", 3.0)]
    assert c.expire(4.0) == []


def test_registered_bound_evicts_oldest():
    c = corr(max_registered=3)
    for i in range(5):
        c.register(AU, "%x" % i, i, float(i))
    assert c.stats()["registered"] == 3 and c.stats()["registered_evicted"] == 2
    assert c.lookup(AU, "0") is None and c.lookup(AU, "1") is None and c.lookup(AU, "4") == 4


def test_late_receipt_window():
    """An indefinite message's ids stay registered for registered_ttl: a late receipt still matches."""
    c = corr(registered_ttl=86400.0)
    c.register(AU, "abc", "ref", 0.0)
    c.expire(3600.0)  # the receipt timeout passed long ago; the id is kept
    assert c.match(AU, rcpt(tlv="ABC"), 7200.0) == "ref"
    c.expire(86400.0)
    assert c.lookup(AU, "abc") is None and c.stats()["registered_expired"] == 1
    assert c.match(AU, rcpt(tlv="abc"), 86401.0) is None  # now held, then an orphan


def test_forget_lingers_for_duplicates():
    c = corr(linger=60.0)
    c.register(AU, "abc", "ref", 0.0)
    assert c.forget(AU, "ABC", now=1.0) is True
    assert c.stats()["registered"] == 0 and c.stats()["lingering"] == 1
    assert c.match(AU, rcpt(tlv="abc"), 30.0) == "ref"  # a duplicate (lost deliver_sm_resp)
    assert c.stats()["matched_lingering"] == 1
    c.expire(61.0)
    assert c.stats()["lingering"] == 0
    assert c.match(AU, rcpt(tlv="abc"), 62.0) is None
    assert c.forget(AU, "nope") is False


def test_a_lingering_id_can_stand_for_a_marker_instead_of_its_ref():
    c = corr(linger=60.0)
    big = {"a finished message": "x" * 1000}
    c.register(AU, "abc", big, 0.0)
    assert c.forget(AU, "abc", now=1.0, linger_ref="done") is True
    assert c.match(AU, rcpt(tlv="abc"), 30.0) == "done"  # the registered ref is no longer held
    assert c.lookup(AU, "abc") == "done"


def test_forget_without_now_is_immediate():
    c = corr()
    c.register(AU, "abc", "ref", 0.0)
    assert c.forget(AU, "abc")
    assert c.stats()["lingering"] == 0 and c.match(AU, rcpt(tlv="abc"), 1.0) is None


def test_lingering_bound():
    c = corr(max_lingering=2)
    for i in range(4):
        c.register(AU, "%x" % i, i, 0.0)
        c.forget(AU, "%x" % i, now=0.0)
    assert c.stats()["lingering"] == 2 and c.stats()["lingering_evicted"] == 2


def test_reregistered_id_replaces():
    c = corr()
    c.register(AU, "abc", "old", 0.0)
    c.forget(AU, "abc", now=0.5)
    c.register(AU, "abc", "new", 1.0)
    c.register(AU, "ABC", "newer", 2.0)
    assert c.match(AU, rcpt(tlv="abc"), 3.0) == "newer"
    assert c.stats()["replaced"] == 1 and c.stats()["lingering"] == 0


def test_carriers_do_not_mix():
    c = corr()
    c.register(AU, "10", "au-ref", 0.0)  # hex 16
    c.register("docomo", "10", "docomo-ref", 0.0)
    assert c.match(AU, rcpt(tlv="10"), 1.0) == "au-ref"
    assert c.match("docomo", rcpt(tlv="10"), 1.0) == "docomo-ref"
    assert c.match("rakuten", rcpt(tlv="10"), 1.0) is None


def test_empty_ids_and_none_refs():
    c = corr()
    assert c.register(AU, "  ", "ref", 0.0) == [] and c.stats()["empty_ids"] == 1
    with pytest.raises(ValueError):
        c.register(AU, "abc", None, 0.0)


def test_config_validated():
    with pytest.raises(ValueError):
        CorrelatorConfig(max_pending=0)
    with pytest.raises(ValueError):
        CorrelatorConfig(pending_ttl=-1.0)


def test_internal_queue_stays_bounded_without_expire():
    c = corr(max_pending=10)
    for i in range(1000):
        c.match(AU, rcpt(tlv="%x" % i), 0.0)
        assert c.register(AU, "%x" % i, i, 0.0) != []
    assert len(c._queue) <= 2 * 10 + 64 and c.stats()["pending"] == 0


@settings(max_examples=150)
@given(
    plan=st.lists(st.tuples(st.booleans(), st.integers(0, 3)), min_size=1, max_size=25),
    order=st.randoms(use_true_random=False),
)
def test_every_receipt_accounted_for(plan, order):
    """Responses and receipts in any interleaving: every receipt is matched, handed back by
    register, or reported as an orphan — exactly once."""
    c = corr(pending_ttl=5.0)
    events = []
    for i, (has_response, n_receipts) in enumerate(plan):
        if has_response:
            events.append(("resp", i))
        events.extend(("rcpt", i) for _ in range(n_receipts))
    order.shuffle(events)
    delivered: dict[int, int] = {}
    now = 0.0
    total = 0
    for kind, i in events:
        now += 0.1
        if kind == "resp":
            for r in c.register(AU, "%X" % (0xA000 + i), i, now):
                assert int(r.text_id) == 0xA000 + i
                delivered[i] = delivered.get(i, 0) + 1
        else:
            total += 1
            ref = c.match(AU, rcpt(str(0xA000 + i)), now)  # decimal text id, hex response
            if ref is not None:
                assert ref == i
                delivered[i] = delivered.get(i, 0) + 1
    orphans = c.expire(now + 5.0)
    assert sum(delivered.values()) + len(orphans) == total
    for o in orphans:
        assert not plan[int(o.receipt.text_id) - 0xA000][0]  # only receipts with no response
    s = c.stats()
    assert s["matched"] + s["released"] + s["orphans"] == total and s["pending"] == 0


# --- memory per entry (the figures in engine/dlr/correlate.py's docstring) -------------------


def _measure(fn) -> int:
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        keep = fn()
        after = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    del keep
    return sum(s.size_diff for s in after.compare_to(before, "filename"))


def test_bytes_per_entry():
    n = 5000
    c = Correlator(default_scheme=IdScheme(response="decimal"))
    c.register("d", "1", 1, 0.0)
    ids = [str(1763700000123456 + i) for i in range(n)]  # strings made outside: counted below as ~65 bytes each
    refs = list(range(10**6, 10**6 + n))
    per_reg = _measure(lambda: [c.register("d", ids[i], refs[i], 0.0) for i in range(n)] and None) / n
    receipts = [parse_receipt(sim_receipt(str(2763700000123456 + i))) for i in range(n)]
    c2 = Correlator(default_scheme=IdScheme(response="decimal"))
    per_held = _measure(lambda: [c2.match("d", r, 0.0) for r in receipts] and None) / n
    per_receipt = _measure(lambda: [parse_receipt(sim_receipt(str(3763700000123456 + i))) for i in range(n)]) / n
    print(f"registered id: {per_reg:.0f} B + id string; held receipt: {per_held:.0f} B + Receipt {per_receipt:.0f} B")
    assert per_reg < 300
    assert per_held < 1000
    assert per_receipt < 1100
