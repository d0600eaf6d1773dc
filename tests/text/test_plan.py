"""Counting rule, newlines, segmentation, UDH bytes, references, SAR, payload, errors, JSON, CLI."""

from __future__ import annotations

import io
import json
import pickle

import msgspec
import pytest

from engine.text import (
    PROFILES,
    TextError,
    TextProfile,
    cli_main,
    count_characters,
    decode_wire,
    parse_concat_udh,
    plan,
    wire_form,
)

JP = ("au", "docomo", "softbank", "rakuten")


def _replace(name: str, **changes) -> TextProfile:
    return msgspec.structs.replace(PROFILES[name], **changes)


# ------------------------------------------------------------ SPEC "Characters" rule


@pytest.mark.parametrize(("carrier", "expected"), [("au", 4), ("docomo", 4), ("softbank", 3), ("rakuten", 3), ("generic", 3)])
def test_newline_counting_rule(carrier, expected):
    p = plan("a\nb", carrier)
    assert p.characters == expected
    assert p.bytes == 2 * expected


@pytest.mark.parametrize("carrier", ["au", "docomo"])
def test_newline_goes_out_as_crlf_on_au_and_docomo(carrier):
    p = plan("a\nb", carrier)
    assert p.segments == (bytes.fromhex("0061000d000a0062"),)


@pytest.mark.parametrize("carrier", ["softbank", "rakuten"])
def test_newline_goes_out_as_lf_on_softbank_and_rakuten(carrier):
    assert plan("a\nb", carrier).segments == (bytes.fromhex("0061000a0062"),)


@pytest.mark.parametrize("carrier", JP)
def test_input_crlf_is_one_newline(carrier):
    lf = plan("a\nb\nc", carrier)
    crlf = plan("a\r\nb\r\nc", carrier)
    assert crlf == lf
    assert crlf.characters == (7 if carrier in ("au", "docomo") else 5)


def test_lone_cr_is_kept_and_counts_one():
    assert plan("a\rb", "au").characters == 3
    assert plan("a\rb", "au").segments == (bytes.fromhex("0061000d0062"),)
    assert plan("a\r\rb", "softbank").characters == 4


def test_generic_sends_newlines_as_given():
    assert plan("a\r\nb", "generic").segments == (b"a\r\nb",)
    assert plan("a\nb", "generic").segments == (b"a\nb",)


@pytest.mark.parametrize("carrier", ["au", "docomo"])
def test_byte_accounting_two_per_character_four_per_newline(carrier):
    text = "お知らせ\n明日は休業です。\nよろしく"
    newlines = text.count("\n")
    others = len(text) - newlines
    assert plan(text, carrier).bytes == 2 * others + 4 * newlines


@pytest.mark.parametrize("carrier", ["au", "docomo", "softbank", "rakuten", "generic"])
def test_emoji_counts_two(carrier):
    p = plan("😀", carrier)
    assert p.characters == 2
    assert p.bytes == 4
    assert p.segments == ("😀".encode("utf-16-be"),)


def test_emoji_at_the_limit():
    assert plan("😀" * 335, "au").characters == 670
    with pytest.raises(TextError) as ei:
        plan("😀" * 335 + "a", "au")
    assert (ei.value.limit, ei.value.count) == (670, 671)
    with pytest.raises(TextError):
        plan("😀" * 331, "docomo")  # 662 > 660


def test_newlines_at_the_limit_au():
    assert plan("\n" * 335, "au").characters == 670
    with pytest.raises(TextError) as ei:
        plan("\n" * 336, "au")
    assert ei.value.count == 672
    assert plan("\n" * 660, "rakuten").characters == 660


def test_count_characters_wire_and_plain():
    assert count_characters("a\r\nb😀") == 6
    assert count_characters("a\nb", "au", wire=False) == 4
    assert count_characters("a\r\nb", "softbank", wire=False) == 3
    assert count_characters("\ud83d") == 1  # a lone surrogate read back from a cut pair
    for carrier in JP:
        t = "テスト\n😀 end\r\n"
        assert count_characters(t, carrier, wire=False) == plan(t, carrier).characters
        assert count_characters(wire_form(t, carrier)) == plan(t, carrier).characters


def test_full_and_half_width_count_alike():
    assert plan("ｱｲｳ", "au").characters == plan("アイウ", "au").characters == plan("abc", "au").characters == 3


# ------------------------------------------------------------ segmentation and UDH


def test_single_part_limits():
    assert plan("あ" * 70, "au").concatenation == "none"
    assert plan("あ" * 70, "au").esm_class == 0
    assert plan("あ" * 71, "au").concatenation == "udh8"
    assert plan("a" * 160, "generic").concatenation == "none"


