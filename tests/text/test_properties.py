"""Hypothesis properties: reassembly, per-part budgets, no split pairs, determinism, counts."""

from __future__ import annotations

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.text import (
    PROFILES,
    TextError,
    TextProfile,
    count_characters,
    decode_wire,
    parse_concat_udh,
    plan,
    wire_form,
)
from engine.text._gsm import unpack_gsm7

_r = msgspec.structs.replace
VARIANTS: dict[str, TextProfile] = {
    **PROFILES,
    "generic_udh16": _r(PROFILES["generic"], name="generic_udh16", concatenation="udh16"),
    "generic_sar8": _r(PROFILES["generic"], name="generic_sar8", concatenation="sar", sar_ref_bits=8),
    "generic_sar16": _r(PROFILES["generic"], name="generic_sar16", concatenation="sar"),
    "generic_payload": _r(PROFILES["generic"], name="generic_payload", concatenation="payload"),
    "generic_packed": _r(PROFILES["generic"], name="generic_packed", gsm7_packed=True),
    "generic_packed16": _r(PROFILES["generic"], name="generic_packed16", gsm7_packed=True, concatenation="udh16"),
    "generic_ascii": _r(PROFILES["generic"], name="generic_ascii", dc0_meaning="ascii"),
    "generic_latin1": _r(PROFILES["generic"], name="generic_latin1", dc0_meaning="latin1", concatenation="sar"),
    "au_sar": _r(PROFILES["au"], name="au_sar", concatenation="sar"),
    "docomo_crlf_gsm": _r(PROFILES["docomo"], name="docomo_gsm", allow_gsm7=True),
}

japanese = st.characters(
    codec="utf-8",
    categories=("Lo", "Lm", "Po", "Ps", "Pe", "Zs", "Nd", "So"),
    min_codepoint=0x3000,
    max_codepoint=0xFFEF,
)
emoji = st.characters(min_codepoint=0x1F300, max_codepoint=0x1FAFF)
gsm_ext = st.sampled_from(list("\x0c^{}\\[~]|€"))
gsm_basic = st.sampled_from(list("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà"))
newlines = st.sampled_from(["\n", "\r\n", "\r", "\r\r\n", "\n\r"])
ascii_ = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
token = st.one_of(
    st.characters(codec="utf-8"),  # arbitrary Unicode scalar values (no surrogates)
    japanese, emoji, gsm_ext, gsm_basic, newlines, ascii_,
)
# Mostly-GSM texts exercise the GSM paths (escape pairs at boundaries); mixed texts the UCS-2 paths.
gsm_text = st.lists(st.one_of(gsm_basic, gsm_ext, newlines, st.just("a")), min_size=1, max_size=420).map("".join)
mixed_text = st.lists(token, min_size=1, max_size=380).map("".join)
texts = st.one_of(gsm_text, mixed_text, st.text(min_size=1, max_size=700))


def _reassemble(p, profile: TextProfile) -> str:
    if p.concatenation in ("udh8", "udh16"):
        return "".join(decode_wire(s, p.data_coding, profile, udh=True) for s in p.segments)
    return "".join(decode_wire(s, p.data_coding, profile) for s in p.segments)


