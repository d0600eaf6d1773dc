"""The HTTP front's checks: tokens, addresses behind trusted proxies, per-account rate."""

from __future__ import annotations

import ipaddress

import pytest

from engine.api.auth import Gate, hash_token, new_token
from engine.ops.config import ConfigError, parse_config


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def gate(accounts: dict, trusted=(), clock=None) -> Gate:
    config = parse_config({"accounts": accounts})
    return Gate(config.accounts, trusted_proxies=trusted, clock=clock or Clock())


def test_token_matches_only_its_account():
    token_a, digest_a = new_token()
    token_b, digest_b = new_token()
    assert digest_a == hash_token(token_a) and len(token_a) >= 40
    g = gate({"a": {"token_sha256": digest_a}, "b": {"token_sha256": digest_b}, "c": {}})
    assert g.account_for_token(token_a) == "a"
    assert g.account_for_token(token_b) == "b"
    assert g.account_for_token(token_a + "x") is None
    assert g.account_for_token("") is None
    assert g.account_for_token(digest_a) is None  # the digest is not the token
    assert g.account_for_token("\udcff") is None  # unencodable text is just a wrong token


@pytest.mark.parametrize(
    "peer, xff, trusted, expected",
    [
        ("192.0.2.7", None, (), "192.0.2.7"),
        ("192.0.2.7:5555", None, (), "192.0.2.7"),
        ("[::1]:8080", None, (), "::1"),
        ("::ffff:127.0.0.1", None, (), "127.0.0.1"),
        # X-Forwarded-For from an untrusted peer is ignored
        ("192.0.2.7", "198.51.100.1", (), "192.0.2.7"),
        ("192.0.2.7", "198.51.100.1", ("10.0.0.0/8",), "192.0.2.7"),
        # from a trusted proxy: the right-most entry that is not a trusted proxy
        ("10.0.0.2", "198.51.100.1", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", "203.0.113.9, 198.51.100.1, 10.0.0.5", ("10.0.0.0/8",), "198.51.100.1"),
        ("10.0.0.2", " 10.0.0.9 , 10.0.0.5", ("10.0.0.0/8",), "10.0.0.9"),  # all proxies: the left-most
        ("10.0.0.2", "198.51.100.1, garbage", ("10.0.0.0/8",), None),  # a garbled chain names nobody
        ("not-an-ip", None, (), None),
    ],
)
def test_client_address(peer, xff, trusted, expected):
    g = gate({"a": {}}, trusted=trusted)
    got = g.client_address(peer, xff)
    assert got == (ipaddress.ip_address(expected) if expected else None)


def test_allowlist_per_account():
    g = gate({"a": {"allow_ips": ["198.51.100.0/24", "2001:db8::/32"]}, "b": {}})
    ok = ipaddress.ip_address
    assert g.ip_allowed("a", ok("198.51.100.200"))
    assert g.ip_allowed("a", ok("2001:db8::1"))
    assert not g.ip_allowed("a", ok("198.51.101.1"))
    assert not g.ip_allowed("a", ok("127.0.0.1"))
    assert g.ip_allowed("b", ok("127.0.0.1")) and g.ip_allowed("b", ok("::1"))  # the default: loopback only
    assert not g.ip_allowed("b", ok("192.0.2.1"))
    assert not g.ip_allowed("b", None)
    assert not g.ip_allowed("nobody", ok("127.0.0.1"))


def test_remembered_decisions_follow_a_reload_and_stay_bounded():
    g = gate({"a": {"allow_ips": ["198.51.100.0/24"]}}, trusted=("10.0.0.0/8",))
    peer = "198.51.100.9"
    assert g.ip_allowed("a", g.client_address(peer)) and g.ip_allowed("a", g.client_address(peer))
    assert g.client_address("10.0.0.2", "198.51.100.1") == ipaddress.ip_address("198.51.100.1")
    config = parse_config({"accounts": {"a": {"allow_ips": ["203.0.113.0/24"]}}})
    g.update(config.accounts, ())  # allowlist and trusted proxies changed
    assert not g.ip_allowed("a", g.client_address(peer))
    assert g.client_address("10.0.0.2", "198.51.100.1") == ipaddress.ip_address("10.0.0.2")  # no longer trusted
    for i in range(10_000):
        g.ip_allowed("a", g.client_address(f"192.0.{i // 256 % 256}.{i % 256}"))
    assert len(g._addresses) <= 4096 and len(g._allowed) <= 4096


def test_rate_limit_per_account_with_burst():
    clock = Clock()
    g = gate({"a": {"rate_limit": 10, "burst": 3}, "b": {}}, clock=clock)
    assert [g.admit("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = g.admit("a")
    assert wait == pytest.approx(0.1)
    assert g.admit("b") == 0.0  # another account's budget is its own
    clock.now += 0.1
    assert g.admit("a") == 0.0
    assert g.admit("a") > 0
    clock.now += 10
    assert [g.admit("a") for _ in range(3)] == [0.0, 0.0, 0.0]  # refilled only up to the burst
    assert g.admit("a") > 0
    assert g.admit("nobody") == float("inf")


def test_config_problems_name_the_key():
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "accounts": {"a": {"allow_ips": ["10.0.0.0/33", "127.0.0.1"]}},
                "http": {"trusted_proxies": ["nope"], "tls_cert": "cert.pem"},
            }
        )
    text = str(info.value)
    assert "accounts.a.allow_ips[0]: not an address or CIDR network" in text
    assert "http.trusted_proxies[0]: not an address or CIDR network" in text
    assert "http: set both tls_cert and tls_key" in text
    with pytest.raises(ConfigError) as info:
        parse_config({"accounts": {"a": {"token_sha256": "ABC", "result_url": "ftp://x", "signing_secret": "short"}}})
    text = str(info.value)
    assert "accounts.a.token_sha256" in text and "accounts.a.result_url" in text and "accounts.a.signing_secret" in text
