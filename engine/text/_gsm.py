"""GSM 03.38 (3GPP TS 23.038) default alphabet: tables, unpacked and packed codecs.

Decisions (see DOMAIN.md §3.1, §3.2):

* **0x09 is capital 'Ç' (U+00C7)**, as in the current 3GPP TS 23.038 table
  (Perl ``Encode::GSM0338``). The Unicode Consortium's mapping file gives
  small 'ç' instead. We encode only 'Ç' to 0x09 and decode 0x09 to 'Ç';
  small 'ç' is *not* a GSM character here and forces UCS-2, so no handset
  can show a different letter than the one we were given.
* The extension table has exactly 10 characters, each sent as ESC (0x1B)
  plus a code and costing two septets: form feed, ``^ { } \\ [ ~ ] | €``.
* U+001B (ESC) itself, backtick, small 'ç', full-width '￥' and anything
  else outside the two tables is not GSM: the planner falls back to UCS-2.
  Nothing is ever substituted.
* Decoding (receive side) follows 23.038: ESC + an undefined code shows the
  basic-table character for that code; ESC ESC and a lone trailing ESC show
  a space. Octets >= 0x80 are invalid septets: ``errors="strict"`` raises
  :class:`TextError` (reason ``"bad_data"``), ``errors="replace"`` yields
  U+FFFD.
* **Unpacked** (one septet per octet) is the SMPP norm and the default.
  **Packed** (8 septets in 7 octets) supports ``fill_bits`` so text after a
  UDH starts on a septet boundary. When the last octet has 7 spare bits the
  packer fills them with CR (23.038 §6.1.2.3.1), and :func:`unpack_gsm7`
  without an explicit septet count drops a trailing CR that occupies
  exactly the last 7 bits. The one ambiguous case on the SMPP wire (which
  counts octets, not septets) is a text that *really* ends with CR exactly
  on an octet boundary; the planner never produces such a part except as
  the final part of a message, and :func:`unpack_gsm7` decodes it exactly
  when given ``septets=``.
"""

from __future__ import annotations

from engine.text._errors import TextError

__all__ = [
    "BASIC",
    "EXTENSION",
    "GSM_CHARS",
    "ESC",
    "decode_gsm7",
    "encode_gsm7",
    "gsm7_fits",
    "pack_gsm7",
    "septet_length",
    "unpack_gsm7",
]

ESC = 0x1B

#: Basic table, index = septet code. Index 0x1B (ESC) is a placeholder.
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
assert len(BASIC) == 128

#: Extension table: character -> code sent after ESC.
EXTENSION: dict[str, int] = {
    "\x0c": 0x0A,
    "^": 0x14,
    "{": 0x28,
    "}": 0x29,
    "\\": 0x2F,
    "[": 0x3C,
    "~": 0x3D,
    "]": 0x3E,
    "|": 0x40,
    "€": 0x65,
}

_BASIC_CHARS = frozenset(c for i, c in enumerate(BASIC) if i != ESC)
#: Every Unicode character the default alphabet can carry (127 + 10).
GSM_CHARS: frozenset[str] = _BASIC_CHARS | frozenset(EXTENSION)
#: ASCII characters that are *not* GSM (for the fast ASCII check).
_ASCII_NON_GSM = frozenset(chr(i) for i in range(128)) - GSM_CHARS
#: Characters costing two septets.
_EXT_CHARS = frozenset(EXTENSION)

# str.translate table: char -> unpacked septet string (identity entries omitted).
_ENCODE_TABLE: dict[int, str] = {}
for _code, _char in enumerate(BASIC):
    if _code != ESC and ord(_char) != _code:
        _ENCODE_TABLE[ord(_char)] = chr(_code)
for _char, _code in EXTENSION.items():
    _ENCODE_TABLE[ord(_char)] = "\x1b" + chr(_code)
# ASCII characters that are identity-mapped must really be identical codes.
for _i in range(128):
    _c = chr(_i)
    if _c in GSM_CHARS and _i not in _ENCODE_TABLE:
        assert BASIC[_i] == _c, _c
del _code, _char, _i, _c

# Decoding: septet string -> text. Basic table is a 128-char str indexed by code.
_DECODE_BASIC = BASIC[:ESC] + " " + BASIC[ESC + 1 :]
_DECODE_EXT = {code: char for char, code in EXTENSION.items()}


def gsm7_fits(text: str) -> bool:
    """True when every character of ``text`` is in the GSM default alphabet or its extension."""
    if text.isascii():
        return _ASCII_NON_GSM.isdisjoint(text)
    return GSM_CHARS.issuperset(text)