def _fold(t: str) -> str:
    return t.replace("\r\n", "\n")


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts, st.sampled_from(sorted(VARIANTS)), st.integers(min_value=0, max_value=65535))
def test_plan_properties(text, variant, ref):
    profile = VARIANTS[variant]
    ref = ref % (profile.ref_max + 1)
    wire = wire_form(text, profile)
    try:
        p = plan(text, profile, ref=ref)
    except TextError as exc:
        # The only legitimate refusals for non-empty, surrogate-free text: over a limit.
        assert exc.reason in ("too_long", "too_many_parts")
        assert exc.carrier == profile.name
        if exc.reason == "too_long":
            assert exc.count == count_characters(wire) > profile.max_characters == exc.limit
        return

    # determinism
    assert p == plan(text, profile, ref=ref)

    # counts
    assert p.characters == count_characters(wire) == count_characters(text, profile, wire=False)
    assert p.bytes == 2 * p.characters == len(wire.encode("utf-16-be"))
    if profile.max_characters is not None:
        assert p.characters <= profile.max_characters

    # reassembly: exactly the wire form, and the original after CR LF -> LF
    back = _reassemble(p, profile)
    if profile.gsm7_packed and p.encoding == "gsm7" and back != wire:
        # documented packed-form ambiguity: final CR exactly on an octet boundary
        assert back + "\r" == wire
    else:
        assert back == wire
        assert _fold(back) == _fold(wire)
        if profile.newline_crlf:
            assert _fold(back) == _fold(text)
        elif profile.fold_crlf:
            assert back == _fold(text)
        else:
            assert back == text

    # encoding choice and data coding
    if p.encoding == "ucs2":
        assert p.data_coding == 8
    else:
        assert p.data_coding == 0 and profile.allow_gsm7

    # per-part structure, budgets and unsplit pairs
    total = p.parts
    assert 1 <= total <= profile.max_parts
    if p.concatenation == "none":
        assert total == 1 and p.esm_class == 0 and p.ref is None
    if p.concatenation == "payload":
        assert total == 1 and p.use_message_payload
        return
    for seq, seg in enumerate(p.segments, 1):
        if p.concatenation in ("udh8", "udh16"):
            info = parse_concat_udh(seg)
            assert info is not None
            assert (info.ref, info.total, info.seq) == (ref, total, seq)
            assert info.ref_bits == (8 if p.concatenation == "udh8" else 16)
            body = seg[info.header_octets:]
            udh_len = info.header_octets
            assert p.esm_class == 0x40
        else:
            body, udh_len = seg, 0
            if p.concatenation == "sar":
                assert p.sar[seq - 1] == (ref, total, seq)
                assert p.esm_class == 0
        if p.encoding == "ucs2":
            assert len(seg) <= 140
            if p.concatenation == "sar":
                assert len(body) <= (134 if profile.sar_ref_bits == 8 else 132)
            assert len(body) % 2 == 0
            if seq < total:
                assert not 0xD8 <= body[-2] <= 0xDB  # never ends on a high surrogate
            assert not 0xDC <= body[0] <= 0xDF  # never starts with a low surrogate
        else:
            if profile.gsm7_packed:
                assert len(seg) <= 140
                fill = (7 - (udh_len * 8) % 7) % 7
                septets = unpack_gsm7(body, fill_bits=fill)
            elif profile.dc0_meaning == "gsm7":
                septets = body
                if total == 1:
                    per = 160
                elif p.concatenation == "udh8" or (p.concatenation == "sar" and profile.sar_ref_bits == 8):
                    per = 153
                else:
                    per = 152
                assert len(septets) <= per
                # the air form fits 140 octets
                fill = (7 - (udh_len * 8) % 7) % 7
                assert udh_len + (fill + 7 * len(septets) + 7) // 8 <= 140
            else:
                septets = None
                assert len(body) <= 160
            if septets is not None and seq < total:
                assert septets[-1] != 0x1B  # never ends inside an escape pair


@settings(max_examples=300, deadline=None)
@given(texts)
def test_japanese_profiles_billing_matches_formula(text):
    for name, size in (("au", 67), ("rakuten", 67), ("docomo", 66), ("softbank", None)):
        try:
            p = plan(text, name)
        except TextError:
            continue
        n = p.characters
        expected = 1 if (size is None or n <= 70) else -(-n // size)
        assert p.billing_units == expected
        assert p.encoding == "ucs2"


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(emoji, japanese, newlines, ascii_), min_size=1, max_size=300).map("".join))
def test_counting_rule_by_hand(text):
    """SPEC's rule restated naively: per character, newline and astral counts."""
    folded = text.replace("\r\n", "\n")
    astral = sum(1 for c in folded if ord(c) > 0xFFFF)
    for name in ("au", "docomo"):
        expected = len(folded) + astral + folded.count("\n")
        try:
            assert plan(text, name).characters == expected
        except TextError as exc:
            assert exc.count == expected
    for name in ("softbank", "rakuten"):
        expected = len(folded) + astral
        try:
            assert plan(text, name).characters == expected
        except TextError as exc:
            assert exc.count == expected
