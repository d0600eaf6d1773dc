"""Who is calling, from where, and whether they may: the checks every HTTP request passes.

* **Token**: ``Authorization: Bearer <token>`` (Kannel-compatible endpoint:
  ``username`` + ``password``).  Only the token's SHA-256 is configured; the
  presented token is hashed and compared in constant time.
* **Address**: the TCP peer, or — when the peer is one of the configured
  trusted proxies — the right-most ``X-Forwarded-For`` entry that is not a
  trusted proxy itself (entries further left are written by the client and
  prove nothing).  The account's ``allow_ips`` must contain it, else 403.
* **Rate**: a token bucket per account (``rate_limit`` per second, ``burst``),
  shared by all APIs; an empty bucket → 429 with the seconds to wait.

Pure functions of their inputs and an injected clock, so tests drive them
directly; the HTTP layer only calls them.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Union

from engine.flow.bucket import TokenBucket
from engine.ops.config import AccountSettings

__all__ = ["Gate", "hash_token", "new_token", "Network"]

Network = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]
Address = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


def hash_token(token: str) -> str:
    """The digest configured for ``token`` (SHA-256, lower-case hex)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh random token (256 bits, URL-safe) and its digest for the config."""
    token = secrets.token_urlsafe(32)
    return token, hash_token(token)


def _networks(cidrs: Sequence[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _address(text: str) -> Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:8080"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "192.0.2.1:8080"
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # "::ffff:127.0.0.1" from a dual-stack socket
    return address


_CACHED = 4096  # entries per decision cache


def _within(address: Address, networks: tuple[Network, ...]) -> bool:
    return any(address.version == n.version and address in n for n in networks)


class Gate:
    """The accounts' credentials, address rules and request budgets."""

    def __init__(
        self,
        accounts: Mapping[str, AccountSettings],
        *,
        trusted_proxies: Sequence[str] = (),
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self._buckets: dict[str, TokenBucket] = {}
        self.update(accounts, trusted_proxies)

    def update(self, accounts: Mapping[str, AccountSettings], trusted_proxies: Sequence[str] = ()) -> None:
        """New accounts, tokens, allowlists, rates and proxies (a reload); an account
        whose rate and burst did not change keeps its bucket (and what it used)."""
        self._trusted = _networks(trusted_proxies)
        digests: list[tuple[bytes, str]] = []
        allow: dict[str, tuple[Network, ...]] = {}
        buckets: dict[str, TokenBucket] = {}
        now = self._clock()
        for name, account in accounts.items():
            if account.token_sha256 is not None:
                digests.append((bytes.fromhex(account.token_sha256), name))
            allow[name] = _networks(account.allow_ips)
            old = self._buckets.get(name)
            same = old is not None and old.rate == float(account.rate_limit) and old.burst == float(account.burst)
            buckets[name] = old if same else TokenBucket(account.rate_limit, account.burst, now=now)  # type: ignore[assignment]
        self._digests, self._allow, self._buckets = digests, allow, buckets
        # decisions by (peer, X-Forwarded-For) and (account, address): a client
        # sends many requests from one place (parsing an address costs ~4 % of a
        # single-message request); bounded, and dropped on every update
        self._addresses: dict[tuple[str | None, str | None], Address | None] = {}
        self._allowed: dict[tuple[str, Address | None], bool] = {}

    def account_for_token(self, token: str) -> str | None:
        """The account whose token this is, or None.  Every configured digest is
        compared, in constant time: how long this takes says nothing about how
        close a guess came, nor which account it was close to."""
        if not token:
            return None
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        found = None
        for known, name in self._digests:
            if hmac.compare_digest(known, digest):
                found = name
        return found

    def client_address(self, peer: str | None, forwarded_for: str | None = None) -> Address | None:
        """The caller's address: the peer, or what trusted proxies say it is."""
        key = (peer, forwarded_for)
        try:
            return self._addresses[key]
        except KeyError:
            pass
        address = self._client_address(peer, forwarded_for)
        if len(self._addresses) >= _CACHED:
            self._addresses.clear()
        self._addresses[key] = address
        return address

    def _client_address(self, peer: str | None, forwarded_for: str | None) -> Address | None:
        address = _address(peer) if peer else None
        if address is None or not forwarded_for or not _within(address, self._trusted):
            return address
        for hop in reversed(forwarded_for.split(",")):
            candidate = _address(hop)
            if candidate is None:
                return None  # a garbled chain names nobody: refused, not guessed
            if not _within(candidate, self._trusted):
                return candidate
            address = candidate
        return address  # every hop a trusted proxy: the left-most one

    def ip_allowed(self, account: str, address: Address | None) -> bool:
        key = (account, address)
        allowed = self._allowed.get(key)
        if allowed is None:
            networks = self._allow.get(account)
            allowed = address is not None and networks is not None and _within(address, networks)
            if len(self._allowed) >= _CACHED:
                self._allowed.clear()
            self._allowed[key] = allowed
        return allowed

    def admit(self, account: str) -> float:
        """0.0 when the request may go ahead (it is counted), else the seconds
        until it could (for ``Retry-After``, rounded up by the caller)."""
        bucket = self._buckets.get(account)
        if bucket is None:
            return math.inf
        now = self._clock()
        if bucket.take(now):
            return 0.0
        return max(bucket.wait(now), 1e-3)
