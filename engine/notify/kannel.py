"""Kannel's ``dlr-url`` callbacks: which statuses a ``dlr-mask`` asks for, and the
URL with Kannel's escapes filled.

Report values (Kannel's): 1 delivered to the handset, 2 failed at the handset,
8 accepted by the SMSC (submit_sm_resp OK), 16 rejected by the SMSC.  A
message ends in one of denpo's statuses, which map onto them:

=====================  =====
denpo status           value
=====================  =====
submitted              8
delivered              1
undeliverable          2
expired                2
partially_failed       2 (some parts never reached the handset)
rejected               16
=====================  =====

``indefinite`` and ``cancelled`` have no Kannel value and send nothing.

Escapes (SPEC): ``%d`` the report value, ``%I`` denpo's message id, ``%F`` the
carrier's message id, ``%p`` the handset's number (the message's destination),
``%P`` the sender, ``%t`` the time (``YYYY-MM-DD HH:MM:SS``, JST), ``%A`` the
carrier's reply (the receipt's stat, or the SMPP status name), ``%%`` a
percent sign (``%25``).  Substituted values are URL-encoded.
"""

from __future__ import annotations

import datetime as _dt
import re
from urllib.parse import quote

__all__ = ["DLR_VALUE", "dlr_value", "fill_dlr_url"]

JST = _dt.timezone(_dt.timedelta(hours=9), "JST")

DLR_VALUE = {
    "submitted": 8,
    "delivered": 1,
    "undeliverable": 2,
    "expired": 2,
    "partially_failed": 2,
    "rejected": 16,
}


def dlr_value(status: str, mask: int) -> int | None:
    """The report value for ``status`` when ``mask`` asks for it, else None."""
    value = DLR_VALUE.get(status)
    return value if value is not None and mask & value else None


def fill_dlr_url(
    template: str, *, value: int, message_id: str, carrier_id: str | None, to: str, sender: str, at: float, reply: str
) -> str:
    """``template`` with Kannel's escapes replaced (unknown escapes are left as they are)."""
    if "%" not in template:
        return template
    pieces = template.split("%")  # every piece after the first began right after a "%"
    out = [pieces[0]]
    i, n = 1, len(pieces)
    while i < n:
        piece = pieces[i]
        if not piece:
            if i + 1 < n:  # "%%": a percent sign; what follows it is plain text
                out.append("%25")
                out.append(pieces[i + 1])
                i += 2
                continue
            out.append("%")  # a "%" at the very end
        else:
            key = piece[0]
            if key == "d":
                out.append(str(value))
            elif key == "I":
                out.append(_quote(message_id))
            elif key == "F":
                out.append(_quote(carrier_id or ""))
            elif key == "p":
                out.append(_quote(to))
            elif key == "P":
                out.append(_quote(sender))
            elif key == "t":
                out.append(quote(_dt.datetime.fromtimestamp(at, JST).strftime("%Y-%m-%d %H:%M:%S"), safe=""))
            elif key == "A":
                out.append(_quote(reply))
            else:
                out.append("%" + key)
            out.append(piece[1:])
        i += 1
    return "".join(out)


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*")  # what quote(..., safe="") leaves as it is


def _quote(text: str) -> str:
    return text if _PLAIN.fullmatch(text) else quote(text, safe="")
