"""Carrier message id keys (see :mod:`engine.dlr.ids` for the key space and its collisions).

Plain functions, compiled by the native build; :class:`engine.dlr.ids.IdScheme`
applies them per carrier.
"""

from __future__ import annotations

__all__ = ["id_key"]

_MAX_NUMERAL = 64  # longer "numbers" are keyed as opaque strings (no giant ints)


def _opaque(s: str) -> str:
    k = s.lower().lstrip("0")
    return k or ("0" if s else "")


def _decimal(s: str) -> str | None:
    if s.isdigit() and s.isascii() and len(s) <= _MAX_NUMERAL:
        return s.lstrip("0") or "0"
    return None


def _hex(s: str) -> str | None:
    # isalnum + isascii rule out what int() would otherwise forgive: sign, "_", white space
    if s.isalnum() and s.isascii() and len(s) <= _MAX_NUMERAL:
        try:
            return str(int(s, 16))  # also takes a 0x prefix
        except ValueError:
            return None
    return None


def _hex_text(s: str) -> str | None:
    """A decimal id written as lower-case hex (to meet an opaque hex response id)."""
    if s.isdigit() and s.isascii() and len(s) <= _MAX_NUMERAL:
        return "%x" % int(s)
    return None


def id_key(raw: str, form: str) -> str:
    """The key of one id written in ``form`` (``string``, ``hex`` or ``decimal``); "" for an empty id."""
    s = raw.strip()
    if not s:
        return ""
    if form == "decimal":
        k = _decimal(s)
    elif form == "hex":
        k = _hex(s)
    else:
        k = None
    return _opaque(s) if k is None else k