def septet_length(text: str) -> int:
    """Septets needed for ``text`` (which must fit GSM): extension characters count 2."""
    n = len(text)
    if text.isascii():
        for c in "^{}\\[~]|\x0c":
            if c in text:
                n += text.count(c)
        return n
    return n + sum(text.count(c) for c in _EXT_CHARS if c in text)


def encode_gsm7(text: str) -> bytes:
    """Encode ``text`` to unpacked GSM 03.38 septets (one per octet, ESC pairs for extensions).

    Raises :class:`TextError` (reason ``"not_gsm7"``) when a character is not in the
    alphabet; never substitutes.
    """
    if not gsm7_fits(text):
        bad = next(c for c in text if c not in GSM_CHARS)
        raise TextError(
            "not_gsm7",
            f"character {bad!r} (U+{ord(bad):04X}) is not in the GSM 03.38 alphabet",
        )
    return text.translate(_ENCODE_TABLE).encode("latin-1")


def decode_gsm7(data: bytes, *, errors: str = "strict") -> str:
    """Decode unpacked GSM 03.38 septets (one per octet) to text.

    ``errors`` is ``"strict"`` (an octet >= 0x80 raises :class:`TextError`,
    reason ``"bad_data"``) or ``"replace"`` (each such octet becomes U+FFFD).
    """
    if not data.isascii():
        if errors != "replace":
            raise TextError("bad_data", "unpacked GSM 03.38 data contains an octet >= 0x80")
        pieces: list[str] = []
        start = 0
        for i, b in enumerate(data):
            if b >= 0x80:
                if start < i:
                    pieces.append(_decode_septets(data[start:i]))
                pieces.append("\ufffd")
                start = i + 1
        if start < len(data):
            pieces.append(_decode_septets(data[start:]))
        return "".join(pieces)
    return _decode_septets(data)


def _decode_septets(data: bytes) -> str:
    raw = data.decode("latin-1")
    if "\x1b" not in raw:
        return raw.translate(_DECODE_BASIC)
    pieces: list[str] = []
    i = 0
    n = len(raw)
    while i < n:
        j = raw.find("\x1b", i)
        if j < 0:
            pieces.append(raw[i:].translate(_DECODE_BASIC))
            break
        pieces.append(raw[i:j].translate(_DECODE_BASIC))
        if j + 1 >= n:  # lone trailing ESC: shown as a space
            pieces.append(" ")
            break
        code = ord(raw[j + 1])
        ext = _DECODE_EXT.get(code)
        if ext is not None:
            pieces.append(ext)
        elif code == ESC:  # reserved for a further extension table: a space
            pieces.append(" ")
        else:  # undefined extension code: the basic-table character
            pieces.append(_DECODE_BASIC[code])
        i = j + 2
    return "".join(pieces)


def pack_gsm7(septets: bytes, *, fill_bits: int = 0) -> bytes:
    """Pack unpacked septets (values 0..127) into GSM 7-bit packed octets.

    ``fill_bits`` (0..6) zero bits come first, so that after a UDH of ``k``
    octets the text starts on a septet boundary: ``fill_bits = (7 - 8*k % 7) % 7``.
    If the last octet would carry 7 spare bits they are filled with CR (0x0D),
    as 3GPP TS 23.038 §6.1.2.3.1 prescribes.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0..6")
    if not septets.isascii():
        raise TextError("bad_data", "septet values must be 0..127")
    total_bits = fill_bits + 7 * len(septets)
    if total_bits % 8 == 1:
        septets = septets + b"\r"
        total_bits += 7
    # Septet i sits at bit offset fill_bits + 7*i, octets little-endian.
    acc = 0
    shift = fill_bits
    for s in septets:
        acc |= s << shift
        shift += 7
    n_octets = (total_bits + 7) // 8
    return acc.to_bytes(n_octets, "little")


def unpack_gsm7(data: bytes, *, septets: int | None = None, fill_bits: int = 0) -> bytes:
    """Unpack GSM 7-bit packed octets to unpacked septets (one per octet).

    With ``septets`` given, exactly that many are returned. Without it the
    count is ``(8*len(data) - fill_bits) // 7``, and a trailing CR that fills
    exactly the last 7 bits is taken as 23.038 padding and dropped.
    """
    if not 0 <= fill_bits <= 6:
        raise ValueError("fill_bits must be 0..6")
    avail = 8 * len(data) - fill_bits
    if avail < 0:
        avail = 0
    n = avail // 7
    if septets is not None:
        if septets < 0 or septets > n:
            raise TextError("bad_data", f"{septets} septets do not fit {len(data)} packed octets")
        n = septets
    acc = int.from_bytes(data, "little") >> fill_bits
    out = bytearray(n)
    for i in range(n):
        out[i] = acc & 0x7F
        acc >>= 7
    if septets is None and n and avail % 7 == 0 and out[-1] == 0x0D:
        del out[-1]
    return bytes(out)
