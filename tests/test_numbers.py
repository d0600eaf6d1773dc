"""Number normalisation, SMPP address forms and the carrier lookup."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.numbers import (
    CARRIERS,
    SMS_PREFIXES,
    CarrierLookup,
    LookupProblem,
    NumberError,
    from_smpp,
    normalize,
    to_smpp,
)

E = "+819012345678"


@pytest.mark.parametrize(
    "text",
    [
        "+819012345678",
        "+81 90-1234-5678",
        "+81 90 1234 5678",
        "+81-90-1234-5678",
        "+81 (0)90-1234-5678",  # the trunk 0 written in parentheses
        "+81090-1234-5678",
        "090-1234-5678",
        "09012345678",
        "090.1234.5678",
        "(090) 1234-5678",
        "819012345678",  # SMPP / CPaaS form: 81 without +
        "81-90-1234-5678",
        "０９０１２３４５６７８",  # full-width digits
        "０９０－１２３４－５６７８",  # full-width hyphen-minus
        "０９０ー１２３４ー５６７８",  # katakana prolonged sound mark, as typed by IMEs
        "０９０ｰ１２３４ｰ５６７８",  # half-width prolonged sound mark
        "＋８１　９０‐１２３４‐５６７８",  # full-width plus, ideographic space, U+2010
        "（０９０）１２３４．５６７８",  # full-width parentheses and dot
        "090–1234—5678",  # en and em dashes
        "090−1234―5678",  # minus sign, horizontal bar
        "\t090 1234 5678\u00a0",
    ],
)
def test_accepted_forms(text):
    assert normalize(text) == E


@pytest.mark.parametrize(
    ("text", "e164"),
    [
        ("080-1234-5678", "+818012345678"),
        ("070-1234-5678", "+817012345678"),
        ("060-1234-5678", "+816012345678"),  # mobile voice range being opened
        ("020-1234-5678", "+812012345678"),  # M2M, 11 digits
        ("070-5123-4567", "+817051234567"),  # former PHS block, now ported like the rest
    ],
)
def test_sms_capable_ranges(text, e164):
    assert normalize(text) == e164


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("- ー -", "empty"),
        ("+", "empty"),
        ("090-1234-567a", "bad_characters"),
        ("090/1234/5678", "bad_characters"),
        ("090-1234-5678 ext 1", "bad_characters"),
        ("81+9012345678", "bad_characters"),
        ("٠٩٠١٢٣٤٥٦٧٨", "bad_characters"),  # Arabic-Indic digits are digits, not ours
        ("①②", "bad_characters"),
        ("00-81-90-1234-5678", "international_prefix"),
        ("010-81-90-1234-5678", "international_prefix"),
        ("+1 415 555 0100", "not_japanese"),
        ("+44 7700 900123", "not_japanese"),
        ("9012345678", "not_japanese"),  # neither trunk 0 nor 81: ambiguous
        ("0901234567", "too_short"),
        ("090-123", "too_short"),
        ("+81 90 1234", "too_short"),
        ("0", "too_short"),
        ("090123456789", "too_long"),
        ("+8190123456789", "too_long"),
        ("0901234567890123", "too_long"),
        ("050-1234-5678", "not_mobile"),  # IP phone
        ("03-1234-5678", "not_mobile"),  # Tokyo landline
        ("06-1234-5678", "not_mobile"),  # Osaka landline (not the 060 range)
        ("011-123-4567", "not_mobile"),
        ("0120-123-456", "not_mobile"),  # free dial
        ("0800-123-4567", "not_mobile"),
        ("0570-123-456", "not_mobile"),
        ("0200-1234-5678", "not_mobile"),  # 0200 is the 14-digit M2M range
        ("0204-123-4567", "not_mobile"),  # pagers
        ("+81 3 1234 5678", "not_mobile"),
    ],
)
def test_reject_reasons(text, reason):
    with pytest.raises(NumberError) as info:
        normalize(text)
    assert info.value.reason == reason
    assert info.value.number == text
    assert isinstance(info.value, ValueError)


def test_non_string_is_rejected():
    with pytest.raises(NumberError) as info:
        normalize(9012345678)  # type: ignore[arg-type]
    assert info.value.reason == "bad_characters"


def test_prefixes_are_a_parameter():
    with pytest.raises(NumberError):
        normalize("0200-1234-567890")
    allow_0200 = {**SMS_PREFIXES, "0200": 14}
    assert normalize("0200-1234-567890", prefixes=allow_0200) == "+812001234567890"
    mobile_only = {"090": 11, "080": 11, "070": 11}
    assert normalize("090-1234-5678", prefixes=mobile_only) == E
    with pytest.raises(NumberError) as info:
        normalize("020-1234-5678", prefixes=mobile_only)
    assert info.value.reason == "not_mobile"
    assert normalize("050-1234-5678", prefixes={**SMS_PREFIXES, "050": 11}) == "+815012345678"


def test_foreign_numbers_when_allowed():
    assert normalize("+1 (415) 555-0100", allow_foreign=True) == "+14155550100"
    assert normalize(E, allow_foreign=True) == E
    with pytest.raises(NumberError) as info:
        normalize("+1 555", allow_foreign=True)
    assert info.value.reason == "too_short"
    with pytest.raises(NumberError) as info:
        normalize("+1234567890123456", allow_foreign=True)
    assert info.value.reason == "too_long"
    with pytest.raises(NumberError) as info:
        normalize("+81 3 1234 5678", allow_foreign=True)  # Japanese rules still apply to +81
    assert info.value.reason == "not_mobile"


@given(st.integers(0, 99_999_999), st.sampled_from(["70", "80", "90", "60", "20"]))
def test_all_forms_agree(rest, range_):
    if (range_ == "20" and str(rest).zfill(8)[0] in "04") or (range_ == "80" and str(rest).zfill(8)[0] == "0"):
        return  # 0200 / 0204 / 0800 are excluded
    sig = range_ + str(rest).zfill(8)
    e164 = "+81" + sig
    for form in (e164, "0" + sig, "81" + sig, f"0{sig[:2]}-{sig[2:6]}-{sig[6:]}", to_smpp(e164)):
        assert normalize(form) == e164
    assert from_smpp(to_smpp(e164)) == e164
    assert normalize(normalize(e164)) == e164


def test_to_smpp():
    assert to_smpp(E) == "819012345678"
    for bad in ("819012345678", "090-1234-5678", "+", "+81a"):
        with pytest.raises(NumberError) as info:
            to_smpp(bad)
        assert info.value.reason == "not_e164"


@pytest.mark.parametrize(
    ("addr", "ton", "e164"),
    [
        ("819012345678", None, E),
        ("819012345678", 1, E),
        ("+819012345678", None, E),
        ("09012345678", None, E),
        ("09012345678", 2, E),
        ("9012345678", 2, E),  # national TON without the trunk 0
        ("8109012345678", None, E),
        ("00819012345678", None, E),
        ("010819012345678", None, E),
        ("090-1234-5678", None, E),
        ("14155550100", 1, "+14155550100"),
        ("0312345678", None, "+81312345678"),  # a receipt names whatever we sent to: no range check
    ],
)
def test_from_smpp(addr, ton, e164):
    assert from_smpp(addr, ton) == e164


@pytest.mark.parametrize(("addr", "reason"), [("", "empty"), ("DENPO", "bad_characters"), ("1" * 16, "too_long")])
def test_from_smpp_rejects(addr, reason):
    with pytest.raises(NumberError) as info:
        from_smpp(addr)
    assert info.value.reason == reason


# -- carrier lookup -----------------------------------------------------------------------

LOOKUP_FILE = """\
# carrier table exported 2026-11-01
number,carrier
+819011110001,au
090-2222-0002,docomo   # ported from au in 2024
０８０３３３３０００３,SoftBank
817044440004, rakuten