def test_au_udh8_layout():
    p = plan("あ" * 71, "au", ref=0xA7)
    assert p.parts == 2
    assert p.esm_class == 0x40
    assert p.ref == 0xA7
    assert p.segments[0][:6] == bytes.fromhex("050003a70201")
    assert p.segments[1][:6] == bytes.fromhex("050003a70202")
    assert len(p.segments[0]) == 140  # 6 + 67*2
    assert p.segments[1][6:] == ("あ" * 4).encode("utf-16-be")


def test_docomo_udh16_layout():
    p = plan("あ" * 71, "docomo", ref=0x1234)
    assert p.concatenation == "udh16"
    assert p.segments[0][:7] == bytes.fromhex("06080412340201")
    assert p.segments[1][:7] == bytes.fromhex("06080412340202")
    assert len(p.segments[0]) == 7 + 66 * 2
    assert len(p.segments[1]) == 7 + 5 * 2


@pytest.mark.parametrize(("carrier", "per", "n"), [("au", 67, 670), ("rakuten", 67, 660), ("docomo", 66, 660)])
def test_full_length_messages_make_ten_parts(carrier, per, n):
    p = plan("漢" * n, carrier)
    assert p.parts == 10
    assert p.billing_units == 10
    for i, seg in enumerate(p.segments, 1):
        info = parse_concat_udh(seg)
        assert (info.ref, info.total, info.seq) == (0, 10, i)
        assert len(seg) - info.header_octets <= per * 2


def test_surrogate_pair_never_split():
    text = "a" * 66 + "😀" + "b" * 10
    p = plan(text, "au")
    body0 = p.segments[0][6:]
    assert len(body0) == 132  # ended one unit early
    assert p.segments[1][6:10] == "😀".encode("utf-16-be")
    assert "".join(decode_wire(s, 8, udh=True) for s in p.segments) == text


def test_surrogate_pair_pushes_full_au_text_to_eleven_parts_billed_ten():
    text = "a" * 66 + "😀" + "a" * 602  # 670 units, pair straddles units 67/68
    p = plan(text, "au")
    assert p.characters == 670
    assert p.parts == 11
    assert p.billing_units == 10


def test_escape_pair_never_split():
    text = "a" * 152 + "€" + "b" * 10
    p = plan(text, "generic")
    assert p.encoding == "gsm7"
    body0 = p.segments[0][6:]
    assert len(body0) == 152 and body0[-1] != 0x1B
    assert p.segments[1][6:8] == b"\x1b\x65"
    assert "".join(decode_wire(s, 0, udh=True) for s in p.segments) == text


def test_gsm7_udh8_and_udh16_part_sizes():
    p8 = plan("a" * 161, "generic")
    assert [len(s) - 6 for s in p8.segments] == [153, 8]
    p16 = plan("a" * 161, _replace("generic", concatenation="udh16"))
    assert [len(s) - 7 for s in p16.segments] == [152, 9]


def test_255_part_maximum():
    assert plan("a" * 153 * 255, "generic").parts == 255
    with pytest.raises(TextError) as ei:
        plan("a" * (153 * 255 + 1), "generic")
    assert (ei.value.reason, ei.value.limit, ei.value.count) == ("too_many_parts", 255, 256)
    assert plan("あ" * 67 * 255, "generic").parts == 255
    with pytest.raises(TextError):
        plan("あ" * (67 * 255 + 1), "generic")
    with pytest.raises(ValueError):
        _replace("generic", max_parts=256)


def test_configured_part_cap():
    prof = _replace("au", max_parts=10)
    assert plan("a" * 670, prof).parts == 10
    with pytest.raises(TextError) as ei:
        plan("a" * 66 + "😀" + "a" * 602, prof)
    assert ei.value.reason == "too_many_parts"


# ------------------------------------------------------------ references


@pytest.mark.parametrize(("carrier", "top"), [("au", 255), ("rakuten", 255), ("docomo", 65535), ("generic", 255)])
def test_reference_width(carrier, top):
    assert PROFILES[carrier].ref_max == top
    assert plan("あ" * 100, carrier, ref=top).ref == top
    assert plan("あ" * 100, carrier, ref=0).ref == 0
    for bad in (-1, top + 1, True, 1.0):
        with pytest.raises(TextError) as ei:
            plan("あ" * 100, carrier, ref=bad)
        assert ei.value.reason == "bad_ref"
        assert ei.value.limit == top


def test_udh16_reference_bytes_big_endian():
    p = plan("あ" * 100, "docomo", ref=65535)
    assert p.segments[0][3:5] == b"\xff\xff"
    assert parse_concat_udh(p.segments[0]).ref == 65535


