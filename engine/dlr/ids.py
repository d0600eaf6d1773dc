"""Carrier message ids: the keys under which a submit_sm_resp and its receipt meet.

SMPP leaves ``message_id`` opaque, Appendix B calls the receipt ``id:``
decimal, and real SMSCs mix the two: hex in the response and decimal in the
text (Vonage: ``16fee0e525`` ↔ ``98765432101``), upper vs lower case,
leading zeros (DOMAIN.md §2.3 pitfall 1).  The raw id is kept by the caller;
this module only turns ids into *keys*.

Key space (all keys are ``str``):

* a number (an id read as ``hex`` or ``decimal``) becomes its integer value
  written in decimal without leading zeros: ``"0x16FEE0E525"`` (hex),
  ``"16fee0e525"`` (hex) and ``"098765432101"`` (decimal) all give
  ``"98765432101"``;
* an opaque id (``string``, or an id that is not a valid numeral of its
  declared base) becomes itself stripped of outer white space, lower-cased,
  leading zeros removed (``"0"`` if only zeros).  A digits-only opaque id
  therefore gives the same key as the same id read as decimal.

Collisions, i.e. two *different* messages of one carrier sharing a key:

* ``hex`` / ``decimal`` forms: none — reading a valid numeral is injective;
  invalid ones fall back to opaque keys, which keep a non-digit character
  and so never equal a numeric key.
* ``string`` form: ids that differ only in case, leading zeros or outer
  white space (``"0A1"`` and ``"a1"``).  We accept this: SMSCs do not issue
  such pairs, and the opposite mistake (missing a match) is the real-world
  failure (jasmin issues 643, 916).
* ``auto`` receipt text (no TLV): the text id is also tried in the *other*
  base, so it can meet a different live message whose id, read in the other
  base, has the same value (text ``"100"`` is decimal 100 or hex 0x100 =
  256).  Keys are tried in order, the same-form reading first, so the true
  message wins whenever it is still registered.  With the long sequential
  ids SMSCs issue the two readings differ by orders of magnitude
  (a k-digit decimal read as hex is ≥ 1.6^(k-1) times larger), so both
  cannot be live at once in practice.  Configure the explicit form when the
  carrier's is known.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import msgspec

from engine.dlr._keys import _decimal, _hex, _hex_text, _opaque, id_key  # noqa: F401 - re-exported

if TYPE_CHECKING:
    from engine.dlr._records import Receipt

__all__ = ["IdForm", "IdScheme", "id_key"]

IdForm = Literal["string", "hex", "decimal"]

# The key functions are compiled by the native build (engine/dlr/_keys.py); the
# Struct stays here, interpreted: mypyc drops class keywords such as frozen=True
# (python/mypy#21938).


class IdScheme(msgspec.Struct, frozen=True, gc=False):
    """How one carrier writes message ids.

    ``response``: how submit_sm_resp (and so the receipted_message_id TLV,
    which repeats it) writes them.  ``receipt_text``: how the receipt
    text's ``id:`` writes them; ``auto`` means: use the TLV when the receipt
    has one (in the response's form), else try the text id in the
    response's form first and then in the other base.

    Our simulator: au and SoftBank answer hex, docomo and Rakuten decimal;
    the text id is ``same`` by default, or decimal/hex (``receipt_id_style``),
    all of which ``auto`` handles."""

    response: IdForm = "string"
    receipt_text: Literal["string", "hex", "decimal", "auto"] = "auto"

    def __post_init__(self) -> None:
        if self.response not in ("string", "hex", "decimal"):
            raise ValueError(f"IdScheme.response: string, hex or decimal, not {self.response!r}")
        if self.receipt_text not in ("string", "hex", "decimal", "auto"):
            raise ValueError(f"IdScheme.receipt_text: string, hex, decimal or auto, not {self.receipt_text!r}")

    def response_key(self, resp_id: str) -> str:
        """The key a submit_sm_resp ``message_id`` is registered under ("" if empty)."""
        return id_key(resp_id, self.response)

    def text_keys(self, text_id: str) -> tuple[str, ...]:
        """The keys a receipt text ``id:`` may meet, most likely first."""
        s = text_id.strip()
        if not s:
            return ()
        form = self.receipt_text
        if form != "auto":
            return (id_key(s, form),)
        first = id_key(s, self.response)
        if self.response == "string":
            # response ids kept opaque: a hex text may be a decimal response, a decimal text a hex one
            alt1 = _hex(s)
            alt2 = _hex_text(s)
        elif self.response == "hex":
            alt1 = _decimal(s)
            alt2 = None
        else:
            alt1 = _hex(s)
            alt2 = None
        if alt1 is None or alt1 == first:
            alt1 = None
        if alt2 is None or alt2 == first or alt2 == alt1:
            alt2 = None
        if alt1 is None:
            return (first,) if alt2 is None else (first, alt2)
        return (first, alt1) if alt2 is None else (first, alt1, alt2)

    def receipt_keys(self, receipt: Receipt) -> tuple[str, ...]:
        """The keys a receipt may meet its response on: the TLV id's first, then the text id's.

        In ``auto`` mode a receipt with the TLV is keyed by the TLV alone."""
        tlv = receipt.tlv_id
        text = receipt.text_id
        if tlv:
            first = id_key(tlv, self.response)
            if not text or self.receipt_text == "auto":
                return (first,) if first else ()
            second = id_key(text, self.receipt_text)
            if not first:
                return (second,) if second else ()
            return (first,) if second == first or not second else (first, second)
        if text:
            return self.text_keys(text)
        return ()
