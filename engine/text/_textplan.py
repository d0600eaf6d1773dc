"""The planner's result, :class:`TextPlan` (re-exported by ``engine.text._plan``).

Kept apart from ``_plan.py``, which the native build compiles: mypyc drops
class keywords such as ``frozen=True`` (python/mypy#21938), so msgspec Structs
live in interpreted modules.
"""

from __future__ import annotations

import builtins

import msgspec

__all__ = ["TextPlan"]


class TextPlan(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """Immutable result of :func:`plan`: what goes on the wire and what it costs.

    Fields:
        carrier: profile name.
        encoding: ``"gsm7"`` or ``"ucs2"``.
        data_coding: SMPP data_coding (0 for GSM-7 — meaning per profile —, 8 for UCS-2).
        characters: SPEC's count: UTF-16 code units of the wire form.
        billing_units: units billed by the carrier's table.
        bytes: octets of the UCS-2 wire form (= 2 × characters), SPEC's
            byte accounting, also for GSM-7 texts.
        segments: the complete ``short_message`` octets of each part, UDH
            included; for ``payload`` the one ``message_payload`` value.
        concatenation: ``"none"``, ``"udh8"``, ``"udh16"``, ``"sar"`` or ``"payload"``.
        esm_class: 0x40 (UDHI) for udh8/udh16 parts, else 0.
        use_message_payload: True when the one segment goes in the
            message_payload TLV (and short_message is empty).
        ref: the concatenation reference used (UDH or SAR), else None — the
            caller's counter need only advance when this is not None.
        sar: SAR mode only: per part ``(sar_msg_ref_num, sar_total_segments,
            sar_segment_seqnum)``; empty otherwise.
        text_octets: octets that carry the text in all segments, UDH
            excluded (septets for unpacked GSM-7; equals ``bytes`` for UCS-2).
    """

    carrier: str
    encoding: str
    data_coding: int
    characters: int
    billing_units: int
    bytes: int
    segments: tuple[builtins.bytes, ...]
    concatenation: str
    esm_class: int
    use_message_payload: bool
    ref: int | None
    sar: tuple[tuple[int, int, int], ...]
    text_octets: int

    @property
    def parts(self) -> int:
        """Number of PDUs (``submit_sm``) this message needs."""
        return len(self.segments)

    def to_json_dict(self) -> dict[str, object]:
        """The JSON object ``denpo text`` prints (segments as lowercase hex)."""
        return {
            "carrier": self.carrier,
            "encoding": self.encoding,
            "data_coding": self.data_coding,
            "characters": self.characters,
            "billing_units": self.billing_units,
            "bytes": self.bytes,
            "parts": len(self.segments),
            "segments": [s.hex() for s in self.segments],
            "concatenation": self.concatenation,
            "esm_class": self.esm_class,
            "use_message_payload": self.use_message_payload,
            "ref": self.ref,
            "sar": [list(t) for t in self.sar],
            "text_octets": self.text_octets,
        }
