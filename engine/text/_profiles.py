"""Per-carrier text profiles.

The four Japanese profiles follow the seed tables (SPEC.md, DOMAIN.md §4.1),
read as wire facts (an inference, kept configurable):

* 2 bytes per character and 4 per newline (au, docomo) = UCS-2 with the
  newline sent as CR LF; SoftBank and Rakuten count a newline as 1, so they
  send LF.
* 67 characters per further unit (au, Rakuten) = UCS-2 with the 6-octet,
  8-bit-reference UDH (134 octets); 66 (docomo) = UCS-2 with the 7-octet,
  16-bit-reference UDH (132 of 133 octets).
* SoftBank bills any length up to 670 as one unit = one PDU carrying
  ``message_payload``.
* None of them uses GSM-7: Japanese carriers count full and half width
  alike, which only holds for UCS-2.

Rakuten: maximum 660 characters but billed on the 67-per-unit table, so its
top unit is 604–660 = 10 (the two numbers are kept as separate settings).

``generic`` is for international SMSCs: GSM-7 when every character fits,
UCS-2 otherwise; UDH with 8-bit reference; text sent as given (no newline
conversion); no character maximum (only the 255-part limit); billed one
unit per part.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Literal, Mapping

import msgspec

from engine.text._errors import TextError

__all__ = ["PROFILES", "TextProfile", "resolve_profile"]

Dc0Meaning = Literal["gsm7", "ascii", "latin1"]
Concatenation = Literal["udh8", "udh16", "sar", "payload"]

_DC0 = ("gsm7", "ascii", "latin1")
_CONCAT = ("udh8", "udh16", "sar", "payload")


class TextProfile(msgspec.Struct, frozen=True, kw_only=True):
    """How one carrier (or SMSC) wants text encoded, split, limited and billed.

    Fields:
        name: profile name; the plan's ``carrier`` and error messages use it.
        max_characters: maximum characters per message, counted by SPEC's
            Characters rule (UTF-16 code units of the wire form). ``None``:
            no character limit, only ``max_parts``.
        max_parts: maximum number of concatenated parts (1..255; the UDH
            total field is one octet).
        newline_crlf: send every newline as CR LF (counts 2 characters).
            Input CR LF is first folded to LF, then every LF becomes CR LF; a
            lone CR is kept as it is.
        fold_crlf: when ``newline_crlf`` is False, fold input CR LF to LF
            (so a newline counts 1 whatever the caller's line ends). Ignored
            when ``newline_crlf`` is True (folding is then always done).
        allow_gsm7: may GSM 03.38 be used at all? If False, always UCS-2.
        dc0_meaning: what data_coding 0 means at this SMSC: ``"gsm7"`` (GSM
            03.38 septets), ``"ascii"`` or ``"latin1"`` (the SMSC converts to
            GSM itself). With ``ascii``/``latin1`` a text goes as data_coding
            0 only if every character is both GSM and in that charset;
            segment sizes are still counted in GSM septets (the air form).
        gsm7_packed: with ``dc0_meaning="gsm7"``, send packed septets (8 in
            7 octets) instead of the SMPP norm, one septet per octet.
        concatenation: how a text longer than one part goes: ``"udh8"`` (UDH,
            IEI 0x00, 8-bit reference, 153 septets / 67 UCS-2 units per part),
            ``"udh16"`` (IEI 0x08, 16-bit reference, 152 / 66), ``"sar"``
            (sar_* TLVs, no UDH; part sizes per ``sar_ref_bits``) or
            ``"payload"`` (one PDU, whole text in message_payload; the SMSC
            splits).
        sar_ref_bits: SAR mode only: 8 (refs 0..255, parts sized as udh8) or
            16 (refs 0..65535, parts sized as udh16 — safe whatever UDH the
            SMSC builds).
        billing_first_unit: characters billed as one unit (1..N = 1).
        billing_unit_size: above ``billing_first_unit``, units =
            ⌈characters / billing_unit_size⌉. ``None``: flat, always 1 unit.
        billing_per_part: bill one unit per part instead (the generic SMSC
            way; for ``payload`` the parts a udh8 split would make). Overrides
            the two settings above.
    """

    name: str
    max_characters: int | None
    max_parts: int = 255
    newline_crlf: bool = False
    fold_crlf: bool = True
    allow_gsm7: bool = False
    dc0_meaning: Dc0Meaning = "gsm7"
    gsm7_packed: bool = False
    concatenation: Concatenation = "udh8"
    sar_ref_bits: Literal[8, 16] = 16
    billing_first_unit: int = 70
    billing_unit_size: int | None = 67
    billing_per_part: bool = False

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("name must not be empty")
        if self.max_characters is not None and self.max_characters < 1:
            problems.append("max_characters must be >= 1 or None")
        if not 1 <= self.max_parts <= 255:
            problems.append("max_parts must be 1..255")
        if self.dc0_meaning not in _DC0:
            problems.append(f"dc0_meaning must be one of {_DC0}")
        if self.concatenation not in _CONCAT:
            problems.append(f"concatenation must be one of {_CONCAT}")
        if self.sar_ref_bits not in (8, 16):
            problems.append("sar_ref_bits must be 8 or 16")
        if self.gsm7_packed and self.dc0_meaning != "gsm7":
            problems.append("gsm7_packed needs dc0_meaning='gsm7'")
        if self.billing_first_unit < 0:
            problems.append("billing_first_unit must be >= 0")
        if self.billing_unit_size is not None and self.billing_unit_size < 1:
            problems.append("billing_unit_size must be >= 1 or None")
        if problems:
            raise ValueError(f"TextProfile {self.name!r}: " + "; ".join(problems))

    @property
    def ref_max(self) -> int:
        """Largest concatenation reference this profile accepts (255 or 65535).

        The caller's per-destination counter should wrap at ``ref_max + 1``.
        """
        if self.concatenation == "udh8" or (
            self.concatenation == "sar" and self.sar_ref_bits == 8
        ):
            return 0xFF
        return 0xFFFF


PROFILES: Mapping[str, TextProfile] = MappingProxyType(
    {
        "au": TextProfile(
            name="au",
            max_characters=670,
            newline_crlf=True,
            concatenation="udh8",
            billing_first_unit=70,
            billing_unit_size=67,
        ),
        "docomo": TextProfile(
            name="docomo",
            max_characters=660,
            newline_crlf=True,
            concatenation="udh16",
            billing_first_unit=70,
            billing_unit_size=66,
        ),
        "softbank": TextProfile(
            name="softbank",
            max_characters=670,
            newline_crlf=False,
            concatenation="payload",
            billing_first_unit=70,
            billing_unit_size=None,
        ),
        "rakuten": TextProfile(
            name="rakuten",
            max_characters=660,
            newline_crlf=False,
            concatenation="udh8",
            billing_first_unit=70,
            billing_unit_size=67,
        ),
        "generic": TextProfile(
            name="generic",
            max_characters=None,
            newline_crlf=False,
            fold_crlf=False,
            allow_gsm7=True,
            dc0_meaning="gsm7",
            gsm7_packed=False,
            concatenation="udh8",
            billing_per_part=True,
        ),
    }
)


def resolve_profile(carrier: str | TextProfile) -> TextProfile:
    """The profile itself, or the one named (exact key, else lower-cased)."""
    if isinstance(carrier, TextProfile):
        return carrier
    profile = PROFILES.get(carrier)
    if profile is None and isinstance(carrier, str):
        profile = PROFILES.get(carrier.lower())
    if profile is None:
        raise TextError(
            "unknown_carrier",
            f"unknown carrier {carrier!r}; known: {', '.join(sorted(PROFILES))}",
            carrier=carrier if isinstance(carrier, str) else None,
        )
    return profile
