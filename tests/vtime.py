"""Letting time pass in tests: loop time under looptime, never the wall clock.

``await elapse(s)`` lets ``s`` seconds of the test's loop time pass.  It
refuses to run on a loop without looptime's time compaction, so a wait in a
test can never silently become a real sleep (slow, and dependent on the
machine's speed); a test that needs real time (subprocesses) polls for an
event instead.
"""

from __future__ import annotations

import asyncio

import looptime

__all__ = ["elapse"]


async def elapse(seconds: float) -> None:
    loop = asyncio.get_running_loop()
    if not (isinstance(loop, looptime.LoopTimeEventLoop) and loop.looptime_on):
        raise RuntimeError("elapse() lets virtual time pass: mark the test @pytest.mark.looptime")
    await asyncio.sleep(max(0.0, seconds))
