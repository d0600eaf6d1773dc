"""A first end-to-end pass: engine and simulators in one loop, virtual time."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from carriers.smsc import SmscSimulator
from engine.api import StatusEvent, SubmitRequest
from engine.engine import Engine
from engine.ops.config import parse_config, simulator_settings


@pytest.mark.looptime
async def test_au_messages_to_one_number_are_paced(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with SmscSimulator(simulator_settings(carrier="au", port=0, dlr_delay_ms=500)) as sim:
        config = parse_config(
            {
                "store": {"path": str(tmp_path / "denpo.db")},
                "accounts": {"demo": {"senders": {"au": ["0120000000"]}}},
                "carriers": {"au": {"endpoints": [{"host": "127.0.0.1", "port": sim.port, "system_id": "d"}]}},
            }
        )
        async with Engine(config, wallclock=lambda: 1_800_000_000 + loop.time()) as engine:
            for i in range(3):
                await engine.submit(SubmitRequest(account="demo", to="090-1111-2222", text=f"message {i}", carrier="au"))
            finals: list[StatusEvent] = []
            async for event in engine.events():
                if isinstance(event, StatusEvent) and event.final:
                    finals.append(event)
                    if len(finals) == 3:
                        break
        assert [e.status for e in finals] == ["delivered"] * 3
        times = sim.submit_times("819011112222")
        assert len(times) == 3
        assert all(b - a >= 12.5 for a, b in zip(times, times[1:]))  # 0.5 s receipt + 12 s
        assert sim.stats()["violations"] == 0
