"""Kannel's dlr-url escapes, filled as Kannel fills them (against a plain reference)."""

from __future__ import annotations

import datetime as _dt
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.notify.kannel import JST, dlr_value, fill_dlr_url

AT = 1_795_000_000.5
FIELDS = dict(value=1, message_id="0123abc", carrier_id="7F3A", to="+819012345678", sender="DENPO", at=AT, reply="DELIVRD")


def reference(template: str, **kw) -> str:
    """Character by character, as Kannel reads a dlr-url."""
    values = {
        "d": str(kw["value"]), "I": kw["message_id"], "F": kw["carrier_id"] or "", "p": kw["to"], "P": kw["sender"],
        "t": _dt.datetime.fromtimestamp(kw["at"], JST).strftime("%Y-%m-%d %H:%M:%S"), "A": kw["reply"],
    }
    out, i = [], 0
    while i < len(template):
        c = template[i]
        if c == "%" and i + 1 < len(template) and (template[i + 1] in values or template[i + 1] == "%"):
            key = template[i + 1]
            out.append("%25" if key == "%" else quote(values[key], safe=""))
            i += 2
        else:
            out.append(c)
            i += 1
    return "".join(out)


def test_every_escape():
    url = fill_dlr_url("http://r/dlr?d=%d&id=%I&f=%F&to=%p&from=%P&t=%t&a=%A&pct=%%&x=%x&end=%", **FIELDS)
    assert url == (
        "http://r/dlr?d=1&id=0123abc&f=7F3A&to=%2B819012345678&from=DENPO&t=2026-11-18%2020%3A06%3A40"
        "&a=DELIVRD&pct=%25&x=%x&end=%"
    )
    assert fill_dlr_url("http://r/plain", **FIELDS) == "http://r/plain"
    assert fill_dlr_url("%%d", **FIELDS) == "%25d"  # "%%" then a plain "d"
    assert fill_dlr_url("%F", **{**FIELDS, "carrier_id": None}) == ""


def test_report_values():
    assert dlr_value("delivered", 19) == 1 and dlr_value("undeliverable", 19) == 2 and dlr_value("rejected", 19) == 16
    assert dlr_value("submitted", 19) is None and dlr_value("submitted", 8) == 8 and dlr_value("indefinite", 31) is None


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(st.sampled_from(["%", "d", "I", "F", "p", "P", "t", "A", "x", "/", "?", "&", "=", "あ", " "]), max_size=25),
    st.text(max_size=8), st.one_of(st.none(), st.text(max_size=8)), st.text(max_size=8),
)
def test_same_as_the_reference(pieces, sender, carrier_id, reply):
    template = "".join(pieces)
    kw = {**FIELDS, "sender": sender, "carrier_id": carrier_id, "reply": reply}
    assert fill_dlr_url(template, **kw) == reference(template, **kw)
