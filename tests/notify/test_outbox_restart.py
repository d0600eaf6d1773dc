"""Result notifications across an engine restart on the same store (found by ``denpo bench soak``).

A receiver de-duplicates by ``event_id`` (delivery is at-least-once), so an
``event_id`` must never be handed out twice — also after a restart, when the
notifications already sent are gone from the outbox.  And a notification still
pending when the engine stopped (the receiver was down) is sent after the
restart.  Real time, in-process engine and simulator; waits are for events,
bounded by timeouts."""

from __future__ import annotations

import asyncio

from bench.http_bench import Receiver
from engine.api import SubmitRequest
from tests.engine._kit import SENDERS, config, running, simulator


def _config(tmp_path, sim, receiver_port: int):
    cfg = config(
        tmp_path, {"docomo": sim},
        accounts={"demo": {"senders": SENDERS, "result_url": f"http://127.0.0.1:{receiver_port}/results", "signing_secret": "s" * 16}},
    )
    data = {f: getattr(cfg, f) for f in cfg.__struct_fields__}
    data["notify"] = type(cfg.notify)(retry_base_s=0.05, retry_cap_s=0.2)
    return type(cfg)(**data)


async def _send(engine, first: int, n: int) -> list[str]:
    ids = []
    for i in range(first, first + n):
        accepted = await engine.submit(SubmitRequest(account="demo", to=f"090-0000-{i:04d}", text=f"restart {i}", carrier="docomo"))
        ids.append(accepted.id)
    return ids


async def _notified(receiver: Receiver, ids: list[str], timeout: float = 30.0) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not set(ids) <= receiver.messages.keys():
                receiver.changed.clear()
                await receiver.changed.wait()
    except TimeoutError:
        missing = sorted(set(ids) - receiver.messages.keys())
        raise AssertionError(f"not notified: {missing}; events {len(receiver.events)}, deliveries {receiver.deliveries}") from None


async def test_event_ids_are_never_handed_out_again_after_a_restart(tmp_path):
    receiver = await Receiver().start()
    try:
        async with simulator("docomo", dlr_delay_ms=10) as sim:
            cfg = _config(tmp_path, sim, receiver.port)
            async with running(cfg) as (engine, _log):
                first = await _send(engine, 0, 3)
                await _notified(receiver, first)  # sent: gone from the outbox
            async with running(cfg) as (engine, _log):
                second = await _send(engine, 3, 3)
                await _notified(receiver, second)  # with a reused event_id the receiver takes them for duplicates
        assert len(receiver.events) == 6 == receiver.deliveries
    finally:
        await receiver.close()


async def test_notifications_pending_at_a_stop_are_sent_after_the_restart(tmp_path):
    receiver = await Receiver().start()
    port = receiver.port
    await receiver.close()  # down
    try:
        async with simulator("docomo", dlr_delay_ms=10) as sim:
            cfg = _config(tmp_path, sim, port)
            async with running(cfg) as (engine, log):
                ids = await _send(engine, 0, 3)
                await log.wait_finals(ids, 30)
                async with asyncio.timeout(30):
                    while engine.notifier.counters["retry"] < 3:
                        await asyncio.sleep(0.02)  # polling a counter of the running engine
            await receiver.start(port=port)  # up again, while the engine is stopped
            async with running(cfg) as (engine, _log):
                await _notified(receiver, ids)
    finally:
        await receiver.close()
