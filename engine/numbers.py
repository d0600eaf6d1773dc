"""Phone numbers: normalisation to E.164, the SMPP address forms, carrier lookup.

Pure, except :meth:`CarrierLookup.from_file`, which reads a file.

**normalize** takes what people type for a Japanese mobile number and returns
E.164 ``+81…``: ``+81 90-1234-5678``, ``090-1234-5678``, ``09012345678``,
``819012345678``, ``+819012345678``, ``+81 (0)90…``, with full-width digits
and ``＋``, and the separators space (also U+3000, NBSP, tab), hyphens and
dashes (``-``, ``‐``, ``‑``, ``–``, ``—``, ``―``, ``−``, ``－``, ``ー``, ``ｰ``),
dots (``.``, ``．``) and parentheses (``()``, ``（）``).  Anything else is a
:class:`NumberError` with a machine ``reason``:

=====================  ==============================================================
``empty``              nothing but separators
``bad_characters``     a character that is neither a digit, a separator nor a leading +
``international_prefix``  national form starting 00 / 010: write the number with +
``not_japanese``       a + number outside +81 (unless ``allow_foreign``), or digits
                       with neither trunk 0 nor 81 (ambiguous)
``too_short``          fewer digits than the number's range has (or < 10 nationally)
``too_long``           more digits than the number's range has (or > 15 in E.164)
``not_mobile``         a range that cannot receive SMS: landlines 0[1-9]…, 050 IP
                       phones, 0120/0800 free dial, 0570, 0200 (14-digit M2M), 0204
                       pagers — anything not in ``prefixes``
=====================  ==============================================================

SMS-capable ranges (``SMS_PREFIXES``, national form → national length; the
longest matching prefix decides, ``None`` = not allowed): 070/080/090
mobile and 060 (mobile voice, being opened by MIC) with 11 digits; 020 M2M
with 11 digits (some devices receive SMS), except 0200 (the 14-digit M2M
range, excluded by default — pass ``{**SMS_PREFIXES, "0200": 14}`` to allow)
and 0204 (pagers); 0800 inside 080 is free dial.  050 IP phones and
landlines cannot receive SMS, so they are refused rather than sent to a
carrier that will reject them.  The range
says nothing about the carrier (MNP): see :class:`CarrierLookup`.

**to_smpp** / **from_smpp**: the SMPP destination_addr is E.164 without "+"
(TON 1, NPI 1); receipts' source_addr comes back in whatever form the SMSC
uses and :func:`from_smpp` maps it back to E.164 (the key pacing and
correlation use).

**CarrierLookup**: number → carrier, from a ``number,carrier`` file (see the
class).  A failed lookup is ``None`` — an error for the caller, not a guess
(shared/SPEC.md, "Carrier determination"); the prefix fallback is off unless
a table is given, and is documented as a guess.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "NumberError",
    "SMS_PREFIXES",
    "CARRIERS",
    "normalize",
    "to_smpp",
    "from_smpp",
    "CarrierLookup",
    "LookupProblem",
]

#: national prefix (with trunk 0) → national length in digits; None = not SMS-capable.
SMS_PREFIXES: Mapping[str, int | None] = {
    "090": 11,
    "080": 11,
    "070": 11,
    "060": 11,
    "020": 11,
    "0200": None,  # 14-digit M2M
    "0204": None,  # pagers
    "0800": None,  # free dial 0800-xxx-xxxx, inside 080
}

_SMS_LONGEST = max(map(len, SMS_PREFIXES))

CARRIERS = ("au", "docomo", "softbank", "rakuten")

_SEPARATORS = " \t\u00a0\u3000-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\uff0d\u30fc\uff70.\uff0e()\uff08\uff09"
_TABLE: dict[int, int | None] = {ord(c): None for c in _SEPARATORS}
_TABLE.update({0xFF10 + i: ord("0") + i for i in range(10)})  # full-width digits
_TABLE[0xFF0B] = ord("+")  # full-width plus

_MAX_E164_DIGITS = 15


class NumberError(ValueError):
    """A number that cannot be used; ``reason`` is a machine word (module doc)."""

    def __init__(self, reason: str, number: object) -> None:
        super().__init__(f"{reason}: {number!r}")
        self.reason = reason
        self.number = number


def _clean(number: object) -> str:
    if not isinstance(number, str):
        raise NumberError("bad_characters", number)
    if number.isascii() and number[1:].isdigit() and (number[0] == "+" or number[0].isdigit()):
        return number  # the usual case, already clean: skip the translation table
    s = number.translate(_TABLE)
    if not s:
        raise NumberError("empty", number)
    body = s[1:] if s[0] == "+" else s
    if not body:
        raise NumberError("empty", number)
    if not (body.isascii() and body.isdigit()):
        raise NumberError("bad_characters", number)
    return s


def normalize(
    number: object,
    *,
    prefixes: Mapping[str, int | None] = SMS_PREFIXES,
    allow_foreign: bool = False,
) -> str:
    """E.164 (``+81…``) for a Japanese SMS-capable number; :class:`NumberError` otherwise.

    ``prefixes``: national prefix → national length (None: refused), longest
    match wins.  ``allow_foreign``: accept ``+`` numbers of other countries
    (checked only for length, 8–15 digits)."""
    if (
        prefixes is SMS_PREFIXES
        and type(number) is str
        and len(number) == 13
        and number.startswith(("+8190", "+8180", "+8170", "+8160"))
        and not number.startswith("+81800")
        and number.isascii()
        and number[1:].isdigit()
    ):
        return number  # a mobile number in E.164 already: what the general path gives, 6x faster
    s = _clean(number)
    if s[0] == "+":
        digits = s[1:]
        if not digits.startswith("81"):
            if not allow_foreign:
                raise NumberError("not_japanese", number)
            if digits[0] == "0":
                raise NumberError("bad_characters", number)
            if len(digits) < 8:
                raise NumberError("too_short", number)
            if len(digits) > _MAX_E164_DIGITS:
                raise NumberError("too_long", number)
            return "+" + digits
        national = "0" + digits[2:].removeprefix("0")  # "+81 (0)90…" → "090…"
    elif s[0] == "0":
        if s.startswith(("00", "010")):
            raise NumberError("international_prefix", number)
        national = s
    elif s.startswith("81"):
        national = "0" + s[2:].removeprefix("0")
    else:
        raise NumberError("not_japanese", number)
    if len(national) < 10:
        raise NumberError("too_short", number)
    if len(national) > _MAX_E164_DIGITS - 1:  # 81 + (national − trunk 0) ≤ 15
        raise NumberError("too_long", number)
    length = None
    longest = _SMS_LONGEST if prefixes is SMS_PREFIXES else max(map(len, prefixes), default=0)
    for end in range(min(len(national), longest), 0, -1):
        if national[:end] in prefixes:
            length = prefixes[national[:end]]
            break
    if length is None:
        raise NumberError("not_mobile", number)
    if len(national) < length:
        raise NumberError("too_short", number)
    if len(national) > length:
        raise NumberError("too_long", number)
    return "+81" + national[1:]


def to_smpp(e164: str) -> str:
    """``+819012345678`` → ``819012345678`` (destination_addr, TON 1 / NPI 1)."""
    if len(e164) < 2 or e164[0] != "+" or not (e164[1:].isascii() and e164[1:].isdigit()):
        raise NumberError("not_e164", e164)
    return e164[1:]


def from_smpp(addr: str, ton: int | None = None) -> str:
    """An SMPP address (receipt source_addr, MO source_addr) → E.164.

    Tolerant: ``+81…``, ``81…``, national ``0…`` and, with ``ton=2``
    (national), ``90…`` all give ``+81…``; other digits are taken as
    international (SMPP carries them without "+").  Range and length are not
    checked (a receipt names the number we sent to)."""
    s = _clean(addr)
    if s[0] == "+":
        digits = s[1:]
    elif ton == 2 or (s[0] == "0" and not s.startswith(("00", "010"))):
        digits = "81" + s.removeprefix("0")
    elif s.startswith("010"):
        digits = s[3:]
    elif s.startswith("00"):
        digits = s[2:]
    else:
        digits = s
    if digits.startswith("810"):
        digits = "81" + digits[3:]
    if not digits or digits[0] == "0":
        raise NumberError("bad_characters", addr)
    if len(digits) > _MAX_E164_DIGITS:
        raise NumberError("too_long", addr)
    return "+" + digits


class LookupProblem(NamedTuple):
    """A line of a lookup file that was not used."""

    line: int  # 1-based
    text: str
    reason: str  # a NumberError reason, "unknown_carrier" or "bad_fields"

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}: {self.text!r}"


def _e164_key(e164: str) -> int | None:
    digits = e164[1:]
    if e164[:1] != "+" or not digits or digits[0] == "0" or not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits)


class CarrierLookup:
    """Number → carrier (``au``, ``docomo``, ``softbank``, ``rakuten``).

    File format (:meth:`from_file` / :meth:`from_lines`): one ``number,carrier``
    per line; ``#`` starts a comment (whole line or the rest of one); blank
    lines and a ``number,carrier`` header are skipped; numbers in any form
    :func:`normalize` accepts; carrier names are case-insensitive.  A number
    listed twice: the last line wins and ``duplicates`` counts it.  Lines that
    cannot be used are listed in ``problems`` (:class:`LookupProblem`, with
    line numbers), never silently dropped; the caller decides whether any
    problem is fatal.

    Storage: a sorted ``array('q')`` of E.164 digits as integers and an
    ``array('B')`` of carrier indexes — 9 bytes per entry (≈ 9 MB for
    1,000,000 numbers; a dict of strings would be ≈ 120 bytes per entry),
    looked up by binary search (measured in bench/pacing_bench.py).  Immutable:
    to reload, build a new one and swap the reference.

    ``fallback`` (off by default): prefix → carrier, prefixes in national
    (``090``) or E.164 (``+8190``) form; when a number is not in the table,
    the longest matching prefix answers.  **A guess**: numbers are portable
    (MNP), so a prefix says which carrier the range was issued to, not where
    the number is now.  :meth:`lookup_exact` never guesses.
    """

    __slots__ = ("_keys", "_carriers", "_fallback", "_fallback_lengths", "problems", "duplicates")

    def __init__(
        self,
        entries: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        *,
        fallback: Mapping[str, str] | None = None,
    ) -> None:
        """``entries``: E.164 number → carrier (already normalised; a bad one raises)."""
        table: dict[int, int] = {}
        self.duplicates = 0
        self.problems: list[LookupProblem] = []
        items = entries.items() if isinstance(entries, Mapping) else entries
        for number, carrier in items:
            key = _e164_key(number)
            if key is None:
                raise NumberError("not_e164", number)
            index = _carrier_index(carrier)
            if index is None:
                raise ValueError(f"unknown carrier {carrier!r}")
            if key in table:
                self.duplicates += 1
            table[key] = index
        self._build(table)
        self._fallback: dict[str, str] = {}
        if fallback:
            for prefix, carrier in fallback.items():
                index = _carrier_index(carrier)
                if index is None:
                    raise ValueError(f"unknown carrier {carrier!r} for prefix {prefix!r}")
                self._fallback[_e164_prefix(prefix)] = CARRIERS[index]
        self._fallback_lengths = sorted({len(p) for p in self._fallback}, reverse=True)

    def _build(self, table: dict[int, int]) -> None:
        keys = sorted(table)
        self._keys = array("q", keys)
        self._carriers = array("B", [table[k] for k in keys])

    @classmethod
    def from_lines(
        cls,
        lines: Iterable[str],
        *,
        fallback: Mapping[str, str] | None = None,
        prefixes: Mapping[str, int | None] = SMS_PREFIXES,
        allow_foreign: bool = False,
    ) -> CarrierLookup:
        """Parse ``number,carrier`` lines (class doc); bad lines go to ``problems``."""
        self = cls(fallback=fallback)
        table: dict[int, int] = {}
        problems: list[LookupProblem] = []
        duplicates = 0
        for lineno, raw in enumerate(lines, 1):
            text = raw.rstrip("\r\n")
            body = text.split("#", 1)[0].strip()
            if not body:
                continue
            fields = [f.strip() for f in body.split(",")]
            if len(fields) != 2 or not fields[0] or not fields[1]:
                problems.append(LookupProblem(lineno, text, "bad_fields"))
                continue
            if fields[0].lower() == "number" and fields[1].lower() == "carrier":
                continue  # header
            try:
                e164 = normalize(fields[0], prefixes=prefixes, allow_foreign=allow_foreign)
            except NumberError as exc:
                problems.append(LookupProblem(lineno, text, exc.reason))
                continue
            index = _carrier_index(fields[1])
            if index is None:
                problems.append(LookupProblem(lineno, text, "unknown_carrier"))
                continue
            key = int(e164[1:])
            if key in table:
                duplicates += 1
            table[key] = index
        self._build(table)
        self.problems = problems
        self.duplicates = duplicates
        return self

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        *,
        fallback: Mapping[str, str] | None = None,
        prefixes: Mapping[str, int | None] = SMS_PREFIXES,
        allow_foreign: bool = False,
    ) -> CarrierLookup:
        """:meth:`from_lines` over a UTF-8 file (a BOM is allowed)."""
        with open(path, encoding="utf-8-sig", newline="") as fh:
            return cls.from_lines(fh, fallback=fallback, prefixes=prefixes, allow_foreign=allow_foreign)

    def lookup_exact(self, e164: str) -> str | None:
        """The carrier the table names for this E.164 number, or None."""
        key = _e164_key(e164)
        if key is None:
            return None
        keys = self._keys
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return CARRIERS[self._carriers[i]]
        return None

    def lookup(self, e164: str) -> str | None:
        """The table's carrier; else, only if a fallback table was given, the
        longest-prefix guess; else None (the caller treats it as an error)."""
        carrier = self.lookup_exact(e164)
        if carrier is None and self._fallback:
            for n in self._fallback_lengths:
                guess = self._fallback.get(e164[:n])
                if guess is not None:
                    return guess
        return carrier

    @property
    def has_fallback(self) -> bool:
        return bool(self._fallback)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, e164: object) -> bool:
        return isinstance(e164, str) and self.lookup_exact(e164) is not None

    def nbytes(self) -> int:
        """Bytes held by the table's arrays (not the fallback)."""
        return self._keys.itemsize * len(self._keys) + self._carriers.itemsize * len(self._carriers)

    def stats(self) -> dict[str, int]:
        return {
            "entries": len(self._keys),
            "duplicates": self.duplicates,
            "problems": len(self.problems),
            "fallback_prefixes": len(self._fallback),
            "bytes": self.nbytes(),
        }


def _carrier_index(carrier: object) -> int | None:
    if not isinstance(carrier, str):
        return None
    name = carrier.strip().lower()
    return CARRIERS.index(name) if name in CARRIERS else None


def _e164_prefix(prefix: str) -> str:
    """A fallback prefix in national (``090``), ``81…`` or E.164 form → ``+81…``."""
    s = _clean(prefix)
    if s[0] == "+":
        return s
    if s[0] == "0":
        return "+81" + s[1:]
    if s.startswith("81"):
        return "+" + s
    raise NumberError("not_japanese", prefix)
