"""Id keys: hex vs decimal, case, leading zeros, the Vonage example, and when ids collide."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.dlr import IdScheme, Receipt, id_key, parse_receipt

from ._sim import sim_receipt


def receipt(tlv: str | None = None, text: str | None = None) -> Receipt:
    return Receipt(message_id=tlv or text or "", tlv_id=tlv, text_id=text, state=2, final=True, delivered=True)


def meets(scheme: IdScheme, resp_id: str, r: Receipt) -> bool:
    return scheme.response_key(resp_id) in scheme.receipt_keys(r)


@pytest.mark.parametrize("text_form", ["decimal", "auto"])
def test_vonage_hex_response_decimal_receipt(text_form):
    s = IdScheme(response="hex", receipt_text=text_form)
    assert s.response_key("16fee0e525") == "98765432101"
    assert meets(s, "16fee0e525", receipt(text="98765432101"))
    assert meets(s, "16FEE0E525", receipt(text="098765432101"))
    assert meets(s, "0x16fee0e525", receipt(text="98765432101"))


def test_vonage_with_string_response_and_auto_text():
    s = IdScheme(response="string")  # the response form not configured: opaque
    assert meets(s, "16fee0e525", receipt(text="98765432101"))  # decimal text → hex written
    assert meets(s, "98765432101", receipt(text="16FEE0E525"))  # hex text → decimal value


@pytest.mark.parametrize(
    ("scheme", "resp", "text"),
    [
        (IdScheme(response="hex"), "00ABCDEF", "abcdef"),
        (IdScheme(response="decimal"), "000123", "123"),
        (IdScheme(response="decimal", receipt_text="hex"), "255", "FF"),
        (IdScheme(response="hex", receipt_text="decimal"), "ff", "0255"),
        (IdScheme(response="string"), " ABC-123 ", "abc-123"),
        (IdScheme(response="string"), "000xyz", "XYZ"),
        (IdScheme(response="string", receipt_text="string"), "0", "000"),
    ],
)
def test_case_zeros_and_whitespace(scheme, resp, text):
    assert meets(scheme, resp, receipt(text=text))
    assert meets(scheme, resp, receipt(tlv=resp.strip().lower()))


def test_tlv_first_then_text():
    s = IdScheme(response="hex", receipt_text="decimal")
    assert s.receipt_keys(receipt(tlv="16fee0e525", text="98765432101")) == ("98765432101",)
    assert s.receipt_keys(receipt(tlv="ff", text="1")) == ("255", "1")
    # auto: the TLV alone when present
    assert IdScheme(response="hex").receipt_keys(receipt(tlv="ff", text="1")) == ("255",)
    assert IdScheme(response="hex").receipt_keys(receipt(text="ff")) == ("255",)
    assert IdScheme(response="hex").receipt_keys(receipt(text="100")) == ("256", "100")  # same form first
    assert IdScheme(response="hex").receipt_keys(receipt()) == ()


@pytest.mark.parametrize("style", ["same", "decimal", "hex"])
@pytest.mark.parametrize("response", ["hex", "decimal"])
def test_simulator_every_id_style(style, response):
    """Our simulator: response hex (au, SoftBank) or decimal (docomo, Rakuten); text id same/decimal/hex."""
    n = 1763700000123456
    resp = "%x" % n if response == "hex" else str(n)
    r = parse_receipt(sim_receipt(resp, n=n, style=style))
    assert r is not None
    for scheme in (IdScheme(response=response), IdScheme(response="string")):
        assert meets(scheme, resp, r)
        # without the TLV too (text id only)
        bare = receipt(text=r.text_id)
        assert meets(scheme, resp, bare)


def test_non_numerals_fall_back_to_opaque():
    assert id_key("xyz-1", "hex") == "xyz-1"
    assert id_key("12a", "decimal") == "12a"
    assert id_key("", "hex") == "" and id_key("   ", "string") == ""
    assert id_key("f" * 65, "hex") == "f" * 65  # too long for a numeral


# --- collisions -------------------------------------------------------------------------

_forms = st.sampled_from(["hex", "decimal"])


def write(n: int, form: str, zeros: int, upper: bool) -> str:
    s = ("%X" if upper else "%x") % n if form == "hex" else str(n)
    return "0" * zeros + s


@given(n=st.integers(0, 2**64), resp_form=_forms, text_form=_forms, z1=st.integers(0, 3), z2=st.integers(0, 3), u1=st.booleans(), u2=st.booleans())
def test_same_message_always_meets(n, resp_form, text_form, z1, z2, u1, u2):
    resp = write(n, resp_form, z1, u1)
    text = write(n, text_form, z2, u2)
    for scheme in (
        IdScheme(response=resp_form, receipt_text=text_form),
        IdScheme(response=resp_form, receipt_text="auto"),
        IdScheme(response="string", receipt_text="auto"),
    ):
        assert meets(scheme, resp, receipt(text=text)), scheme
        assert meets(scheme, resp, receipt(tlv=resp.lower(), text=text)), scheme


@given(a=st.integers(0, 2**64), b=st.integers(0, 2**64), form=_forms, text_form=_forms, za=st.integers(0, 2), zb=st.integers(0, 2))
def test_explicit_forms_never_collide(a, b, form, text_form, za, zb):
    """With both forms configured, two different messages never share a key."""
    s = IdScheme(response=form, receipt_text=text_form)
    if a != b:
        assert s.response_key(write(a, form, za, False)) != s.response_key(write(b, form, zb, True))
        assert s.response_key(write(a, form, za, False)) not in s.receipt_keys(receipt(text=write(b, text_form, zb, False)))


@given(a=st.text(max_size=12), b=st.text(max_size=12))
def test_opaque_ids_meet_only_modulo_case_whitespace_zeros(a, b):
    s = IdScheme(response="string", receipt_text="string")
    same = (a.strip().lower().lstrip("0") or a.strip()[:1]) == (b.strip().lower().lstrip("0") or b.strip()[:1])
    if s.response_key(a) and s.response_key(b):
        assert (s.response_key(a) == s.response_key(b)) == same


def test_documented_auto_collision_and_its_cure():
    """auto without the TLV: text '100' is decimal 100 (hex response '64') or hex 0x100 (response '100').
    The same-form reading is tried first; configuring the text form removes the ambiguity."""
    auto = IdScheme(response="hex")
    keys = auto.receipt_keys(receipt(text="100"))
    assert keys == (auto.response_key("100"), auto.response_key("64"))
    explicit = IdScheme(response="hex", receipt_text="decimal")
    assert explicit.receipt_keys(receipt(text="100")) == (explicit.response_key("64"),)


def test_bad_scheme_rejected():
    with pytest.raises(ValueError):
        IdScheme(response="auto")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        IdScheme(receipt_text="octal")  # type: ignore[arg-type]
