"""Issue acceptance 1: au per-number pacing at scale, next to non-au traffic.

Scale: the issue's 1,000 au numbers × 5 messages each, mixed with 10,000
docomo messages to other numbers (the issue asks for 100k; on the 2-core CI
machine that took 5 min 39 s of wall time (2026-11-22, passed), mostly because
every store commit is a real-time round trip under looptime — run it with
``AU_N=1000 DOC_N=100000 DOC_RATE=2000``).  AU_N / DOC_N / DOC_RATE in the
environment override the counts and the docomo rate.  Time is driven by the
configured per-carrier rates (au 200/s, docomo 500/s), not by the machine.
"""

from __future__ import annotations

import asyncio
import collections
import os
from pathlib import Path

import pytest

from engine.api import SubmitRequest
from tests.vtime import elapse

from ._kit import WALL0, config, running, settle, simulator

AU_NUMBERS = int(os.environ.get("AU_N", "1000"))
PER_NUMBER = 5
DOCOMO = int(os.environ.get("DOC_N", "10000"))
AU_RATE = 200.0
DOCOMO_RATE = float(os.environ.get("DOC_RATE", "500"))
DLR_S = 0.5
BATCH = 1_000


def _au(i: int) -> str:
    return f"090{i:08d}"


def _docomo(i: int) -> str:
    return f"070{i:08d}"


