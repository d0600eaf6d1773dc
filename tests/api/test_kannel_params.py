"""Kannel sendsms parameters read as urllib reads them (the fast reader against the reference)."""

from __future__ import annotations

from urllib.parse import parse_qsl, quote, quote_plus

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api.http import Request, _kannel_params


def reference(raw: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True, encoding="latin-1"):
        out.setdefault(key, value.encode("latin-1"))
    return out


def get(query: str) -> Request:
    return Request("GET", "/cgi-bin/sendsms", query, {}, b"", "127.0.0.1")


def test_a_kannel_request():
    text = "ご注文の商品を発送しました"
    query = (
        f"username=demo&password=p%2Bss&to=%2B819012345678&text={quote_plus(text)}&coding=2&charset=UTF-8"
        f"&dlr-mask=19&dlr-url={quote_plus('http://h/dlr?id=1&d=%d')}&to=second"
    )
    params = _kannel_params(get(query))
    assert params["text"].decode("utf-8") == text and params["password"] == b"p+ss"
    assert params["dlr-url"] == b"http://h/dlr?id=1&d=%d" and params["to"] == b"+819012345678"
    assert params == reference(query)


def test_edges():
    for query in ["a=%zz%4", "a=%41%2", "x=\\%41\\", "a", "a=&b", "&&a=1&a=2", "%41=%42", "a=%%41", "a=%e3%81%82+b",
                  "k=\xe9%41", "a=%5C%78%34%31", "a=\\x41", "a=%", "=v", "a==b"]:
        assert _kannel_params(get(query)) == reference(query), query


def test_a_form_body_after_the_query():
    request = Request("POST", "/cgi-bin/sendsms", "to=1&text=q", {}, b"text=b%41dy&from=x", "127.0.0.1")
    assert _kannel_params(request) == {"to": b"1", "text": b"q", "from": b"x"}
    body_only = Request("POST", "/cgi-bin/sendsms", "", {}, b"text=b%41dy", "127.0.0.1")
    assert _kannel_params(body_only) == {"text": b"bAdy"}


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(list("%+&=\\ax41FfgZ\xe9\xff\x00;") + ["%4", "%E3", "%5C", "%25", "\\x"]), max_size=30))
def test_same_as_urllib(pieces):
    query = "".join(pieces)
    assert _kannel_params(get(query)) == reference(query)


@settings(max_examples=500, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=30), max_size=6))
def test_round_trip_of_encoded_unicode(params):
    query = "&".join(f"{quote(k.encode('utf-8'))}={quote_plus(v.encode('utf-8'))}" for k, v in params.items())
    assert _kannel_params(get(query)) == reference(query)
