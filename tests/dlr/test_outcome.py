"""SPEC "Multi-part outcome": every row, the rows SPEC leaves open, missing and late receipts,
and a 5-part message whose receipts arrive in any order."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.dlr import (
    Correlator,
    IdScheme,
    Outcome,
    PartResult,
    late_update,
    merge_part,
    message_outcome,
    parse_receipt,
    part_result,
)
from engine.model import MessageStatus as S
from engine.smpp.constants import MessageState

from ._sim import sim_receipt

D, F, E, M = PartResult.DELIVERED, PartResult.FAILED, PartResult.EXPIRED, None


@pytest.mark.parametrize(
    ("parts", "timed_out", "expected"),
    [
        # SPEC rows
        ([D], False, (S.DELIVERED, 1, 1)),
        ([D] * 5, False, (S.DELIVERED, 5, 5)),
        ([D, D, F], False, (S.PARTIALLY_FAILED, 2, 2)),
        ([D, E, E], False, (S.PARTIALLY_FAILED, 1, 1)),
        ([D, F, E, D], False, (S.PARTIALLY_FAILED, 2, 2)),
        ([F, F], False, (S.UNDELIVERABLE, 0, 0)),
        ([F], False, (S.UNDELIVERABLE, 0, 0)),
        ([E, E], False, (S.EXPIRED, 0, 0)),
        ([E], False, (S.EXPIRED, 0, 0)),
        ([D, M, D], True, (S.INDEFINITE, 0, 2)),
        ([M, M], True, (S.INDEFINITE, 0, 0)),
        ([M], True, (S.INDEFINITE, 0, 0)),
        # decided here (see engine/dlr/outcome.py)
        ([F, E], False, (S.UNDELIVERABLE, 0, 0)),  # failed + expired, none delivered
        ([D, F, M], True, (S.PARTIALLY_FAILED, 1, 1)),  # missing + failed + delivered
        ([D, E, M, M], True, (S.PARTIALLY_FAILED, 1, 1)),
        ([F, M], True, (S.UNDELIVERABLE, 0, 0)),  # missing + failed, none delivered
        ([E, M], True, (S.EXPIRED, 0, 0)),
        ([E, F, M], True, (S.UNDELIVERABLE, 0, 0)),
        # not final before the timeout
        ([D, M], False, (None, 0, 1)),
        ([D, F, M], False, (None, 0, 1)),
        ([M, M, M], False, (None, 0, 0)),
        # the timeout changes nothing once every part reported
        ([D, D], True, (S.DELIVERED, 2, 2)),
        ([D, F], True, (S.PARTIALLY_FAILED, 1, 1)),
    ],
)
def test_rows(parts, timed_out, expected):
    assert message_outcome(parts, timed_out) == Outcome(*expected)


def test_plain_strings_accepted():
    assert message_outcome(["delivered", "failed", None], True) == (S.PARTIALLY_FAILED, 1, 1)


@pytest.mark.parametrize("bad", [[], ["sent"], [1]])
def test_misuse_raises(bad):
    with pytest.raises(ValueError):
        message_outcome(bad)


@given(parts=st.lists(st.sampled_from([D, F, E, M]), min_size=1, max_size=12), timed_out=st.booleans(), data=st.data())
def test_invariants(parts, timed_out, data):
    o = message_outcome(parts, timed_out)
    shuffled = data.draw(st.permutations(parts))
    assert message_outcome(shuffled, timed_out) == o  # order of parts is irrelevant
    d = parts.count(D)
    assert o.delivered_parts == d
    assert o.billable_parts == (d if o.status in (S.DELIVERED, S.PARTIALLY_FAILED) else 0)
    assert (o.status is None) == (M in parts and not timed_out)
    if o.status is S.DELIVERED:
        assert d == len(parts)
    if o.status is S.INDEFINITE:
        assert F not in parts and E not in parts and M in parts


# --- late receipts -----------------------------------------------------------------------


def test_late_receipt_indefinite_to_delivered():
    parts = [D, D, D, D, M]
    assert message_outcome(parts, True) == (S.INDEFINITE, 0, 4)
    parts[4] = D
    assert late_update(S.INDEFINITE, parts, 0) == Outcome(S.DELIVERED, 5, 5)


def test_late_receipt_indefinite_to_partially_failed():
    parts = [D, D, M]
    parts[2] = F
    assert late_update("indefinite", parts, 0) == Outcome(S.PARTIALLY_FAILED, 2, 2)


def test_late_receipt_indefinite_to_undeliverable_or_expired():
    assert late_update(S.INDEFINITE, [F], 0) == Outcome(S.UNDELIVERABLE, 0, 0)
    assert late_update(S.INDEFINITE, [E, E], 0) == Outcome(S.EXPIRED, 0, 0)


def test_late_receipt_that_changes_nothing():
    assert late_update(S.INDEFINITE, [D, D, M], 0) is None  # still missing one, none failed
    assert late_update(S.PARTIALLY_FAILED, [D, F, D], 2) is None  # a duplicate


def test_late_receipt_adds_billable_parts():
    # at the timeout: [D, F, M] → partially_failed, 1 billable; the missing part arrives delivered
    assert late_update(S.PARTIALLY_FAILED, [D, F, D], 1) == Outcome(S.PARTIALLY_FAILED, 2, 2)
    # undeliverable with a missing part → partially_failed when it turns out delivered
    assert late_update(S.UNDELIVERABLE, [F, D], 0) == Outcome(S.PARTIALLY_FAILED, 1, 1)


def test_late_update_before_anything_final():
    assert late_update(None, [D, M], 0, timed_out=False) is None
    assert late_update(S.SUBMITTED, [D, D], 0) == Outcome(S.DELIVERED, 2, 2)


def test_part_result_from_receipts():
    expected = {
        MessageState.ENROUTE: None,
        MessageState.DELIVERED: D,
        MessageState.EXPIRED: E,
        MessageState.DELETED: F,
        MessageState.UNDELIVERABLE: F,
        MessageState.ACCEPTED: None,
        MessageState.UNKNOWN: None,  # not final: the part stays open until the timeout
        MessageState.REJECTED: F,
    }
    for state, result in expected.items():
        r = parse_receipt(sim_receipt("1", state=int(state)))
        assert r is not None and part_result(r) is result


def test_merge_part_first_final_stands():
    assert merge_part(None, D) is D
    assert merge_part(F, D) is F
    assert merge_part(D, None) is D


# --- a 5-part message, receipts in any order, some before their response ---------------------

_states = st.sampled_from([MessageState.DELIVERED, MessageState.UNDELIVERABLE, MessageState.EXPIRED, MessageState.REJECTED, None])


@given(
    fates=st.lists(_states, min_size=5, max_size=5),
    data=st.data(),
)
def test_five_parts_any_order(fates, data):
    """Responses (hex ids) and receipts (decimal text ids, via our simulator's format) interleave
    in any order; the outcome equals the table applied to the parts' fates."""
    base = 1763700000123456
    c = Correlator(schemes={"au": IdScheme(response="hex", receipt_text="decimal")})
    events = [("resp", i) for i in range(5)]
    events += [("rcpt", i) for i, fate in enumerate(fates) if fate is not None]
    if fates[0] is not None:
        events.append(("rcpt_enroute", 0))
    events = data.draw(st.permutations(events))
    parts: list[PartResult | None] = [None] * 5

    def apply(ref, r):
        parts[ref] = merge_part(parts[ref], part_result(r))

    now = 0.0
    for kind, i in events:
        now += 0.01
        if kind == "resp":
            for r in c.register("au", "%x" % (base + i), i, now):
                apply(i, r)
        else:
            state = MessageState.ENROUTE if kind == "rcpt_enroute" else fates[i]
            r = parse_receipt(sim_receipt("%x" % (base + i), n=base + i, style="decimal", state=int(state)))
            # drop the TLV: only the decimal text id can correlate
            r = msgspec.structs.replace(r, tlv_id=None, message_id=r.text_id)
            ref = c.match("au", r, now)
            if ref is not None:
                apply(ref, r)
    assert c.expire(now + 3600.0) == []
    want = [None if f is None else D if f == MessageState.DELIVERED else E if f == MessageState.EXPIRED else F for f in fates]
    assert parts == want
    complete = None not in want
    out = message_outcome(parts, timed_out=not complete)
    d = want.count(D)
    if complete and d == 5:
        assert out == (S.DELIVERED, 5, 5)
    elif d and (F in want or E in want):
        assert out == (S.PARTIALLY_FAILED, d, d)
    elif None in want and F not in want and E not in want:
        assert out == (S.INDEFINITE, 0, d)
    elif d == 0 and all(p in (E, None) for p in want):
        assert out == (S.EXPIRED, 0, 0)
    else:
        assert out == (S.UNDELIVERABLE, 0, 0)
