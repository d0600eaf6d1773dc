"""Fault and load knobs: throughput cap, queue full, rejections, dropped /
failed receipts, forced disconnects, response delay, deliver window, seed,
pending-receipt cap, number tracking."""

from __future__ import annotations

import asyncio

import pytest

from engine.smpp.constants import CommandId, Status
from tests.vtime import elapse

from .simkit import (
    SilentEsme,
    bind,
    collect,
    collect_timed,
    data_sm,
    fields,
    nothing_for,
    now,
    rid,
    running,
    sm,
    submit_all,
)

pytestmark = pytest.mark.looptime

N = "819012345678"
THROTTLED = Status.ESME_RTHROTTLED


async def burst(esme, count, *, dest=N):
    """``count`` submits at the same virtual instant (pipelined); their statuses in order."""
    resps = await asyncio.gather(*(esme.request(sm(dest, rd=0), timeout=5) for _ in range(count)))
    return [r.command_status for r in resps]


async def paced(esme, seconds, rate):
    """Submits at ``rate`` per second for ``seconds``; [(time, status)]."""
    out = []
    t0 = now()
    for k in range(1, int(seconds * rate) + 1):
        await elapse(t0 + k / rate - now())
        r = await esme.request(sm(N, rd=0), timeout=5)
        out.append((now() - t0, r.command_status))
    return out


async def test_throughput_cap_with_the_default_burst():
    async with running("docomo", throughput_cap=10) as sim:  # default burst: a tenth of a second = 1
        esme = await bind(sim)
        statuses = await burst(esme, 20)
        assert statuses.count(Status.ESME_ROK) == 1
        assert statuses.count(THROTTLED) == 19
        got = await paced(esme, 5.0, 100)
        accepted = [t for t, s in got if s == Status.ESME_ROK]
        assert all(s in (Status.ESME_ROK, THROTTLED) for _, s in got)
        assert 45 <= len(accepted) <= 51  # ≈ 10/s × 5 s
        for second in range(5):  # spread evenly over the seconds, not front-loaded
            assert 8 <= sum(1 for t in accepted if second < t <= second + 1) <= 11
        stats = sim.stats()
        assert stats["throttled"] == 19 + len(got) - len(accepted)
        assert stats["accepted"] == 1 + len(accepted)
        await esme.close()


@pytest.mark.parametrize("cap", [3, 7, 10, 50])
async def test_a_sender_at_exactly_the_cap_is_never_throttled(cap):
    """One submit every 1/cap seconds is exactly the cap: the token bucket must accept
    every one, whatever floating-point rounding does to 1/cap × cap."""
    async with running("docomo", throughput_cap=cap) as sim:
        esme = await bind(sim)
        got = await paced(esme, 5.0, cap)
        throttled = [round(t, 6) for t, s in got if s != Status.ESME_ROK]
        assert throttled == [], f"{len(throttled)} of {len(got)} throttled at exactly {cap}/s"
        await esme.close()


async def test_throughput_cap_with_an_explicit_burst():
    async with running("au", throughput_cap=50, throttle_burst=25) as sim:
        esme = await bind(sim)
        statuses = await burst(esme, 40, dest="819000000001")
        assert statuses == [Status.ESME_ROK] * 25 + [THROTTLED] * 15
        got = await paced(esme, 3.0, 200)
        accepted = sum(1 for _, s in got if s == Status.ESME_ROK)
        assert 148 <= accepted <= 151  # 50/s × 3 s
        # idle long enough, the bucket refills to the burst, no further
        await elapse(10)
        statuses = await burst(esme, 40, dest="819000000002")
        assert statuses.count(Status.ESME_ROK) == 25
        await esme.close()


async def test_throughput_cap_zero_means_no_cap():
    async with running("docomo", throughput_cap=0) as sim:
        esme = await bind(sim)
        assert await burst(esme, 300) == [Status.ESME_ROK] * 300
        await esme.close()


async def test_throughput_cap_applies_to_data_sm_too():
    async with running("docomo", throughput_cap=1, throttle_burst=1) as sim:
        esme = await bind(sim)
        assert (await esme.request(data_sm(N, rd=0), timeout=5)).command_status == Status.ESME_ROK
        assert (await esme.request(data_sm(N, rd=0), timeout=5)).command_status == THROTTLED
        await elapse(1.0)
        assert (await esme.request(data_sm(N, rd=0), timeout=5)).command_status == Status.ESME_ROK
        await esme.close()


