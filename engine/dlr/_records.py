"""The msgspec Structs of engine.dlr: :class:`Receipt`, :class:`CorrelatorConfig`, :class:`Orphan`.

Kept apart from the modules the native build compiles (``receipt``,
``correlate``), which re-export them: mypyc drops class keywords such as
``frozen=True`` (python/mypy#21938), so msgspec Structs live in interpreted
modules.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["CorrelatorConfig", "Orphan", "Receipt"]


class Receipt(msgspec.Struct, frozen=True, gc=False):
    """One delivery receipt (or intermediate notification), as the SMSC wrote it.

    ``message_id`` is the TLV id when present, else the text ``id:``
    ("" when there is neither but a state was found).  Every text field is
    raw (stripped of surrounding spaces), ``None`` when absent."""

    message_id: str
    tlv_id: str | None = None
    text_id: str | None = None
    state: int | None = None
    stat: str | None = None
    err: str | None = None
    network_error: tuple[int, int] | None = None
    submit_date: str | None = None
    done_date: str | None = None
    sub: str | None = None
    dlvrd: str | None = None
    text: str | None = None
    final: bool = False
    delivered: bool = False
    source_addr: str = ""
    destination_addr: str = ""


class CorrelatorConfig(msgspec.Struct, frozen=True, kw_only=True):
    pending_ttl: float = 60.0
    """Seconds an unmatched receipt waits for its submit_sm_resp before it is an orphan."""
    registered_ttl: float = 3 * 86400.0
    """Late-receipt window: seconds a registered id stays matchable unless forgotten."""
    linger: float = 600.0
    """Seconds a forgotten id still matches (duplicate receipts)."""
    max_pending: int = 20_000
    """Held receipts, all carriers together."""
    max_registered: int = 200_000
    """Registered ids per carrier."""
    max_lingering: int = 100_000
    """Forgotten-but-lingering ids per carrier."""
    orphan_ring: int = 1_000
    """Orphans kept for inspection (the newest)."""

    def __post_init__(self) -> None:
        for name in ("pending_ttl", "registered_ttl", "linger"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"CorrelatorConfig.{name} must be >= 0")
        for name in ("max_pending", "max_registered", "max_lingering", "orphan_ring"):
            if getattr(self, name) < 1:
                raise ValueError(f"CorrelatorConfig.{name} must be >= 1")


class Orphan(msgspec.Struct, frozen=True, gc=False):
    """A receipt no registered id claimed."""

    carrier: str
    receipt: Receipt
    reason: Literal["expired", "evicted", "no_id"]
    at: float
