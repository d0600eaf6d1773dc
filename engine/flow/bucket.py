"""Rate limiting on an injected clock: a token bucket, and throttle feedback.

Pure: every method takes ``now`` (seconds, any monotonic origin); nothing
reads a clock, sleeps or allocates per message.

Bound on what a bucket lets through: in any interval of length T, at most
``burst + rate × T`` tokens.  With ``burst = 1`` (the default) that is the
configured rate exactly, give or take one message per window — strict
spacing, which is also what keeps an SMSC from answering ESME_RTHROTTLED.
A larger burst lets a sender take several tokens per event-loop pass at high
rates, at the price of ``burst − 1`` extra messages in a window after idle.
"""

from __future__ import annotations

import math

__all__ = ["TokenBucket", "ThrottleFeedback"]


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` stored; starts full."""

    __slots__ = ("rate", "burst", "_tokens", "_at")

    def __init__(self, rate: float, burst: float = 1.0, *, now: float = 0.0) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        if burst < 1:
            raise ValueError("burst must be at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._at = now

    def _refill(self, now: float) -> float:
        if now > self._at:
            tokens = self._tokens + (now - self._at) * self.rate
            self._tokens = tokens if tokens < self.burst else self.burst
            self._at = now
        return self._tokens

    def available(self, now: float) -> int:
        """Whole tokens that could be taken now."""
        return int(self._refill(now) + 1e-9)

    def take(self, now: float, n: int = 1) -> bool:
        """Take ``n`` tokens if they are there."""
        tokens = self._refill(now)
        if tokens + 1e-9 >= n:
            self._tokens = tokens - n
            return True
        return False

    def take_up_to(self, now: float, n: int) -> int:
        """Take as many whole tokens as are there, at most ``n``; returns how many."""
        tokens = self._refill(now)
        k = min(n, int(tokens + 1e-9))
        if k > 0:
            self._tokens = tokens - k
        return k

    def wait(self, now: float, n: int = 1) -> float:
        """Seconds until ``n`` tokens will be there (0 when they are)."""
        missing = n - self._refill(now)
        if missing <= 1e-9:
            return 0.0
        return missing / self.rate

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from ``now`` on (what accrued so far is kept)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._refill(now)
        self.rate = float(rate)


class ThrottleFeedback:
    """Additive-increase, multiplicative-decrease control of a sending rate.

    The carrier's ESME_RTHROTTLED / ESME_RMSGQFUL answers call
    :meth:`throttled`: the rate drops to ``decrease`` × what was being
    achieved (never below ``floor``), at most once per ``cooldown`` seconds
    (the answers to one burst arrive together and are one signal).  Each
    ``step_interval`` seconds without a throttle, :meth:`tick` adds
    ``increase`` × the rate that proved too much, so the sender probes back
    up — to the configured rate at most, which is never exceeded.  With no
    configured rate there is no limit until the first throttle.
    """

    __slots__ = (
        "ceiling", "rate", "floor", "decrease", "increase", "step_interval", "cooldown",
        "_unit", "_last_throttle", "_last_step", "throttles", "decreases",
    )

    def __init__(
        self,
        configured: float | None,
        *,
        floor: float = 1.0,
        decrease: float = 0.85,
        increase: float = 0.02,
        step_interval: float = 0.25,
        cooldown: float = 1.0,
        now: float = 0.0,
    ) -> None:
        self.ceiling = configured if configured is not None else math.inf
        self.rate = self.ceiling
        self.floor = floor
        self.decrease = decrease
        self.increase = increase
        self.step_interval = step_interval
        self.cooldown = cooldown
        self._unit = 0.0
        self._last_throttle = -math.inf
        self._last_step = now
        self.throttles = 0  # throttle answers seen
        self.decreases = 0  # times the rate was cut

    @property
    def limited(self) -> bool:
        return self.rate != math.inf

    def throttled(self, now: float, achieved_rate: float) -> bool:
        """The carrier said slow down; returns True when the rate was cut."""
        self.throttles += 1
        if now - self._last_throttle < self.cooldown:
            return False
        self._last_throttle = now
        self._last_step = now
        base = min(self.rate, achieved_rate) if achieved_rate > 0 else self.rate
        if base == math.inf:
            base = self.floor
        self._unit = base * self.increase
        self.rate = max(self.floor, base * self.decrease)
        self.decreases += 1
        return True

    def tick(self, now: float) -> bool:
        """Grow the rate after quiet periods; returns True when it changed."""
        if self.rate >= self.ceiling:
            return False
        elapsed = now - self._last_step
        if elapsed < self.step_interval:
            return False
        steps = int(elapsed / self.step_interval)
        self._last_step += steps * self.step_interval
        self.rate = min(self.ceiling, self.rate + steps * self._unit)
        return True
