"""Exponential backoff with jitter, and a latency histogram.  Pure and allocation-free per use."""

from __future__ import annotations

import bisect
import random
from typing import Sequence

__all__ = ["Backoff", "Histogram"]


class Backoff:
    """Delays ``base × factor^attempt`` capped at ``cap``, with "equal jitter":
    half the delay fixed, half uniform random, so retries never synchronise
    and never come sooner than half the nominal delay.  ``floor`` is the
    smallest delay ever returned (e.g. a slow retry after refused credentials)."""

    __slots__ = ("base", "factor", "cap", "floor", "_rng")

    def __init__(
        self, base: float = 0.5, factor: float = 2.0, cap: float = 30.0, *, floor: float = 0.0, rng: random.Random | None = None
    ) -> None:
        if base <= 0 or factor < 1 or cap < base:
            raise ValueError("need base > 0, factor >= 1, cap >= base")
        self.base = base
        self.factor = factor
        self.cap = cap
        self.floor = floor
        self._rng = rng or random.Random()

    def nominal(self, attempt: int) -> float:
        """The delay before retry number ``attempt`` (0 = the first retry), without jitter."""
        delay = self.base * self.factor ** min(attempt, 64)
        return max(self.floor, min(self.cap, delay))

    def delay(self, attempt: int) -> float:
        nominal = self.nominal(attempt)
        half = nominal / 2
        return max(self.floor, half + self._rng.random() * half)


_DEFAULT_BOUNDS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0,
)


class Histogram:
    """Counts of observations (seconds) per upper bound, Prometheus style (``le``)."""

    __slots__ = ("bounds", "counts", "total", "count")

    def __init__(self, bounds: Sequence[float] = _DEFAULT_BOUNDS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last slot is +Inf
        self.total = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.count += 1

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (an over-estimate by at most one bucket)."""
        if not self.count:
            return 0.0
        rank = q * self.count
        seen = 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts):
            seen += n
            if seen >= rank:
                return bound
        return float("inf")

    def as_dict(self) -> dict[str, object]:
        cumulative = []
        seen = 0
        for n in self.counts:
            seen += n
            cumulative.append(seen)
        return {
            "buckets": dict(zip([*map(str, self.bounds), "+Inf"], cumulative)),
            "count": self.count,
            "sum": round(self.total, 6),
        }