def test_reference_checked_even_for_single_part_and_unused_there():
    assert plan("hi", "au", ref=5).ref is None
    with pytest.raises(TextError):
        plan("hi", "au", ref=256)


def test_reference_is_identical_in_every_part():
    p = plan("あ" * 300, "au", ref=42)
    infos = [parse_concat_udh(s) for s in p.segments]
    assert {i.ref for i in infos} == {42}
    assert [i.seq for i in infos] == [1, 2, 3, 4, 5]
    assert {i.total for i in infos} == {5}


# ------------------------------------------------------------ SAR and payload


def test_sar_mode_16bit():
    prof = _replace("docomo", concatenation="sar", sar_ref_bits=16)
    assert prof.ref_max == 65535
    p = plan("あ" * 140, prof, ref=300)
    assert p.concatenation == "sar"
    assert p.esm_class == 0
    assert p.sar == ((300, 3, 1), (300, 3, 2), (300, 3, 3))
    assert [len(s) for s in p.segments] == [132, 132, 16]  # 66 units per part, no UDH
    assert b"".join(p.segments) == ("あ" * 140).encode("utf-16-be")


def test_sar_mode_8bit_gsm():
    prof = _replace("generic", concatenation="sar", sar_ref_bits=8)
    assert prof.ref_max == 255
    p = plan("x" * 200, prof, ref=7)
    assert [len(s) for s in p.segments] == [153, 47]
    assert p.sar == ((7, 2, 1), (7, 2, 2))
    with pytest.raises(TextError):
        plan("x" * 200, prof, ref=256)


def test_softbank_payload():
    short = plan("あ" * 70, "softbank")
    assert short.concatenation == "none" and not short.use_message_payload
    p = plan("あ" * 670, "softbank")
    assert p.concatenation == "payload"
    assert p.use_message_payload
    assert p.parts == 1
    assert p.billing_units == 1
    assert p.esm_class == 0
    assert p.segments == (("あ" * 670).encode("utf-16-be"),)
    assert p.ref is None


def test_generic_payload_bills_nominal_parts():
    prof = _replace("generic", concatenation="payload")
    p = plan("a" * 400, prof)
    assert p.use_message_payload and p.parts == 1
    assert p.segments == (b"a" * 400,)
    assert p.billing_units == 3


# ------------------------------------------------------------ data coding 0 variants


def test_dc0_ascii_profile():
    prof = _replace("generic", dc0_meaning="ascii")
    p = plan("a{b@", prof)
    assert p.encoding == "gsm7" and p.segments == (b"a{b@",)
    assert plan("£", prof).encoding == "ucs2"  # GSM but not ASCII
    long = plan("{" * 100, prof)  # 200 septets -> split by septets, 76 + 24 braces
    assert [len(s) - 6 for s in long.segments] == [76, 24]
    assert decode_wire(long.segments[0], 0, prof, udh=True) == "{" * 76


def test_dc0_latin1_profile():
    prof = _replace("generic", dc0_meaning="latin1")
    assert plan("£é", prof).segments == (b"\xa3\xe9",)
    assert plan("€", prof).encoding == "ucs2"
    assert plan("Δ", prof).encoding == "ucs2"
    assert decode_wire(b"\xa3\xe9", 0, prof) == "£é"


def test_packed_profile():
    prof = _replace("generic", gsm7_packed=True)
    p = plan("hellohello", prof)
    assert p.segments == (bytes.fromhex("e8329bfd4697d9ec37"),)
    long = plan("a" * 200, prof, ref=1)
    assert len(long.segments[0]) == 140  # 6 + 134
    assert "".join(decode_wire(s, 0, prof, udh=True) for s in long.segments) == "a" * 200
    with pytest.raises(ValueError):
        _replace("generic", dc0_meaning="ascii", gsm7_packed=True)


# ------------------------------------------------------------ errors


@pytest.mark.parametrize("carrier", ["au", "docomo", "softbank", "rakuten", "generic"])
def test_empty_text(carrier):
    with pytest.raises(TextError) as ei:
        plan("", carrier)
    assert ei.value.reason == "empty"
    assert ei.value.carrier == carrier
    assert ei.value.count == 0


def test_unpaired_surrogate_is_an_error_not_a_substitution():
    with pytest.raises(TextError) as ei:
        plan("ok\ud800", "au")
    assert ei.value.reason == "bad_character"


def test_unknown_carrier_and_case():
    with pytest.raises(TextError) as ei:
        plan("x", "willcom")
    assert ei.value.reason == "unknown_carrier"
    assert plan("x", "SoftBank").carrier == "softbank"


def test_non_str_text():
    with pytest.raises(TypeError):
        plan(b"abc", "au")  # type: ignore[arg-type]


