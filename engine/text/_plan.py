"""The planner: text + carrier profile -> exactly what goes on the wire and what it costs.

Rules (SPEC.md "Characters", DOMAIN.md §3):

* **Wire form.** With ``newline_crlf`` (au, docomo) input CR LF is first
  folded to LF, then every LF becomes CR LF, so a newline always counts 2; a
  lone CR is kept as it is. Otherwise, with ``fold_crlf`` (SoftBank,
  Rakuten) CR LF is folded to LF so a newline counts 1; ``generic`` sends the
  text exactly as given.
* **Characters** = UTF-16 code units of the wire form (an emoji outside the
  BMP counts 2), whatever the encoding. Limits and billing use this count.
* **bytes** = octets of the UCS-2 wire form = 2 × characters (SPEC's
  definition; on au/docomo that is "2 per character, 4 per newline"). For a
  GSM-7 text it is still the UCS-2 figure, an accounting number; the octets
  actually carrying the text are ``text_octets``.
* **Encoding.** GSM-7 only when the profile allows it and every character
  is in the GSM 03.38 default alphabet or extension table (and, when data
  coding 0 means ASCII or Latin-1, also in that charset); otherwise UCS-2
  (UTF-16BE). Nothing is ever substituted, dropped or truncated: a text that
  cannot be sent raises :class:`TextError`.
* **Segmentation.** One part when it fits (160 septets / 70 UCS-2 units).
  Otherwise parts of 153/67 (udh8, sar with 8-bit refs) or 152/66 (udh16,
  sar with 16-bit refs), or one message_payload PDU. A part never ends
  inside an ESC pair or a surrogate pair (it ends one unit early). It may
  end between CR and LF: handsets reassemble before display, and the count
  is the same. At most ``max_parts`` (≤ 255) parts.
* **Billing** comes from the profile's table, not from the number of parts
  (a surrogate pair pushed to the next part can make 11 parts of a
  670-character au text, still billed 10).
* UDH layouts exactly as DOMAIN.md §3.5: ``05 00 03 RR TT SS`` and
  ``06 08 04 RH RL TT SS``; parts numbered from 1.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.text._errors import TextError
from engine.text._gsm import (
    _ENCODE_TABLE,
    decode_gsm7,
    gsm7_fits,
    pack_gsm7,
    unpack_gsm7,
)
from engine.text._profiles import TextProfile, resolve_profile
from engine.text._textplan import TextPlan

__all__ = [
    "ConcatInfo",
    "TextPlan",
    "count_characters",
    "decode_wire",
    "parse_concat_udh",
    "plan",
    "wire_form",
]

_UDHI = 0x40
_DC_UCS2 = 0x08
_DC_DEFAULT = 0x00


class ConcatInfo(NamedTuple):
    """Concatenation information element read from a UDH."""

    ref: int
    total: int
    seq: int
    ref_bits: int  # 8 or 16
    header_octets: int  # UDHL + 1: where the text starts


# --------------------------------------------------------------------------- helpers


def wire_form(text: str, profile: str | TextProfile) -> str:
    """``text`` as the profile sends it (newline conversion per SPEC's rule)."""
    return _wire_form(text, resolve_profile(profile))


def _wire_form(text: str, profile: TextProfile) -> str:
    if profile.newline_crlf:
        if "\r\n" in text:
            text = text.replace("\r\n", "\n")
        if "\n" in text:
            text = text.replace("\n", "\r\n")
    elif profile.fold_crlf and "\r\n" in text:
        text = text.replace("\r\n", "\n")
    return text


def count_characters(text: str, profile: str | TextProfile = "generic", *, wire: bool = True) -> int:
    """SPEC's Characters rule: UTF-16 code units of the wire-form text.

    With ``wire=True`` (default) ``text`` is already in wire form (e.g. read
    back from parts, CR LF included) and is counted as it is; lone
    surrogates (a pair cut by someone else's splitter) count 1 each. With
    ``wire=False`` the profile's newline conversion is applied first.
    """
    if not wire:
        text = _wire_form(text, resolve_profile(profile))
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) >> 1


def _split_ucs2(b: bytes, per: int) -> list[bytes]:
    """Split UTF-16BE octets into parts of at most ``per`` units, never inside a surrogate pair."""
    step = per << 1
    n = len(b)
    out = []
    pos = 0
    while pos < n:
        end = pos + step
        if end < n and 0xD8 <= b[end - 2] <= 0xDB:  # last unit is a high surrogate
            end -= 2
        out.append(b[pos:end])
        pos = end
    return out