def _batches(with_au: bool) -> list[list[SubmitRequest]]:
    """Rounds of au traffic (one message per number per round) with docomo traffic mixed into every batch."""
    au = [
        SubmitRequest(account="demo", to=_au(i), text=f"au {r} to {i}", carrier="au")
        for r in range(PER_NUMBER)
        for i in range(AU_NUMBERS)
    ] if with_au else []
    docomo = [SubmitRequest(account="demo", to=_docomo(i), text=f"docomo {i}", carrier="docomo") for i in range(DOCOMO)]
    n = max(len(au), len(docomo)) // BATCH + 1
    a_step = -(-len(au) // n) if au else 0
    d_step = -(-len(docomo) // n)
    out = []
    for k in range(n):
        batch = docomo[k * d_step : (k + 1) * d_step] + au[k * a_step : (k + 1) * a_step]
        if batch:
            out.append(batch)
    return out


async def _run(tmp_path: Path, with_au: bool) -> dict[str, object]:
    loop = asyncio.get_running_loop()
    async with simulator("au", dlr_delay_ms=DLR_S * 1000) as au_sim, simulator("docomo", dlr_delay_ms=DLR_S * 1000, partial_failure_rate=0.0) as do_sim:
        cfg = config(
            tmp_path,
            {"au": au_sim, "docomo": do_sim},
            carriers={"au": {"rate": AU_RATE, "window": 200}, "docomo": {"rate": DOCOMO_RATE, "window": 200}},
        )
        async with running(cfg) as (engine, log):
            t0 = loop.time()
            kinds: dict[str, str] = {}
            for batch in _batches(with_au):
                results = await settle(engine.submit_many(batch))
                for req, res in zip(batch, results):
                    assert not isinstance(res, Exception), res
                    kinds[res.id] = req.carrier  # type: ignore[assignment]
            await log.wait_finals(kinds, timeout=600)
            finals = {i: log.finals[i] for i in kinds}
            docomo_done = max(e.done_at for i, e in finals.items() if kinds[i] == "docomo") - WALL0 - t0  # type: ignore[operator]
            return {
                "finals": finals,
                "kinds": kinds,
                "docomo_done": docomo_done,
                "au_stats": au_sim.stats(),
                "au_times": {_au(i): au_sim.submit_times("81" + _au(i)[1:]) for i in range(AU_NUMBERS)} if with_au else {},
                "docomo_stats": do_sim.stats(),
            }


@pytest.mark.looptime(noop_cycles=5)
async def test_au_pacing_at_scale_does_not_slow_other_carriers(tmp_path: Path) -> None:
    mixed = await _run(tmp_path / "mixed", with_au=True)
    alone = await _run(tmp_path / "alone", with_au=False)

    # every au message to a number arrived >= 12 s after the previous one ended (its receipt, DLR_S after arrival)
    au_stats = mixed["au_stats"]
    assert au_stats["accepted"] == AU_NUMBERS * PER_NUMBER  # type: ignore[index]
    gaps = {}
    for number, times in mixed["au_times"].items():  # type: ignore[union-attr]
        assert len(times) == PER_NUMBER, (number, times)
        gaps[number] = [b - a for a, b in zip(times, times[1:])]
    smallest = min(min(g) for g in gaps.values())
    assert smallest >= 12.0 + DLR_S - 1e-6, smallest
    # ... and the gate holds no number back much longer than needed (one round of the au rate)
    largest = max(max(g) for g in gaps.values())
    assert largest < 12.0 + DLR_S + AU_NUMBERS / AU_RATE + 2.0, largest

    # docomo completes as if there were no au traffic: DOCOMO / rate + receipt delay
    expected = DOCOMO / DOCOMO_RATE + DLR_S
    assert alone["docomo_done"] == pytest.approx(expected, abs=1.0)
    assert mixed["docomo_done"] == pytest.approx(alone["docomo_done"], abs=1.0), (mixed["docomo_done"], alone["docomo_done"])
    assert mixed["docomo_stats"]["accepted"] == DOCOMO  # type: ignore[index]

    # the au simulator saw no pacing violation, so every message was delivered
    violators = au_stats["violation_numbers"]  # type: ignore[index]
    assert au_stats["violations"] == 0, (  # type: ignore[index]
        f"{au_stats['violations']} au pacing violations; e.g. {violators[0]}: arrivals "  # type: ignore[index]
        f"{mixed['au_times'].get('0' + violators[0][2:])}"  # type: ignore[union-attr]
    )
    statuses = collections.Counter(e.status for e in mixed["finals"].values())  # type: ignore[union-attr]
    assert set(statuses) == {"delivered"}, statuses


@pytest.mark.looptime
async def test_a_submit_exactly_12_s_after_the_receipt_is_not_a_violation() -> None:
    """The engine releases a paced number at ``end + 12.0`` on the clock it shares with the
    simulator (looptime's, in steps of 1 µs).  With end = 25.541 that is 37.541, and
    37.541 - 25.541 = 11.999999999999996 in floating point: the simulator must not count
    a gap of exactly 12 s (SPEC: "12 seconds or more") as a violation."""
    from tests.carriers.simkit import bind, collect_timed, sm

    loop = asyncio.get_running_loop()
    async with simulator("au", dlr_delay_ms=500) as sim:
        esme = await bind(sim)
        try:
            await elapse(25.041 - loop.time())
            await esme.request(sm("819011112222"), timeout=5)
            ((end, _receipt),) = await collect_timed(esme, 1)
            assert end == 25.541
            await elapse(end + 12.0 - loop.time())
            assert loop.time() - end >= 12.0 - 1e-9
            await esme.request(sm("819011112222"), timeout=5)
            await collect_timed(esme, 1)
        finally:
            await esme.close()
    assert sim.stats()["violations"] == 0, f"gap {sim.submit_times('819011112222')[1] - end!r} counted as a violation"


@pytest.mark.looptime
async def test_pacing_persistence_does_not_rewrite_every_number_at_every_release(tmp_path: Path) -> None:
    """The pacing clock is saved "once a second" (Engine._tick); the tick also runs at every
    paced number's release time, and each run writes the whole pacer (every number in
    its wait).  With n numbers released at n different moments that is n² rows per
    round — at the issue's 100k au numbers, 10¹⁰.  Bound: about one full snapshot per
    second of run time."""
    numbers, rounds, rate = 300, 3, 100.0
    loop = asyncio.get_running_loop()
    async with simulator("au", dlr_delay_ms=500) as sim:
        cfg = config(tmp_path, {"au": sim}, carriers={"au": {"rate": rate}})
        async with running(cfg) as (engine, log):
            written = [0]
            original = engine.store.save_pacing

            def save_pacing(entries: list) -> None:  # type: ignore[type-arg]
                written[0] += len(entries)
                original(entries)

            engine.store.save_pacing = save_pacing  # type: ignore[method-assign]
            requests = [SubmitRequest(account="demo", to=_au(i), text=f"{r}", carrier="au") for r in range(rounds) for i in range(numbers)]
            results = await settle(engine.submit_many(requests))
            await log.wait_finals([r.id for r in results], timeout=600)  # type: ignore[union-attr]
            seconds = loop.time()
    assert sim.stats()["accepted"] == numbers * rounds
    bound = (seconds + 5) * numbers + 4 * numbers * rounds  # one snapshot a second, plus a few rows per message
    assert written[0] <= bound, f"{written[0]} pacing rows written in {seconds:.0f} s for {numbers} numbers (bound {bound:.0f})"