819011110001,docomo
050-1234-5678,au
090-5555-0005
090-6666-0006,willcom
not-a-number,au
090-7777-0007,au,extra
0901234567,docomo
"""


def test_lookup_file_with_problems_reported_by_line(tmp_path):
    path = tmp_path / "carriers.csv"
    path.write_text("\ufeff" + LOOKUP_FILE, encoding="utf-8")
    table = CarrierLookup.from_file(path)
    assert len(table) == 4
    assert table.lookup("+819011110001") == "docomo"  # duplicate: the last line wins
    assert table.duplicates == 1
    assert table.lookup("+819022220002") == "docomo"
    assert table.lookup("+818033330003") == "softbank"
    assert table.lookup("+817044440004") == "rakuten"
    assert table.problems == [
        LookupProblem(9, "050-1234-5678,au", "not_mobile"),
        LookupProblem(10, "090-5555-0005", "bad_fields"),
        LookupProblem(11, "090-6666-0006,willcom", "unknown_carrier"),
        LookupProblem(12, "not-a-number,au", "bad_characters"),
        LookupProblem(13, "090-7777-0007,au,extra", "bad_fields"),
        LookupProblem(14, "0901234567,docomo", "too_short"),
    ]
    assert str(table.problems[0]) == "line 9: not_mobile: '050-1234-5678,au'"
    assert table.stats() == {"entries": 4, "duplicates": 1, "problems": 6, "fallback_prefixes": 0, "bytes": 36}


def test_lookup_miss_is_none_and_fallback_is_off_by_default():
    table = CarrierLookup.from_lines(["+819011110001,au"])
    assert not table.has_fallback
    assert table.lookup("+819099999999") is None
    assert table.lookup_exact("+819099999999") is None
    assert table.lookup("garbage") is None
    assert "+819011110001" in table and "+819099999999" not in table and 5 not in table


def test_prefix_fallback_is_longest_match_and_only_a_guess():
    table = CarrierLookup.from_lines(
        ["+819011110001,au"], fallback={"090": "docomo", "0901": "softbank", "+81902": "au"}
    )
    assert table.has_fallback
    assert table.lookup("+819011110001") == "au"  # the table beats any prefix
    assert table.lookup("+819012345678") == "softbank"  # 0901 is longer than 090
    assert table.lookup("+819023456789") == "au"
    assert table.lookup("+819034567890") == "docomo"
    assert table.lookup("+818012345678") is None
    assert table.lookup_exact("+819012345678") is None  # never guesses
    with pytest.raises(ValueError):
        CarrierLookup(fallback={"090": "willcom"})


def test_lookup_from_mapping():
    table = CarrierLookup({"+819011110001": "au", "+818022220002": "DoCoMo"})
    assert table.lookup("+818022220002") == "docomo"
    with pytest.raises(NumberError):
        CarrierLookup({"09011110001": "au"})
    with pytest.raises(ValueError):
        CarrierLookup({"+819011110001": "kddi"})
    assert CarrierLookup([("+819011110001", "au"), ("+819011110001", "rakuten")]).duplicates == 1


def test_lookup_memory_per_entry():
    """Written down in CarrierLookup's docstring: 9 bytes per entry (two arrays);
    bench/pacing_bench.py measures 1,000,000 entries with tracemalloc."""
    n = 100_000
    table = CarrierLookup({f"+8190{i:08d}": CARRIERS[i % 4] for i in range(n)})
    assert len(table) == n
    assert table.nbytes() == 9 * n
    assert (sys.getsizeof(table._keys) + sys.getsizeof(table._carriers)) / n < 9.1
    assert table.lookup(f"+8190{n - 1:08d}") == CARRIERS[(n - 1) % 4]


def test_0800_free_dial_inside_080():
    with pytest.raises(NumberError) as info:
        normalize("0800-123-4567")
    assert info.value.reason == "not_mobile"
    assert normalize("080-1123-4567") == "+818011234567"


@given(
    st.one_of(
        st.text(alphabet="+0123456789８ -", min_size=1, max_size=16),
        st.builds(
            lambda head, tail: "+81" + head + tail,
            st.sampled_from(["90", "80", "70", "60", "20", "800", "0", "3", "９0"]),
            st.text(alphabet="0123456789", min_size=6, max_size=10),
        ),
    )
)
def test_fast_path_agrees_with_the_general_path(text):
    # normalize() returns clean E.164 mobile numbers as they are; the general path,
    # reached through a copy of the default table, must agree on every input
    general = dict(SMS_PREFIXES)
    try:
        expected = normalize(text, prefixes=general)
    except NumberError as exc:
        with pytest.raises(NumberError) as info:
            normalize(text)
        assert info.value.reason == exc.reason
    else:
        assert normalize(text) == expected