async def test_queue_full_rate_1():
    async with running("rakuten", queue_full_rate=1.0) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N), timeout=5)
        assert r.command_status == Status.ESME_RMSGQFUL and r.message_id == ""
        assert (await esme.request(data_sm(N), timeout=5)).command_status == Status.ESME_RMSGQFUL
        await nothing_for(esme, 30)  # nothing accepted, no receipt
        stats = sim.stats()
        assert stats["queue_full"] == 2 and stats["accepted"] == 0
        await esme.close()


@pytest.mark.parametrize("knobs, status", [({}, 0x45), ({"reject_status": 0x0B}, 0x0B), ({"reject_status": 0x401}, 0x401)])
async def test_reject_rate_1(knobs, status):
    async with running("softbank", reject_rate=1.0, **knobs) as sim:
        esme = await bind(sim)
        r = await esme.request(sm(N), timeout=5)
        assert r.command_status == status
        assert (await esme.request(data_sm(N), timeout=5)).command_status == status
        await nothing_for(esme, 30)
        assert sim.stats()["rejected"] == 2 and sim.stats()["accepted"] == 0
        await esme.close()


async def test_default_reject_status_is_submit_fail():
    async with running("au", reject_rate=1.0) as sim:
        esme = await bind(sim)
        assert (await esme.request(sm(N), timeout=5)).command_status == Status.ESME_RSUBMITFAIL
        await esme.close()


async def test_receipt_drop_rate_1_accepts_but_never_reports():
    async with running("docomo", receipt_drop_rate=1.0) as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, [sm(f"8190000000{i}") for i in range(5)])
        assert all(r.command_status == Status.ESME_ROK and r.message_id for r in resps)
        await nothing_for(esme, 120)
        stats = sim.stats()
        assert stats["receipts_dropped_messages"] == 5 and stats["receipts_sent"] == 0
        assert stats["receipts_pending"] == 0 and stats["receipts_scheduled"] == 0
        await esme.close()


@pytest.mark.parametrize("knob, expected", [("undeliverable_rate", "UNDELIV"), ("expired_rate", "EXPIRED")])
async def test_outcome_rate_1_every_receipt(knob, expected):
    async with running("docomo", **{knob: 1.0}) as sim:
        esme = await bind(sim)
        resps = await submit_all(esme, [sm(f"8190000000{i}") for i in range(5)])
        receipts = await collect(esme, 5)
        assert {rid(p) for p in receipts} == {r.message_id for r in resps}
        assert {fields(p)["stat"] for p in receipts} == {expected}
        await esme.close()


@pytest.mark.parametrize("rate", [0.3, 0.5])
async def test_outcome_rates_are_shares(rate):
    async with running("docomo", undeliverable_rate=rate, seed=9) as sim:
        esme = await bind(sim)
        await submit_all(esme, [sm(f"81900{i:07d}") for i in range(400)])
        stats = [fields(p)["stat"] for p in await collect(esme, 400)]
        share = stats.count("UNDELIV") / 400
        assert abs(share - rate) < 0.1
        await esme.close()


async def test_disconnect_after_n_pdus():
    async with running("au", disconnect_after=3) as sim:
        esme = await bind(sim)  # PDU 1
        assert (await esme.request(sm(N, rd=0), timeout=5)).command_status == Status.ESME_ROK  # PDU 2
        with pytest.raises(ConnectionError):
            await esme.request(sm("819000000009", rd=0), timeout=5)  # PDU 3: dropped, no response
        await asyncio.wait_for(esme.lost.wait(), 5)
        assert sim.stats()["forced_disconnects"] == 1
        # each connection counts its own PDUs
        again = await bind(sim)
        assert (await again.request(sm("819000000010", rd=0), timeout=5)).command_status == Status.ESME_ROK
        with pytest.raises(ConnectionError):
            await again.request(sm("819000000011", rd=0), timeout=5)
        assert sim.stats()["forced_disconnects"] == 2
        assert sim.stats()["connections"] == 2


async def test_disconnect_after_counts_deliver_sm_responses():
    async with running("docomo", disconnect_after=3, dlr_delay_ms=100) as sim:
        esme = await bind(sim)  # 1
        await esme.request(sm(N), timeout=5)  # 2
        await collect(esme, 1)  # our deliver_sm_resp is 3
        await asyncio.wait_for(esme.lost.wait(), 5)
        assert sim.stats()["forced_disconnects"] == 1


