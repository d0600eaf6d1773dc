"""The async generator behind :meth:`engine.engine.Engine.events`.

Kept apart from ``engine.py``, which the native build compiles: mypyc does not
compile async generators.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, AsyncIterator

if TYPE_CHECKING:
    from engine.api import MoEvent, StatusEvent
    from engine.engine import Engine

__all__ = ["event_stream"]


async def event_stream(engine: Engine) -> AsyncIterator[StatusEvent | MoEvent]:
    """Status events (and MO messages) as they happen, until the engine closed and
    every buffered one was read."""
    events = engine._events
    signal = engine._event_signal
    assert signal is not None
    while True:
        while events:
            yield events.popleft()
        if engine._closing:
            return
        signal.clear()
        await signal.wait()
