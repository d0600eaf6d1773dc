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


@pytest.mark.looptime
async def test_an_engine_without_events_keeps_none(tmp_path: Path) -> None:
    # denpo serve: nothing reads events(), results leave as notifications; none may pile up
    loop = asyncio.get_running_loop()
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, dlr_delay_ms=100)) as sim:
        config = parse_config(
            {
                "store": {"path": str(tmp_path / "denpo.db")},
                "accounts": {"demo": {"senders": {"docomo": ["0120000000"]}}},
                "carriers": {"docomo": {"endpoints": [{"host": "127.0.0.1", "port": sim.port, "system_id": "d"}]}},
            }
        )
        async with Engine(config, wallclock=lambda: 1_800_000_000 + loop.time(), events=False) as engine:
            accepted = await engine.submit_many(
                [SubmitRequest(account="demo", to=f"090-1111-{i:04d}", text="hello", carrier="docomo") for i in range(20)]
            )
            for _ in range(100):
                views = [await engine.status(a.id) for a in accepted]
                if all(v is not None and v.status == "delivered" for v in views):
                    break
                await asyncio.sleep(0.1)  # virtual time (looptime)
            assert [v.status for v in views] == ["delivered"] * 20
            assert len(engine._events) == 0 and engine.counters["events_dropped"] == 0
            with pytest.raises(RuntimeError, match="events=False"):
                await anext(engine.events())
