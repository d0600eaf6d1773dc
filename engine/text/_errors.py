"""The text layer's one exception type."""

from __future__ import annotations

__all__ = ["TextError"]


class TextError(ValueError):
    """A text that cannot be sent as asked (the caller's fault, never retried).

    Attributes:
        reason: short machine word — ``"empty"``, ``"too_long"`` (characters
            over the carrier maximum), ``"too_many_parts"``, ``"bad_ref"``,
            ``"bad_character"`` (an unpaired surrogate in the input),
            ``"unknown_carrier"``, ``"not_gsm7"``, ``"bad_data"`` (undecodable
            wire data), ``"unsupported_data_coding"``.
        carrier: profile name, or None where not applicable.
        limit: the limit that was exceeded (characters, parts, largest
            reference), or None.
        count: the offending count (characters, parts, the reference), or None.
    """

    def __init__(
        self,
        reason: str,
        message: str,
        *,
        carrier: str | None = None,
        limit: int | None = None,
        count: int | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.carrier = carrier
        self.limit = limit
        self.count = count

    def __reduce__(self):  # keep attributes across pickling (process pools)
        return (
            _rebuild,
            (self.reason, str(self), self.carrier, self.limit, self.count),
        )

    def to_json_dict(self) -> dict[str, object]:
        """``{"error": message, "reason", "carrier", "limit", "count"}`` as `denpo text` prints it."""
        return {
            "error": str(self),
            "reason": self.reason,
            "carrier": self.carrier,
            "limit": self.limit,
            "count": self.count,
        }


def _rebuild(reason, message, carrier, limit, count) -> TextError:
    return TextError(reason, message, carrier=carrier, limit=limit, count=count)
