"""The carrier pool against the simulators over real TCP; virtual time (looptime) where timing is asserted."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from carriers.smsc import SmscSimulator
from engine.ops.config import CarrierSettings, Endpoint, SmppSettings, simulator_settings
from engine.pool import BindState, CarrierPool, Submission
from engine.smpp.constants import EsmClass, Status, Tag
from engine.smpp.pdu import Pdu, SubmitSm
from tests.vtime import elapse


class Sink:
    """Records every callback; re-queues fate-unknown submissions (at-least-once)."""

    def __init__(self, total: int = 0, resend: bool = True) -> None:
        self.total = total
        self.resend = resend
        self.acked: dict[Any, str] = {}
        self.acked_twice: list[Any] = []
        self.failures: dict[Any, int] = {}
        self.unknown: list[Any] = []
        self.unknown_batches: list[list[Any]] = []
        self.returned_subs: list[Submission] = []
        self.inbound: list[Pdu] = []
        self.order: list[tuple[str, Any]] = []
        self.done = asyncio.Event()
        self.pool: CarrierPool | None = None

    def _check(self) -> None:
        if self.total and len(self.acked) + len(self.failures) >= self.total:
            self.done.set()

    def submitted(self, sub: Submission, message_id: str, bind: str, now: float) -> None:
        if sub.context in self.acked:
            self.acked_twice.append(sub.context)
        self.acked[sub.context] = message_id
        self.order.append(("submitted", message_id))
        self._check()

    def failed(self, sub: Submission, status: int, now: float) -> None:
        self.failures[sub.context] = status
        self._check()

    def fate_unknown(self, subs: list[Submission], reason: str, now: float) -> None:
        self.unknown.extend(s.context for s in subs)
        self.unknown_batches.append([s.context for s in subs])
        if self.resend:
            assert self.pool is not None
            self.pool.source.put_front(subs)

    def returned(self, subs: list[Submission], now: float) -> None:
        self.returned_subs = subs

    def delivered(self, pdu: Pdu, bind: str, now: float, ack: Any = None) -> None:
        self.inbound.append(pdu)
        self.order.append(("delivered", pdu.tlvs.get(Tag.RECEIPTED_MESSAGE_ID)))

    @property
    def receipts(self) -> list[Pdu]:
        return [p for p in self.inbound if p.esm_class & EsmClass.TYPE_MASK]


def submission(i: int, number: str | None = None) -> Submission:
    pdu = SubmitSm(
        source_addr="0120000000",
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=number or f"8180{i:08d}",
        registered_delivery=1,
        data_coding=8,
        short_message="テスト".encode("utf-16-be"),
    )
    return Submission.of(pdu, i)


def settings(port: int, **over: Any) -> CarrierSettings:
    values: dict[str, Any] = {
        "endpoints": [Endpoint(host="127.0.0.1", port=port, system_id="denpo", password="pw")],
        "binds": 4,
        "window": 100,
        "drain_timeout_s": 5.0,
    }
    values.update(over)
    return CarrierSettings(**values)


async def wait_until(predicate: Any, timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)  # a poll: also used by real-time tests


# --- volume ---------------------------------------------------------------------------


async def test_50k_messages_through_4_binds_each_acknowledged_exactly_once() -> None:
    n = 50_000
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, dlr_delay_ms=20, seed=1)) as sim:
        sink = Sink(total=n)
        pool = CarrierPool("docomo", settings(sim.port), sink)
        sink.pool = pool
        async with pool:
            pool.source.put_many(submission(i) for i in range(n))
            await asyncio.wait_for(sink.done.wait(), 120)
            await wait_until(lambda: len(sink.receipts) >= n)
            stats = pool.stats()
        assert len(sink.acked) == n and not sink.failures and not sink.acked_twice
        assert len(set(sink.acked.values())) == n  # a distinct carrier id each
        assert sim.stats()["accepted"] == n
        assert stats["counters"]["submitted"] == n and stats["responses"] == {"ESME_ROK": n}
        assert stats["binds_up"] == 4
        per_bind = [b["counters"]["submitted"] for b in stats["binds"]]
        assert min(per_bind) > n / 4 * 0.5  # the load is spread over the binds
        assert stats["submit_latency_s"]["count"] == n


async def test_transmitter_receiver_pairs_send_on_one_and_receive_on_the_other() -> None:
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, dlr_delay_ms=10)) as sim:
        sink = Sink(total=200)
        pool = CarrierPool("docomo", settings(sim.port, binds=2, bind_mode="transmitter_receiver"), sink)
        sink.pool = pool
        async with pool:
            await wait_until(lambda: pool.binds_up == 4)
            pool.source.put_many(submission(i) for i in range(200))
            await asyncio.wait_for(sink.done.wait(), 30)
            await wait_until(lambda: len(sink.receipts) == 200)
            stats = pool.stats()
        kinds = {b["name"]: b for b in stats["binds"]}
        assert {b["kind"] for b in kinds.values()} == {"transmitter", "receiver"}
        assert sum(b["counters"].get("submitted", 0) for b in kinds.values() if b["kind"] == "receiver") == 0
        assert sum(b["counters"].get("delivered", 0) for b in kinds.values() if b["kind"] == "transmitter") == 0
        assert sim.stats()["bound"] == {"transmitter": 0, "receiver": 0, "transceiver": 0}  # unbound on close


# --- responses by status ----------------------------------------------------------------


@pytest.mark.looptime
async def test_permanent_error_fails_the_message_with_its_status() -> None:
    sim_settings = simulator_settings(carrier="docomo", port=0, reject_rate=1.0, reject_status=Status.ESME_RINVDSTADR)
    async with SmscSimulator(sim_settings) as sim:
        sink = Sink(total=3)
        pool = CarrierPool("docomo", settings(sim.port, binds=1), sink)
        async with pool:
            pool.source.put_many(submission(i) for i in range(3))
            await asyncio.wait_for(sink.done.wait(), 30)
        assert sink.failures == {0: Status.ESME_RINVDSTADR, 1: Status.ESME_RINVDSTADR, 2: Status.ESME_RINVDSTADR}
        assert sim.stats()["rejected"] == 3  # each sent once: a permanent error is not retried


@pytest.mark.looptime
async def test_transient_error_is_retried_with_backoff_then_fails() -> None:
    sim_settings = simulator_settings(carrier="docomo", port=0, reject_rate=1.0, reject_status=Status.ESME_RSYSERR)
    async with SmscSimulator(sim_settings) as sim:
        sink = Sink(total=1)
        pool = CarrierPool("docomo", settings(sim.port, binds=1, retry_attempts=3, retry_base_s=1.0), sink, rng=__import__("random").Random(0))
        loop = asyncio.get_running_loop()
        async with pool:
            await wait_until(lambda: pool.binds_up == 1)
            t0 = loop.time()
            pool.source.put(submission(7))
            await asyncio.wait_for(sink.done.wait(), 60)
            elapsed = loop.time() - t0
        assert sink.failures == {7: Status.ESME_RSYSERR}
        assert sim.stats()["rejected"] == 4  # the first try and 3 retries
        # equal-jitter backoff: at least half of 1 + 2 + 4 s, at most all of it
        assert 3.5 <= elapsed <= 7.5


@pytest.mark.looptime
async def test_transient_error_then_success_is_acknowledged_once() -> None:
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, reject_rate=1.0, reject_status=0x08)) as sim:
        sink = Sink(total=1)
        pool = CarrierPool("docomo", settings(sim.port, binds=1), sink)
        async with pool:
            await wait_until(lambda: pool.binds_up == 1)
            pool.source.put(submission(1))
            await wait_until(lambda: sim.stats()["rejected"] == 1)
            sim.update(reject_rate=0.0)
            await asyncio.wait_for(sink.done.wait(), 60)
        assert list(sink.acked) == [1] and not sink.failures


@pytest.mark.looptime
async def test_status_overrides_per_carrier() -> None:
    sim_settings = simulator_settings(carrier="docomo", port=0, reject_rate=1.0, reject_status=0x0400)
    async with SmscSimulator(sim_settings) as sim:
        sink = Sink(total=1)
        pool = CarrierPool(
            "docomo", settings(sim.port, binds=1, retry_attempts=2, status_overrides={"0x400": "transient"}), sink
        )
        async with pool:
            pool.source.put(submission(1))
            await asyncio.wait_for(sink.done.wait(), 60)
        assert sink.failures == {1: 0x400}
        assert sim.stats()["rejected"] == 3  # retried as transient, not failed at once


# --- inbound ----------------------------------------------------------------------------


@pytest.mark.looptime
async def test_receipt_in_the_same_read_as_its_response_keeps_wire_order() -> None:
    # equal delays: the receipt and the response leave the simulator in one write
    sim_settings = simulator_settings(carrier="docomo", port=0, dlr_delay_ms=50, response_delay_ms=50)
    async with SmscSimulator(sim_settings) as sim:
        sink = Sink(total=5)
        pool = CarrierPool("docomo", settings(sim.port, binds=1), sink)
        async with pool:
            pool.source.put_many(submission(i) for i in range(5))
            await asyncio.wait_for(sink.done.wait(), 30)
            await wait_until(lambda: len(sink.receipts) == 5)
        ids = set(sink.acked.values())
        assert {mid for kind, mid in sink.order if kind == "delivered"} == ids
        # every receipt was handed over, in the order the bytes arrived (here: before its response)
        for mid in ids:
            assert sink.order.index(("delivered", mid)) < sink.order.index(("submitted", mid))


@pytest.mark.looptime
async def test_mo_messages_are_acknowledged_and_handed_over() -> None:
    async with SmscSimulator(simulator_settings(carrier="au", port=0)) as sim:
        sink = Sink()
        pool = CarrierPool("au", settings(sim.port, binds=1), sink)
        async with pool:
            await wait_until(lambda: pool.binds_up == 1)
            sim.inject_mo(source="819011112222", destination="0120000000", text="はい、参加します", system_id="denpo")
            await wait_until(lambda: sink.inbound)
            await wait_until(lambda: sim.stats()["mo_acked"] == 1)
        (mo,) = sink.inbound
        assert mo.source_addr == "819011112222" and not mo.esm_class & EsmClass.TYPE_MASK
        assert mo.short_message.decode("utf-16-be") == "はい、参加します"


# --- rate limiting and throttle feedback --------------------------------------------------


@pytest.mark.looptime
async def test_configured_rate_is_never_exceeded_in_any_second() -> None:
    rate = 300.0
    n = 3000
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, throughput_cap=500, track_numbers=n + 10)) as sim:
        sink = Sink(total=n)
        pool = CarrierPool("docomo", settings(sim.port, rate=rate, burst=1), sink)
        async with pool:
            await wait_until(lambda: pool.binds_up == 4)
            pool.source.put_many(submission(i) for i in range(n))
            await asyncio.wait_for(sink.done.wait(), 60)
        times = sorted(t for ts in sim.stats(numbers=True)["submit_times"].values() for t in ts)
        assert len(times) == n and sim.stats()["throttled"] == 0
        worst = 0
        j = 0
        for i, start in enumerate(times):  # sliding one-second windows starting at every submit
            while j < len(times) and times[j] < start + 1.0 - 1e-9:
                j += 1
            worst = max(worst, j - i)
        assert worst <= rate + 1, f"{worst} submits within one second"
        assert (times[-1] - times[0]) == pytest.approx((n - 1) / rate, rel=0.01)


@pytest.mark.looptime
async def test_per_bind_rate() -> None:
    n = 400
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, track_numbers=n + 10)) as sim:
        sink = Sink(total=n)
        pool = CarrierPool("docomo", settings(sim.port, binds=2, bind_rate=50.0), sink)
        loop = asyncio.get_running_loop()
        async with pool:
            await wait_until(lambda: pool.binds_up == 2)
            t0 = loop.time()
            pool.source.put_many(submission(i) for i in range(n))
            await asyncio.wait_for(sink.done.wait(), 60)
            elapsed = loop.time() - t0
        # two binds at 50/s each: 400 messages take about 4 s
        assert elapsed == pytest.approx(4.0, abs=0.2)


@pytest.mark.looptime
async def test_throttle_feedback_converges_below_the_carriers_cap() -> None:
    cap = 100.0
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, throughput_cap=cap, dlr_delay_ms=10)) as sim:
        sink = Sink()
        pool = CarrierPool("docomo", settings(sim.port), sink)
        loop = asyncio.get_running_loop()
        async with pool:
            await wait_until(lambda: pool.binds_up == 4)
            pool.source.put_many(submission(i) for i in range(int(cap * 50)))
            await elapse(20)  # virtual time: converge
            before = sim.stats()
            t0 = loop.time()
            await elapse(25)
            after = sim.stats()
            elapsed = loop.time() - t0
            cuts = pool.stats()["rate_cuts"]
        assert cuts >= 1  # the feedback did act
        accepted = after["accepted"] - before["accepted"]
        throttled = after["throttled"] - before["throttled"]
        submits = after["submit_sm"] - before["submit_sm"]
        assert accepted / elapsed >= 0.9 * cap, (accepted / elapsed, pool.stats()["effective_rate"])
        assert throttled <= 0.02 * submits, (throttled, submits)
        assert not sink.failures  # a throttled message is sent again, never failed


# --- failures of the link -------------------------------------------------------------------


@pytest.mark.looptime
async def test_simulator_killed_mid_window_then_back() -> None:
    n = 2000
    loop = asyncio.get_running_loop()
    sim = SmscSimulator(simulator_settings(carrier="docomo", port=0, dlr_delay_ms=500, response_delay_ms=200))
    await sim.start()
    port = sim.port
    sink = Sink(total=n)
    pool = CarrierPool("docomo", settings(port, reconnect_base_s=0.5, reconnect_cap_s=4.0), sink)
    sink.pool = pool
    async with pool:
        pool.source.put_many(submission(i) for i in range(n))
        await wait_until(lambda: len(sink.acked) >= 500)
        in_flight = pool.stats()["outstanding"]
        acked_before = set(sink.acked)
        assert in_flight > 0
        await sim.stop()  # the carrier vanishes: connections drop mid-window
        await wait_until(lambda: len(sink.unknown) >= in_flight)
        assert len(sink.unknown) == in_flight
        assert not set(sink.unknown) & acked_before
        for batch in sink.unknown_batches:
            assert batch == sorted(batch)  # handed back in send order
        assert pool.binds_up == 0
        await elapse(3)
        sim = SmscSimulator(simulator_settings(carrier="docomo", port=port, dlr_delay_ms=50))
        await sim.start()  # back on the same address: the pool rebinds by itself
        t_back = loop.time()
        await asyncio.wait_for(sink.done.wait(), 120)
        assert loop.time() - t_back < 10
        await wait_until(lambda: pool.binds_up == 4, 30)
        stats = pool.stats()
    await sim.stop()
    assert sorted(sink.acked) == list(range(n)) and not sink.acked_twice and not sink.failures
    assert all(b["counters"].get("binds", 0) >= 2 for b in stats["binds"])


@pytest.mark.looptime
async def test_wrong_password_is_reported_and_retried_slowly() -> None:
    sim_settings = simulator_settings(carrier="au", port=0, system_id="denpo", password="right")
    async with SmscSimulator(sim_settings) as sim:
        sink = Sink()
        pool = CarrierPool("au", settings(sim.port, binds=1, bad_credentials_retry_s=60.0), sink)
        async with pool:
            await elapse(600)  # ten minutes of virtual time
            (bind,) = pool.binds
            attempts = list(bind.attempts)
            stats = pool.stats()
        assert "ESME_RINVPASWD" in stats["binds"][0]["last_error"]
        assert stats["binds"][0]["state"] != BindState.UP
        assert 2 <= len(attempts) <= 11  # no tight loop
        gaps = [b - a for a, b in zip(attempts, attempts[1:])]
        assert all(g >= 30.0 for g in gaps)  # at least half the slow interval (equal jitter)
        assert gaps[-1] >= gaps[0]  # the interval grows
        assert sim.stats()["bind_failures"] == len(attempts)


@pytest.mark.looptime
async def test_unreachable_endpoint_fails_over_to_the_next() -> None:
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0)) as sim:
        dead = Endpoint(host="127.0.0.1", port=1, system_id="denpo", password="pw")
        live = Endpoint(host="127.0.0.1", port=sim.port, system_id="denpo", password="pw")
        sink = Sink(total=10)
        pool = CarrierPool("docomo", settings(sim.port, binds=2, endpoints=[dead, live]), sink)
        async with pool:
            pool.source.put_many(submission(i) for i in range(10))
            await asyncio.wait_for(sink.done.wait(), 60)
            await wait_until(lambda: pool.binds_up == 2, 5)
            assert {b["endpoint"] for b in pool.stats()["binds"]} == {f"127.0.0.1:{sim.port}"}


@pytest.mark.looptime
async def test_response_timeout_marks_the_bind_dead_and_hands_back_fate_unknown() -> None:
    # responses come after 30 s; the engine waits 10 s
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, response_delay_ms=30_000)) as sim:
        sink = Sink(resend=False)
        pool = CarrierPool("docomo", settings(sim.port, binds=1), sink, smpp=SmppSettings(response_timeout_s=10.0))
        loop = asyncio.get_running_loop()
        async with pool:
            await wait_until(lambda: pool.binds_up == 1)
            t0 = loop.time()
            pool.source.put_many(submission(i) for i in range(3))
            await wait_until(lambda: len(sink.unknown) == 3)
            assert loop.time() - t0 == pytest.approx(10.0, abs=0.05)
        assert sink.unknown == [0, 1, 2] and not sink.acked


@pytest.mark.looptime
async def test_graceful_close_drains_responses_then_unbinds() -> None:
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, response_delay_ms=2_000)) as sim:
        sink = Sink()
        pool = CarrierPool("docomo", settings(sim.port, binds=2, drain_timeout_s=5.0), sink)
        await pool.start()
        await wait_until(lambda: pool.binds_up == 2)
        pool.source.put_many(submission(i) for i in range(50))
        await wait_until(lambda: pool.stats()["outstanding"] == 50)
        await pool.close()
        assert len(sink.acked) == 50 and not sink.unknown  # every response arrived before the unbind
        assert sim.stats().get("unbinds", 0) == 2


@pytest.mark.looptime
async def test_close_hands_back_what_was_never_sent() -> None:
    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, reject_rate=1.0, reject_status=0x08)) as sim:
        sink = Sink()
        pool = CarrierPool("docomo", settings(sim.port, binds=1, retry_base_s=100.0), sink)
        await pool.start()
        pool.source.put(submission(9))
        await wait_until(lambda: sim.stats()["rejected"] == 1)
        await pool.close()
        assert [s.context for s in sink.returned_subs] == [9]


def test_bind_failures_are_logged_loudly(caplog: pytest.LogCaptureFixture) -> None:
    async def scenario() -> None:
        sim_settings = simulator_settings(carrier="au", port=0, system_id="denpo", password="right")
        async with SmscSimulator(sim_settings) as sim:
            pool = CarrierPool("au", settings(sim.port, binds=1), Sink())
            async with pool:
                await wait_until(lambda: pool.binds[0].counters["bind_refused"] >= 1)

    with caplog.at_level(logging.ERROR, logger="denpo.pool"):
        asyncio.run(scenario())
    assert any("ESME_RINVPASWD" in r.getMessage() and r.levelno == logging.ERROR for r in caplog.records)


@pytest.mark.looptime
async def test_a_consumer_that_raises_gets_the_receipt_again_later() -> None:
    class Flaky(Sink):
        def delivered(self, pdu: Pdu, bind: str, now: float, ack: Any = None) -> None:
            if not getattr(self, "raised", False):
                self.raised = True
                raise RuntimeError("store unavailable")
            super().delivered(pdu, bind, now)

    async with SmscSimulator(simulator_settings(carrier="docomo", port=0, dlr_delay_ms=10)) as sim:
        sink = Flaky(total=1)
        pool = CarrierPool("docomo", settings(sim.port, binds=1), sink)
        async with pool:
            pool.source.put(submission(1))
            await wait_until(lambda: len(sink.receipts) == 1)
            assert pool.binds_up == 1  # the connection survived
        assert sim.stats()["deliver_nacked"] == 1 and sim.stats()["receipts_acked"] == 1