async def test_disconnect_after_zero_never_disconnects():
    async with running("docomo", disconnect_after=0) as sim:
        esme = await bind(sim)
        await submit_all(esme, [sm(N, rd=0) for _ in range(200)])
        assert not esme.lost.is_set() and sim.stats()["forced_disconnects"] == 0
        await esme.close()


@pytest.mark.parametrize("delay_ms", [250, 3000])
async def test_response_delay_is_exact(delay_ms):
    async with running("docomo", response_delay_ms=delay_ms) as sim:
        t = now()
        esme = await bind(sim)
        assert now() == t  # bind answered at once
        for pdu in (sm(N, rd=0), data_sm(N, rd=0)):
            t0 = now()
            r = await esme.request(pdu, timeout=10)
            assert r.command_status == Status.ESME_ROK
            assert now() - t0 == pytest.approx(delay_ms / 1000, abs=1e-6)
        await esme.close()


async def test_response_delay_applies_to_each_pipelined_request_from_its_arrival():
    async with running("au", response_delay_ms=500) as sim:
        esme = await bind(sim)
        t0 = now()

        async def one(offset, dest):
            await elapse(offset)
            r = await esme.request(sm(dest, rd=0), timeout=10)
            return now() - t0, r

        got = await asyncio.gather(*(one(k * 0.1, f"81900000000{k}") for k in range(5)))
        assert [round(t, 6) for t, _ in got] == [0.5, 0.6, 0.7, 0.8, 0.9]
        assert len({r.message_id for _, r in got}) == 5
        await esme.close()


async def test_receipt_can_overtake_a_delayed_response():
    async with running("docomo", response_delay_ms=500, dlr_delay_ms=100) as sim:
        esme = await bind(sim)
        t0 = now()
        task = asyncio.ensure_future(esme.request(sm(N), timeout=10))
        ((t_receipt, receipt),) = await collect_timed(esme, 1)
        r = await task
        assert t_receipt - t0 == pytest.approx(0.1, abs=1e-6)
        assert now() - t0 == pytest.approx(0.5, abs=1e-6)
        assert rid(receipt) == r.message_id
        await esme.close()


async def test_window_limits_outstanding_deliver_sm_per_connection():
    async with running("docomo", window=3, dlr_delay_ms=100) as sim:
        tx = await bind(sim, "transmitter", system_id="acme")
        silent = await bind(sim, "receiver", system_id="acme", cls=SilentEsme)
        ids = {(await tx.request(sm(f"8190000000{i:02d}"), timeout=5)).message_id for i in range(10)}
        first = await collect(silent, 3)
        await nothing_for(silent, 2)  # the window is full: no 4th
        assert sim.stats()["receipts_pending"] == 7
        silent.ack(first[0])
        (fourth,) = await collect(silent, 1)  # one slot freed, one more comes
        await nothing_for(silent, 1)
        # another connection of the same system_id has its own window
        rx = await bind(sim, "receiver", system_id="acme")
        rest = await collect(rx, 6)
        await nothing_for(rx, 1)
        assert {rid(p) for p in first + [fourth] + rest} == ids
        for p in first[1:] + [fourth]:
            silent.ack(p)
        await nothing_for(rx, 15)  # the acknowledged ones are not offered again
        await tx.close()
        await rx.close()
        await silent.close()


async def test_window_knob_bounds_each_connection_even_with_many_receipts():
    async with running("rakuten", window=5, dlr_delay_ms=100) as sim:
        a = await bind(sim, "receiver", system_id="acme", cls=SilentEsme)
        b = await bind(sim, "receiver", system_id="acme", cls=SilentEsme)
        tx = await bind(sim, "transmitter", system_id="acme")
        await submit_all(tx, [sm(f"8190000000{i:02d}") for i in range(30)])
        await elapse(2)
        assert a.delivered.qsize() == 5 and b.delivered.qsize() == 5
        assert sim.stats()["receipts_pending"] == 20
        for e in (a, b, tx):
            await e.close()


