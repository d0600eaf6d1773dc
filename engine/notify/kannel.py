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
    values = {
        "d": str(value),
        "I": message_id,
        "F": carrier_id or "",
        "p": to,
        "P": sender,
        "t": _dt.datetime.fromtimestamp(at, JST).strftime("%Y-%m-%d %H:%M:%S"),
        "A": reply,
        "%": "%",
    }
    out: list[str] = []
    i = 0
    n = len(template)
    while i < n:
        c = template[i]
        if c == "%" and i + 1 < n and template[i + 1] in values:
            key = template[i + 1]
            out.append("%25" if key == "%" else quote(values[key], safe=""))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)