def test_text_error_is_value_error_and_pickles():
    err = TextError("too_long", "au: text has 700 characters, limit is 670", carrier="au", limit=670, count=700)
    assert isinstance(err, ValueError)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.reason, copy.carrier, copy.limit, copy.count, str(copy)) == (
        "too_long", "au", 670, 700, str(err))


def test_profile_validation():
    with pytest.raises(ValueError):
        TextProfile(name="x", max_characters=10, concatenation="udh9")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TextProfile(name="x", max_characters=0)
    with pytest.raises(ValueError):
        TextProfile(name="x", max_characters=10, dc0_meaning="ebcdic")  # type: ignore[arg-type]
    # decodes from config data with msgspec
    prof = msgspec.convert({"name": "x", "max_characters": 100, "concatenation": "udh16"}, TextProfile)
    assert prof.ref_max == 65535


def test_profiles_mapping_is_read_only():
    with pytest.raises(TypeError):
        PROFILES["au"] = PROFILES["generic"]  # type: ignore[index]
    assert set(PROFILES) >= {"au", "docomo", "softbank", "rakuten", "generic"}


# ------------------------------------------------------------ plan object, JSON, CLI


def test_plan_is_immutable_and_deterministic():
    p = plan("テスト" * 50, "au", ref=3)
    with pytest.raises(AttributeError):
        p.characters = 1  # type: ignore[misc]
    assert p == plan("テスト" * 50, "au", ref=3)
    assert isinstance(p.segments, tuple)


def test_to_json_dict_keys():
    d = plan("テスト" * 50, "au").to_json_dict()
    for key in ("carrier", "encoding", "data_coding", "characters", "billing_units", "bytes", "segments", "concatenation"):
        assert key in d
    assert d["segments"][0].startswith("0500030003")
    assert all(s == s.lower() for s in d["segments"])
    assert json.loads(json.dumps(d)) == d


def test_cli_prints_plan():
    out = io.StringIO()
    assert cli_main(["--carrier", "docomo", "--ref", "258", "あ" * 71], stdout=out) == 0
    d = json.loads(out.getvalue())
    assert d["carrier"] == "docomo"
    assert d["encoding"] == "ucs2"
    assert d["concatenation"] == "udh16"
    assert d["billing_units"] == 2
    assert d["segments"][0].startswith("06080401020201")


def test_cli_errors_are_json_and_nonzero():
    for argv in (["--carrier", "au", "あ" * 671], ["--carrier", "au", ""], ["--carrier", "nope", "x"],
                 ["--carrier", "au", "--ref", "256", "x"], ["--carrier", "au", "--ref", "x", "y"], []):
        out = io.StringIO()
        assert cli_main(argv, stdout=out) != 0
        assert "error" in json.loads(out.getvalue())
    out = io.StringIO()
    cli_main(["--carrier", "au", "あ" * 671], stdout=out)
    d = json.loads(out.getvalue())
    assert (d["carrier"], d["limit"], d["count"], d["reason"]) == ("au", 670, 671, "too_long")


# ------------------------------------------------------------ receive side


def test_decode_wire_cut_surrogate_does_not_crash():
    raw = "a😀".encode("utf-16-be")
    first, second = raw[:4], raw[4:]  # a bad splitter cut the pair
    t1, t2 = decode_wire(first, 8), decode_wire(second, 8)
    assert count_characters(t1) + count_characters(t2) == 3
    with pytest.raises(TextError):
        decode_wire(b"\x00a\x00", 8)
    assert decode_wire(b"\x00a\x00", 8, errors="replace") == "a\ufffd"


def test_decode_wire_codings():
    assert decode_wire(b"\x00\x02", 0) == "@$"
    assert decode_wire(b"\x00\x02", 0xF1) == "@$"
    assert decode_wire(b"ab", 1) == "ab"
    assert decode_wire(b"\xa5", 3) == "¥"
    with pytest.raises(TextError) as ei:
        decode_wire(b"ab", 4)
    assert ei.value.reason == "unsupported_data_coding"
    with pytest.raises(TextError):
        decode_wire(b"\x05\x00\x03", 8, udh=True)


def test_parse_concat_udh():
    assert parse_concat_udh(bytes.fromhex("050003a70301") + b"x") == (0xA7, 3, 1, 8, 6)
    assert parse_concat_udh(bytes.fromhex("06080412340301")) == (0x1234, 3, 1, 16, 7)
    # another IE first (port addressing), then concatenation
    assert parse_concat_udh(bytes.fromhex("0b05040b8423f0" "00030a0201")) == (0x0A, 2, 1, 8, 12)
    assert parse_concat_udh(bytes.fromhex("0405020000")) is None
    with pytest.raises(TextError):
        parse_concat_udh(bytes.fromhex("0a0003"))