async def _outcomes(seed):
    async with running("docomo", seed=seed, queue_full_rate=0.3, undeliverable_rate=0.5, dlr_spread_ms=1000) as sim:
        esme = await bind(sim)
        t0 = now()
        resps = await submit_all(esme, [sm(f"81900{i:07d}") for i in range(60)])
        statuses = [r.command_status for r in resps]
        accepted = [r.message_id for r in resps if r.command_status == Status.ESME_ROK]
        timed = await collect_timed(esme, len(accepted))
        by_id = {rid(p): (round(t - t0, 6), fields(p)["stat"]) for t, p in timed}
        await esme.close()
        return statuses, [by_id[m] for m in accepted]


async def test_seed_makes_random_knobs_reproducible():
    a = await _outcomes(1234)
    b = await _outcomes(1234)
    c = await _outcomes(4321)
    assert a == b
    assert a != c
    statuses, receipts = a
    assert Status.ESME_RMSGQFUL in statuses and Status.ESME_ROK in statuses
    assert {s for _, s in receipts} == {"DELIVRD", "UNDELIV"}


async def test_max_pending_receipts_drops_the_overflow():
    async with running("docomo", max_pending_receipts=2, dlr_delay_ms=100) as sim:
        tx = await bind(sim, "transmitter", system_id="acme")
        await submit_all(tx, [sm(f"8190000000{i}") for i in range(5)])
        await elapse(5)
        stats = sim.stats()
        assert stats["receipts_pending"] == 2 and stats["pending_overflow"] == 3
        rx = await bind(sim, "receiver", system_id="acme")
        assert len(await collect(rx, 2)) == 2
        await nothing_for(rx, 10)
        await tx.close()
        await rx.close()


async def test_track_numbers_bounds_the_numbers_with_submit_times():
    async with running("docomo", track_numbers=2) as sim:
        esme = await bind(sim)
        t0 = now()
        for dest in ("819000000001", "819000000002", "819000000003", "819000000001"):
            await esme.request(sm(dest, rd=0), timeout=5)
            await elapse(1.5)
        times = sim.stats(numbers=True)["submit_times"]
        assert set(times) == {"819000000001", "819000000002"}
        assert [round(t - t0, 6) for t in times["819000000001"]] == [0.0, 4.5]
        assert sim.submit_times("819000000003") == []
        assert "submit_times" not in sim.stats()
        await esme.close()


async def test_track_numbers_zero_tracks_nothing():
    async with running("au", track_numbers=0) as sim:
        esme = await bind(sim)
        await esme.request(sm(N, rd=0), timeout=5)
        assert sim.stats(numbers=True)["submit_times"] == {}
        assert sim.submit_times(N) == []
        await esme.close()


async def test_submit_times_tracks_first_part_of_each_message():
    from .simkit import text_pdus

    async with running("au", dlr_delay_ms=100) as sim:
        esme = await bind(sim)
        t0 = now()
        for p in text_pdus("au", N, "あ" * 200, ref=1):
            await esme.request(p, timeout=5)
            await elapse(0.5)
        assert [round(t - t0, 6) for t in sim.submit_times(N)] == [0.0]
        await esme.close()


async def test_runtime_update_of_knobs_takes_effect():
    async with running("docomo") as sim:
        esme = await bind(sim)
        assert (await esme.request(sm(N, rd=0), timeout=5)).command_status == Status.ESME_ROK
        new = sim.update(queue_full_rate=1.0)
        assert new.queue_full_rate == 1.0 and new.carrier == "docomo"
        assert (await esme.request(sm(N, rd=0), timeout=5)).command_status == Status.ESME_RMSGQFUL
        sim.update(queue_full_rate=0.0, dlr_delay_ms=7000)
        t0 = now()
        await esme.request(sm(N), timeout=5)
        ((t, _),) = await collect_timed(esme, 1)
        assert t - t0 == pytest.approx(7.0, abs=1e-6)
        await esme.close()


async def test_update_rejects_invalid_values_and_keeps_the_old_ones():
    from engine.ops.config import ConfigError

    async with running("docomo", queue_full_rate=0.0) as sim:
        with pytest.raises(ConfigError) as err:
            sim.update(queue_full_rate=2.0)
        assert "queue_full_rate" in str(err.value)
        with pytest.raises(ConfigError) as err:
            sim.update(no_such_knob=1)
        assert "no_such_knob" in str(err.value)
        assert sim.settings.queue_full_rate == 0.0
        esme = await bind(sim)
        assert (await esme.request(sm(N, rd=0), timeout=5)).command_id == CommandId.SUBMIT_SM_RESP
        await esme.close()
