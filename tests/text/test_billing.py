"""Seed billing tables, every length 1..limit on each carrier, and the limits."""

from __future__ import annotations

import bisect

import pytest

from engine.text import PROFILES, TextError, plan

# Upper bound of each billing unit, straight from the seeds (SPEC.md / DOMAIN.md §4.1).
UPPER_BOUNDS = {
    "au": [70, 134, 201, 268, 335, 402, 469, 536, 603, 670],
    "rakuten": [70, 134, 201, 268, 335, 402, 469, 536, 603, 660],
    "docomo": [70, 132, 198, 264, 330, 396, 462, 528, 594, 660],
    "softbank": [670],
}
LIMITS = {"au": 670, "docomo": 660, "softbank": 670, "rakuten": 660}


def seed_units(carrier: str, n: int) -> int:
    return bisect.bisect_left(UPPER_BOUNDS[carrier], n) + 1


@pytest.mark.parametrize("carrier", sorted(LIMITS))
@pytest.mark.parametrize("char", [pytest.param("あ", id="fullwidth"), pytest.param("a", id="halfwidth")])
def test_billing_table_every_length(carrier, char):
    """Full and half width count alike: every length 1..limit bills exactly as the seed table."""
    for n in range(1, LIMITS[carrier] + 1):
        p = plan(char * n, carrier)
        assert p.characters == n
        assert p.billing_units == seed_units(carrier, n), (carrier, n)
        assert p.bytes == 2 * n


@pytest.mark.parametrize("carrier", sorted(LIMITS))
def test_limit_is_exact_and_over_limit_is_an_error(carrier):
    limit = LIMITS[carrier]
    assert PROFILES[carrier].max_characters == limit
    assert plan("漢" * limit, carrier).characters == limit
    with pytest.raises(TextError) as ei:
        plan("漢" * (limit + 1), carrier)
    err = ei.value
    assert err.reason == "too_long"
    assert (err.carrier, err.limit, err.count) == (carrier, limit, limit + 1)
    msg = str(err)
    assert carrier in msg and str(limit) in msg and str(limit + 1) in msg


@pytest.mark.parametrize(
    ("carrier", "n", "units"),
    [
        ("au", 70, 1), ("au", 71, 2), ("au", 134, 2), ("au", 135, 3), ("au", 201, 3),
        ("au", 603, 9), ("au", 604, 10), ("au", 670, 10),
        ("rakuten", 603, 9), ("rakuten", 604, 10), ("rakuten", 660, 10),
        ("docomo", 70, 1), ("docomo", 71, 2), ("docomo", 132, 2), ("docomo", 133, 3),
        ("docomo", 198, 3), ("docomo", 594, 9), ("docomo", 595, 10), ("docomo", 660, 10),
        ("softbank", 1, 1), ("softbank", 71, 1), ("softbank", 670, 1),
    ],
)
def test_billing_endpoints(carrier, n, units):
    assert plan("ア" * n, carrier).billing_units == units


def test_billing_counts_emoji_and_newlines_as_wire_units():
    # 35 emoji = 70 units -> 1; 36 emoji = 72 units -> 2 (au)
    assert plan("😀" * 35, "au").billing_units == 1
    assert plan("😀" * 36, "au").billing_units == 2
    # au: 69 chars + 1 newline = 71 units -> 2 units; rakuten: 70 units -> 1
    text = "あ" * 34 + "\n" + "あ" * 35
    assert plan(text, "au").billing_units == 2
    assert plan(text, "rakuten").billing_units == 1


def test_generic_bills_per_part():
    assert plan("a" * 160, "generic").billing_units == 1
    assert plan("a" * 161, "generic").billing_units == 2
    assert plan("a" * 153 * 3, "generic").billing_units == 3
    assert plan("あ" * 70, "generic").billing_units == 1
    assert plan("あ" * 71, "generic").billing_units == 2