def _split_septets(s: bytes, per: int, packed_fill: int | None) -> list[bytes]:
    """Split unpacked septets into parts of at most ``per``, never inside an ESC pair.

    In packed mode a non-final part also never ends with CR exactly on an
    octet boundary (that CR would read back as 23.038 padding).
    """
    n = len(s)
    out = []
    pos = 0
    while pos < n:
        end = pos + per
        if end < n:
            if s[end - 1] == 0x1B:  # ESC is always the first of a pair here
                end -= 1
            if packed_fill is not None and s[end - 1] == 0x0D and (packed_fill + 7 * (end - pos)) % 8 == 0:
                end -= 1
        out.append(s[pos:end])
        pos = end
    return out


def _too_many_parts(profile: TextProfile, parts: int, characters: int) -> TextError:
    return TextError(
        "too_many_parts",
        f"{profile.name}: text of {characters} characters needs {parts} parts, "
        f"limit is {profile.max_parts} parts",
        carrier=profile.name,
        limit=profile.max_parts,
        count=parts,
    )


def _billing(profile: TextProfile, characters: int, parts: int) -> int:
    if profile.billing_per_part:
        return parts
    size = profile.billing_unit_size
    if size is None or characters <= profile.billing_first_unit:
        return 1
    return -(-characters // size)


def _with_udh(chunks: list[bytes], mode: str, ref: int) -> tuple[bytes, ...]:
    total = len(chunks)
    if mode == "udh8":
        head = bytes((5, 0, 3, ref))
    else:
        head = bytes((6, 8, 4, ref >> 8, ref & 0xFF))
    return tuple([head + bytes((total, seq)) + c for seq, c in enumerate(chunks, 1)])


# --------------------------------------------------------------------------- plan


def plan(text: str, carrier: str | TextProfile, *, ref: object = 0) -> TextPlan:
    """Plan how ``text`` goes to ``carrier``: encoding, parts (UDH included), counts, billing.

    ``ref`` is the concatenation reference from the caller's per-destination
    rolling counter (an int 0..``profile.ref_max``; typed ``object`` because
    anything else, a bool included, must raise here); it is validated even when the
    text fits one part. Raises :class:`TextError` for an empty text, a text
    over the carrier's character or part limit, an unpaired surrogate, an
    unknown carrier or a bad ``ref``. Deterministic: same input, same plan.
    """
    profile = resolve_profile(carrier)
    name = profile.name
    if not isinstance(text, str):
        raise TypeError(f"text must be str, not {type(text).__name__}")
    if not text:
        raise TextError(
            "empty",
            f"{name}: text is empty (0 characters); limit is {profile.max_characters}",
            carrier=name,
            limit=profile.max_characters,
            count=0,
        )
    if type(ref) is not int or not 0 <= ref <= profile.ref_max:
        raise TextError(
            "bad_ref",
            f"{name}: concatenation reference {ref!r} out of range 0..{profile.ref_max} "
            f"({profile.concatenation})",
            carrier=name,
            limit=profile.ref_max,
            count=ref if type(ref) is int else None,
        )
    wire = _wire_form(text, profile)
    if profile.allow_gsm7 and gsm7_fits(wire):
        dc0 = profile.dc0_meaning
        if dc0 == "gsm7" or (wire.isascii() if dc0 == "ascii" else max(wire) <= "\xff"):
            return _plan_gsm7(wire, profile, ref)
    return _plan_ucs2(wire, profile, ref)


def _check_characters(profile: TextProfile, n: int) -> None:
    limit = profile.max_characters
    if limit is not None and n > limit:
        raise TextError(
            "too_long",
            f"{profile.name}: text has {n} characters, limit is {limit}",
            carrier=profile.name,
            limit=limit,
            count=n,
        )


def _plan_ucs2(wire: str, profile: TextProfile, ref: int) -> TextPlan:
    try:
        b = wire.encode("utf-16-be")
    except UnicodeEncodeError as exc:
        raise TextError(
            "bad_character",
            f"{profile.name}: unpaired surrogate U+{ord(wire[exc.start]):04X} at position "
            f"{exc.start} cannot be sent",
            carrier=profile.name,
        ) from None
    n = len(b) >> 1
    _check_characters(profile, n)
    if n <= 70:
        return TextPlan(
            carrier=profile.name,
            encoding="ucs2",
            data_coding=_DC_UCS2,
            characters=n,
            billing_units=_billing(profile, n, 1),
            bytes=n << 1,
            segments=(b,),
            concatenation="none",
            esm_class=0,
            use_message_payload=False,
            ref=None,
            sar=(),
            text_octets=n << 1,
        )
    mode = profile.concatenation
    if mode == "payload":
        chunks = _split_ucs2(b, 67)  # nominal split, for the part limit and per-part billing
        parts = len(chunks)
        if parts > profile.max_parts:
            raise _too_many_parts(profile, parts, n)
        return TextPlan(
            carrier=profile.name,
            encoding="ucs2",
            data_coding=_DC_UCS2,
            characters=n,
            billing_units=_billing(profile, n, parts),
            bytes=n << 1,
            segments=(b,),
            concatenation="payload",
            esm_class=0,
            use_message_payload=True,
            ref=None,
            sar=(),
            text_octets=n << 1,
        )
    if mode == "udh8" or (mode == "sar" and profile.sar_ref_bits == 8):
        chunks = _split_ucs2(b, 67)
    else:
        chunks = _split_ucs2(b, 66)
    parts = len(chunks)
    if parts > profile.max_parts:
        raise _too_many_parts(profile, parts, n)
    if mode == "sar":
        segments = tuple(chunks)
        sar = tuple([(ref, parts, seq) for seq in range(1, parts + 1)])
        esm = 0
    else:
        segments = _with_udh(chunks, mode, ref)
        sar = ()
        esm = _UDHI
    return TextPlan(
        carrier=profile.name,
        encoding="ucs2",
        data_coding=_DC_UCS2,
        characters=n,
        billing_units=_billing(profile, n, parts),
        bytes=n << 1,
        segments=segments,
        concatenation=mode,
        esm_class=esm,
        use_message_payload=False,
        ref=ref,
        sar=sar,
        text_octets=n << 1,
    )


def _plan_gsm7(wire: str, profile: TextProfile, ref: int) -> TextPlan:
    s = wire.translate(_ENCODE_TABLE).encode("latin-1")
    n = len(wire)  # every GSM character is in the BMP: one UTF-16 unit each
    _check_characters(profile, n)
    packed = profile.gsm7_packed
    dc0 = profile.dc0_meaning
    mode = profile.concatenation
    if len(s) <= 160:
        chunks = [s]
        concat = "none"
        udh_octets = 0
    else:
        udh_octets = 7 if mode == "udh16" else 6 if mode == "udh8" else 0
        fill = (7 - (udh_octets * 8) % 7) % 7
        if mode == "udh8" or (mode != "udh16" and (mode == "payload" or profile.sar_ref_bits == 8)):
            per = 153
        else:
            per = 152
        chunks = _split_septets(s, per, fill if packed else None)
        concat = mode
    parts = len(chunks)
    if parts > profile.max_parts:
        raise _too_many_parts(profile, parts, n)
    billing = _billing(profile, n, parts)

    if concat == "payload":
        # One PDU: the whole text; the SMSC splits (no UDH from us).
        if packed:
            body = pack_gsm7(s)
        elif dc0 == "gsm7":
            body = s
        else:
            body = wire.encode("ascii" if dc0 == "ascii" else "latin-1")
        return TextPlan(
            carrier=profile.name,
            encoding="gsm7",
            data_coding=_DC_DEFAULT,
            characters=n,
            billing_units=billing,
            bytes=n << 1,
            segments=(body,),
            concatenation="payload",
            esm_class=0,
            use_message_payload=True,
            ref=None,
            sar=(),
            text_octets=len(body),
        )

    if packed:
        fill = (7 - (udh_octets * 8) % 7) % 7 if concat in ("udh8", "udh16") else 0
        bodies = [pack_gsm7(c, fill_bits=fill) for c in chunks]
    elif dc0 == "gsm7":
        bodies = chunks
    else:
        charset = "ascii" if dc0 == "ascii" else "latin-1"
        bodies = [decode_gsm7(c).encode(charset) for c in chunks]
    text_octets = sum(map(len, bodies))
    if concat == "none":
        segments: tuple[bytes, ...] = (bodies[0],)
        sar: tuple[tuple[int, int, int], ...] = ()
        esm = 0
        used_ref = None
    elif concat == "sar":
        segments = tuple(bodies)
        sar = tuple([(ref, parts, seq) for seq in range(1, parts + 1)])
        esm = 0
        used_ref = ref
    else:
        segments = _with_udh(bodies, concat, ref)
        sar = ()
        esm = _UDHI
        used_ref = ref
    return TextPlan(
        carrier=profile.name,
        encoding="gsm7",
        data_coding=_DC_DEFAULT,
        characters=n,
        billing_units=billing,
        bytes=n << 1,
        segments=segments,
        concatenation=concat,
        esm_class=esm,
        use_message_payload=False,
        ref=used_ref,
        sar=sar,
        text_octets=text_octets,
    )


# --------------------------------------------------------------------------- receive side


def parse_concat_udh(data: bytes) -> ConcatInfo | None:
    """Read the concatenation IE (IEI 0x00 or 0x08) from ``short_message`` that starts with a UDH.

    Returns None when the UDH carries no concatenation IE. Raises
    :class:`TextError` (``"bad_data"``) for a malformed UDH.
    """
    if not data:
        raise TextError("bad_data", "empty short_message has no UDH")
    udhl = data[0]
    end = 1 + udhl
    if end > len(data):
        raise TextError("bad_data", f"UDH length {udhl} exceeds the {len(data)} octets given")
    i = 1
    while i < end:
        if i + 2 > end:
            raise TextError("bad_data", "truncated information element in UDH")
        iei = data[i]
        iedl = data[i + 1]
        j = i + 2 + iedl
        if j > end:
            raise TextError("bad_data", "information element overruns the UDH")
        if iei == 0x00 and iedl == 3:
            return ConcatInfo(data[i + 2], data[i + 3], data[i + 4], 8, end)
        if iei == 0x08 and iedl == 4:
            return ConcatInfo((data[i + 2] << 8) | data[i + 3], data[i + 4], data[i + 5], 16, end)
        i = j
    return None


def decode_wire(
    data: bytes,
    data_coding: int,
    profile: TextProfile | str = "generic",
    *,
    udh: bool = False,
    errors: str = "strict",
) -> str:
    """Text carried by one part's ``short_message`` (or message_payload) octets, in wire form.

    ``udh=True`` strips the UDH first (and, for packed GSM, the fill bits
    after it). data_coding 0 is read as the profile's ``dc0_meaning`` (and
    ``gsm7_packed``); 1 ASCII; 3 Latin-1; 8 UTF-16BE with ``surrogatepass``,
    so a surrogate pair cut at a part boundary yields a lone surrogate rather
    than an exception; 0xF0–0xF3 GSM-7 as for data_coding 0 with ``gsm7``.
    ``errors="replace"`` turns undecodable octets into U+FFFD instead of
    raising :class:`TextError` (``"bad_data"``).
    """
    prof = resolve_profile(profile)
    fill = 0
    if udh:
        if not data:
            raise TextError("bad_data", "empty short_message has no UDH")
        hl = data[0] + 1
        if hl > len(data):
            raise TextError("bad_data", f"UDH length {hl - 1} exceeds the {len(data)} octets given")
        fill = (7 - (hl * 8) % 7) % 7
        data = data[hl:]
    if data_coding == 0x08:
        if len(data) & 1:
            if errors != "replace":
                raise TextError("bad_data", f"UCS-2 data has an odd number of octets ({len(data)})")
            return data[:-1].decode("utf-16-be", "surrogatepass") + "\ufffd"
        return data.decode("utf-16-be", "surrogatepass")
    if data_coding == 0x00:
        meaning = prof.dc0_meaning
        packed = prof.gsm7_packed
    elif 0xF0 <= data_coding <= 0xF3:
        meaning = "gsm7"
        packed = prof.gsm7_packed
    elif data_coding == 0x01:
        meaning, packed = "ascii", False
    elif data_coding == 0x03:
        meaning, packed = "latin1", False
    else:
        raise TextError("unsupported_data_coding", f"data_coding 0x{data_coding:02X} is not text this layer reads")
    if meaning == "gsm7":
        if packed:
            return decode_gsm7(unpack_gsm7(data, fill_bits=fill), errors=errors)
        return decode_gsm7(data, errors=errors)
    if meaning == "ascii":
        try:
            return data.decode("ascii", errors)
        except UnicodeDecodeError as exc:
            raise TextError("bad_data", f"non-ASCII octet 0x{data[exc.start]:02X} at {exc.start}") from None
    return data.decode("latin-1")
