"""Per-carrier SMPP connection pools: binds, windows, rate limits, throttle feedback, reconnects."""

from engine.pool.pool import BindState, CarrierPool, DequeSource, PoolSink, Submission
from engine.pool.status import Outcome, classify

__all__ = ["BindState", "CarrierPool", "DequeSource", "PoolSink", "Submission", "Outcome", "classify"]
