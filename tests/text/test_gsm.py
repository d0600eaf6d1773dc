"""GSM 03.38 tables, named characters, unpacked and packed codecs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.text import (
    EXTENSION,
    GSM_CHARS,
    TextError,
    decode_gsm7,
    encode_gsm7,
    gsm7_fits,
    pack_gsm7,
    plan,
    septet_length,
    unpack_gsm7,
)
from engine.text._gsm import BASIC

# --------------------------------------------------------------------- tables


def test_alphabet_sizes():
    assert len(BASIC) == 128
    assert len(EXTENSION) == 10
    assert len(GSM_CHARS) == 137  # 127 basic + 10 extension (DOMAIN §3.1)


@pytest.mark.parametrize("code", [c for c in range(128) if c != 0x1B])
def test_basic_table_round_trip(code):
    char = BASIC[code]
    assert encode_gsm7(char) == bytes([code])
    assert decode_gsm7(bytes([code])) == char


@pytest.mark.parametrize(
    ("char", "code"),
    [
        ("@", 0x00), ("£", 0x01), ("$", 0x02), ("¥", 0x03), ("Ç", 0x09), ("\n", 0x0A),
        ("\r", 0x0D), ("Δ", 0x10), ("_", 0x11), ("¤", 0x24), ("¡", 0x40), ("§", 0x5F),
        ("¿", 0x60), ("à", 0x7F), ("É", 0x1F), ("ß", 0x1E),
    ],
)
def test_non_ascii_compatible_codes(char, code):
    assert encode_gsm7(char) == bytes([code])


# Every extension character has its own named test id.
EXTENSION_CASES = [
    pytest.param("\x0c", 0x0A, id="form_feed"),
    pytest.param("^", 0x14, id="caret"),
    pytest.param("{", 0x28, id="left_brace"),
    pytest.param("}", 0x29, id="right_brace"),
    pytest.param("\\", 0x2F, id="backslash"),
    pytest.param("[", 0x3C, id="left_bracket"),
    pytest.param("~", 0x3D, id="tilde"),
    pytest.param("]", 0x3E, id="right_bracket"),
    pytest.param("|", 0x40, id="vertical_bar"),
    pytest.param("€", 0x65, id="euro"),
]


@pytest.mark.parametrize(("char", "code"), EXTENSION_CASES)
def test_extension_character(char, code):
    assert gsm7_fits(char)
    assert encode_gsm7(char) == bytes([0x1B, code])
    assert decode_gsm7(bytes([0x1B, code])) == char
    assert septet_length("a" + char + "b") == 4
    p = plan("a" + char + "b", "generic")
    assert p.encoding == "gsm7"
    assert p.data_coding == 0
    assert p.segments == (b"a\x1b" + bytes([code]) + b"b",)
    assert p.characters == 3  # SPEC: UTF-16 units, not septets
    assert p.text_octets == 4  # two septets for the extension character


def test_extension_costs_two_septets_at_the_single_part_limit():
    assert plan("€" * 80, "generic").parts == 1  # 160 septets
    assert plan("€" * 80 + "a", "generic").parts == 2  # 161 septets
    assert plan("a" * 160, "generic").parts == 1
    assert plan("a" * 161, "generic").parts == 2


# Characters that force UCS-2 on the generic (GSM-capable) profile.
UCS2_CASES = [
    pytest.param("`", id="backtick"),
    pytest.param("ç", id="small_c_cedilla"),
    pytest.param("￥", id="fullwidth_yen"),
    pytest.param("😀", id="emoji_outside_bmp"),
    pytest.param("☺", id="bmp_symbol"),
    pytest.param("あ", id="hiragana"),
    pytest.param("ア", id="katakana"),
    pytest.param("ｱ", id="halfwidth_katakana"),
    pytest.param("漢", id="kanji"),
    pytest.param("、", id="ideographic_comma"),
    pytest.param("\u3000", id="ideographic_space"),
    pytest.param("Ａ", id="fullwidth_latin"),
    pytest.param("\x1b", id="escape_control"),
    pytest.param("\t", id="tab"),
    pytest.param("\x00", id="nul"),
    pytest.param("\xa0", id="no_break_space"),
    pytest.param("ä\u0308", id="combining_mark"),
    pytest.param("“", id="curly_quote"),
    pytest.param("¢", id="cent"),
    pytest.param("ı", id="dotless_i"),
]


@pytest.mark.parametrize("char", UCS2_CASES)
def test_character_forcing_ucs2(char):
    assert not gsm7_fits("abc" + char)
    with pytest.raises(TextError) as ei:
        encode_gsm7("abc" + char)
    assert ei.value.reason == "not_gsm7"
    p = plan("abc" + char, "generic")
    assert p.encoding == "ucs2"
    assert p.data_coding == 8
    assert p.segments == (("abc" + char).encode("utf-16-be"),)  # nothing substituted


@pytest.mark.parametrize(
    "char",
    [pytest.param("§", id="section_sign_0x5F"), pytest.param("¥", id="yen_0x03"),
     pytest.param("@", id="at_0x00"), pytest.param("$", id="dollar_0x02"),
     pytest.param("_", id="underscore_0x11"), pytest.param("¤", id="currency_0x24"),
     pytest.param("Ç", id="capital_c_cedilla_0x09")],
)
def test_character_staying_gsm7(char):
    p = plan("abc" + char, "generic")
    assert p.encoding == "gsm7"


def test_0x09_decision_capital_c_cedilla():
    assert encode_gsm7("Ç") == b"\x09"
    assert decode_gsm7(b"\x09") == "Ç"
    assert not gsm7_fits("ç")


def test_japanese_profiles_never_use_gsm7():
    for carrier in ("au", "docomo", "softbank", "rakuten"):
        p = plan("Hello", carrier)
        assert p.encoding == "ucs2"
        assert p.data_coding == 8
        assert p.segments == ("Hello".encode("utf-16-be"),)


# --------------------------------------------------------------------- decoding rules


def test_decode_undefined_extension_shows_basic_character():
    assert decode_gsm7(b"\x1b\x41") == "A"


def test_decode_esc_esc_and_trailing_esc_are_spaces():
    assert decode_gsm7(b"a\x1b\x1bb") == "a b"
    assert decode_gsm7(b"ab\x1b") == "ab "


def test_decode_high_octet_strict_and_replace():
    with pytest.raises(TextError) as ei:
        decode_gsm7(b"a\x80b")
    assert ei.value.reason == "bad_data"
    assert decode_gsm7(b"a\x80b\x1b\x65", errors="replace") == "a\ufffdb€"


# --------------------------------------------------------------------- packed form


def test_pack_known_vector():
    # Classic 23.038 example: "hellohello" -> E8 32 9B FD 46 97 D9 EC 37
    assert pack_gsm7(encode_gsm7("hellohello")).hex().upper() == "E8329BFD4697D9EC37"
    assert decode_gsm7(unpack_gsm7(bytes.fromhex("E8329BFD4697D9EC37"))) == "hellohello"


def test_pack_eight_septets_in_seven_octets():
    assert len(pack_gsm7(b"\x41" * 8)) == 7
    assert len(pack_gsm7(b"\x41" * 160)) == 140


def test_pack_pads_seven_spare_bits_with_cr():
    packed = pack_gsm7(encode_gsm7("1234567"))  # 49 bits -> 7 spare bits in octet 7
    assert len(packed) == 7
    assert packed[-1] >> 1 == 0x0D
    assert unpack_gsm7(packed) == encode_gsm7("1234567")  # padding CR dropped
    assert unpack_gsm7(packed, septets=8)[-1] == 0x0D


def test_pack_with_fill_bits():
    septets = encode_gsm7("abc")
    packed = pack_gsm7(septets, fill_bits=1)
    assert unpack_gsm7(packed, fill_bits=1) == septets
    assert int.from_bytes(packed, "little") & 1 == 0


@settings(max_examples=200, deadline=None)
@given(
    st.binary(max_size=200).map(lambda b: bytes(x & 0x7F for x in b)),
    st.integers(min_value=0, max_value=6),
)
def test_pack_unpack_round_trip_with_count(septets, fill):
    packed = pack_gsm7(septets, fill_bits=fill)
    assert len(packed) == (fill + 7 * len(septets) + 7) // 8
    assert unpack_gsm7(packed, septets=len(septets), fill_bits=fill) == septets
