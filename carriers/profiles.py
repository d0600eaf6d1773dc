"""What each carrier's SMSC does differently (shared/SPEC.md, "Carriers and their rules").

These are the simulator's behaviours.  The text layer (engine/text) has its
own per-carrier encoding profiles; the limits below must agree with it and
a test checks that they do.
"""

from __future__ import annotations

from typing import Literal

import msgspec

__all__ = ["CarrierProfile", "PROFILES", "profile"]


class CarrierProfile(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    max_characters: int
    """Longest message accepted, in SPEC's characters (UTF-16 code units of
    the wire form), all parts of a concatenated message together."""
    pacing_interval_s: float | None = None
    """au: a further message to a number only this long after the previous one
    ended; the simulator counts violations.  None = no pacing rule."""
    message_id_style: Literal["decimal", "hex"] = "decimal"
    partial_failure_rate: float = 0.0
    """Default share of multi-part messages delivered only in part."""
    retries_while_unreachable: bool = True


PROFILES: dict[str, CarrierProfile] = {
    "au": CarrierProfile(
        name="au",
        max_characters=670,
        pacing_interval_s=12.0,
        message_id_style="hex",
        retries_while_unreachable=False,
    ),
    "docomo": CarrierProfile(name="docomo", max_characters=660, partial_failure_rate=0.05),
    "softbank": CarrierProfile(name="softbank", max_characters=670, message_id_style="hex"),
    "rakuten": CarrierProfile(name="rakuten", max_characters=660),
}


def profile(name: str) -> CarrierProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown carrier {name!r}; one of {', '.join(PROFILES)}") from None
