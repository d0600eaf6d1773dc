"""Issue acceptance 4: a message's life through the engine, against the simulators over TCP.

Validity, send_at, cancel, idempotent client_ref, backpressure, suppression,
accept-time errors, carrier determination from a lookup file, MO messages,
``status()`` history, and fate unknown (the SMSC killed mid-window).
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from engine.api import MoEvent, SubmitError, SubmitRequest
from tests.vtime import elapse

from ._kit import SENDERS, WALL0, config, make_engine, running, settle, simulator


def _req(i: int, carrier: str | None = "docomo", **kw: Any) -> SubmitRequest:
    prefix = "090" if carrier == "au" else "070"
    return SubmitRequest(account="demo", to=f"{prefix}{i:08d}", text=kw.pop("text", f"message {i}"), carrier=carrier, **kw)


def _wire(req: SubmitRequest) -> str:
    return "81" + req.to[1:]


async def _ids(engine: Any, requests: list[SubmitRequest]) -> list[str]:
    results = await settle(engine.submit_many(requests))
    for r in results:
        assert not isinstance(r, Exception), r
    return [r.id for r in results]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- validity ---------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_validity_expires_messages_behind_a_paced_au_number(tmp_path: Path) -> None:
    async with simulator("au", dlr_delay_ms=500) as sim:
        cfg = config(tmp_path, {"au": sim})
        async with running(cfg) as (engine, log):
            first = _req(1, "au")
            ids = await _ids(engine, [first, _req(1, "au", validity=5, text="short-lived"), _req(1, "au", validity=5, text="too")])
            await log.wait_finals(ids, timeout=60)
            views = [await settle(engine.status(i)) for i in ids]
    assert [log.finals[i].status for i in ids] == ["delivered", "expired", "expired"]
    assert [v.status for v in views] == ["delivered", "expired", "expired"]  # type: ignore[union-attr]
    assert all(log.finals[i].billable_units == 0 and log.finals[i].submitted_at is None for i in ids[1:])
    assert sim.stats()["accepted"] == 1  # the simulator never saw the expired ones
    assert len(sim.submit_times(_wire(first))) == 1


@pytest.mark.looptime
async def test_an_expired_unsent_message_does_not_pace_its_number(tmp_path: Path) -> None:
    """m1 is sent at 0 and ends at 0.5; m2 (validity 5 s) waits behind it and expires unsent;
    m3 may go at 12.5 s — m2 never reached the carrier, so it cannot end anything there."""
    async with simulator("au", dlr_delay_ms=500) as sim:
        cfg = config(tmp_path, {"au": sim})
        async with running(cfg) as (engine, log):
            m1 = _req(1, "au")
            ids = await _ids(engine, [m1, _req(1, "au", validity=5), _req(1, "au")])
            await log.wait_finals(ids, timeout=120)
    assert [log.finals[i].status for i in ids] == ["delivered", "expired", "delivered"]
    times = sim.submit_times(_wire(m1))
    assert len(times) == 2
    assert times[1] - times[0] == pytest.approx(12.5, abs=1.0), f"m3 went {times[1] - times[0]:.2f} s after m1"


@pytest.mark.looptime
async def test_validity_expires_messages_behind_a_slow_rate(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=200) as sim:
        cfg = config(tmp_path, {"docomo": sim}, carriers={"docomo": {"rate": 1.0}})
        async with running(cfg) as (engine, log):
            requests = [_req(i, validity=3.5) for i in range(10)]
            ids = await _ids(engine, requests)
            await log.wait_finals(ids, timeout=60)
    statuses = [log.finals[i].status for i in ids]
    # one submit a second: those at 0, 1, 2 and 3 s went; the rest passed their validity queued
    assert statuses == ["delivered"] * 4 + ["expired"] * 6
    assert sim.stats()["accepted"] == 4
    assert all(not sim.submit_times(_wire(r)) for r in requests[4:])
    assert all(log.finals[i].done_at - WALL0 <= 5.0 for i in ids[4:])  # type: ignore[operator]


@pytest.mark.looptime
async def test_default_validity_applies(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=200) as sim:
        cfg = config(tmp_path, {"docomo": sim}, carriers={"docomo": {"rate": 1.0}}, engine={"default_validity_s": 1.5})
        async with running(cfg) as (engine, log):
            ids = await _ids(engine, [_req(i) for i in range(5)])
            await log.wait_finals(ids, timeout=60)
    assert [log.finals[i].status for i in ids] == ["delivered"] * 2 + ["expired"] * 3


# --- send_at ----------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_send_at_is_not_sent_before_and_is_sent_after(tmp_path: Path) -> None:
    loop = asyncio.get_running_loop()
    async with simulator("docomo", dlr_delay_ms=200) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            later, past = _req(1, send_at=WALL0 + 30.0), _req(2, send_at=WALL0 - 100.0)
            results = await settle(engine.submit_many([later, past]))
            assert [r.status for r in results] == ["accepted", "queued"]  # type: ignore[union-attr]
            ids = [r.id for r in results]  # type: ignore[union-attr]
            await log.wait_finals([ids[1]], timeout=5)
            await elapse(29.0 - loop.time())
            assert not sim.submit_times(_wire(later))
            assert ids[0] not in log.submitted
            await log.wait_finals(ids, timeout=60)
    (sent,) = sim.submit_times(_wire(later))
    assert 30.0 <= sent <= 31.1  # the engine's once-a-second timer moves it
    assert log.finals[ids[0]].status == "delivered"
    assert sim.submit_times(_wire(past))[0] < 1.0


# --- cancel -------------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_cancel_before_and_after_submit(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=200) as sim, simulator("au", dlr_delay_ms=200) as au:
        cfg = config(tmp_path, {"docomo": sim, "au": au}, carriers={"docomo": {"rate": 1.0}})
        async with running(cfg) as (engine, log):
            requests = [_req(i) for i in range(5)]
            ids = await _ids(engine, requests)
            (scheduled,) = await _ids(engine, [_req(9, send_at=WALL0 + 10)])
            paced = await _ids(engine, [_req(7, "au"), _req(7, "au")])  # the second waits at the au pacing gate
            await elapse(0.5)
            assert await settle(engine.cancel(ids[4])) is True
            assert await settle(engine.cancel(ids[4])) is False  # already cancelled
            assert await settle(engine.cancel(scheduled)) is True
            assert await settle(engine.cancel(paced[1])) is True
            assert await settle(engine.cancel(ids[0])) is False  # sent already
            assert await settle(engine.cancel("0" * 16)) is False  # unknown
            assert await settle(engine.cancel("not-an-id")) is False
            await log.wait_finals(ids + [scheduled] + paced, timeout=60)
            await elapse(15)  # past send_at and the pacing interval
            assert await settle(engine.cancel(ids[1])) is False  # delivered
            views = {i: await settle(engine.status(i)) for i in (ids[4], scheduled, paced[1])}
    assert [log.finals[i].status for i in ids] == ["delivered"] * 4 + ["cancelled"]
    assert log.finals[scheduled].status == "cancelled"
    assert [log.finals[i].status for i in paced] == ["delivered", "cancelled"]
    assert {v.status for v in views.values()} == {"cancelled"}  # type: ignore[union-attr]
    assert not sim.submit_times(_wire(requests[4]))
    assert not sim.submit_times("8170" + "00000009")
    assert len(au.submit_times("8190" + "00000007")) == 1
    assert sim.stats()["accepted"] == 4
    assert engine.stats()["backlog"] == 0


# --- idempotency --------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_client_ref_is_idempotent(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=200) as sim:
        accounts = {"demo": {"senders": SENDERS}, "other": {"senders": SENDERS}}
        cfg = config(tmp_path, {"docomo": sim}, accounts=accounts)
        async with running(cfg) as (engine, log):
            first = await settle(engine.submit(_req(1, client_ref="order-42")))
            again = await settle(engine.submit(_req(1, client_ref="order-42")))
            # twice in one batch, and the same key on another account (a different message)
            batch = await settle(engine.submit_many([_req(2, client_ref="b"), _req(2, client_ref="b")]))
            other = await settle(engine.submit(SubmitRequest(account="other", to="07000000001", text="x", carrier="docomo", client_ref="order-42")))
            await log.wait_finals({first.id, batch[0].id, other.id}, timeout=30)  # type: ignore[union-attr]
            late = await settle(engine.submit(_req(1, client_ref="order-42")))
            await elapse(2)
    assert (first.duplicate, again.duplicate, late.duplicate) == (False, True, True)
    assert first.id == again.id == late.id
    assert late.status == "delivered"  # finished before the retry: the stored status
    assert batch[0].id == batch[1].id and batch[1].duplicate and not batch[0].duplicate  # type: ignore[union-attr]
    assert other.id != first.id and not other.duplicate
    assert len(sim.submit_times(_wire(_req(1)))) == 2  # order-42 on demo once, on other once
    assert len(sim.submit_times(_wire(_req(2)))) == 1
    assert sim.stats()["accepted"] == 3


# --- backpressure and suppression ---------------------------------------------------------------------


@pytest.mark.looptime
async def test_backpressure_refuses_with_a_temporary_error(tmp_path: Path) -> None:
    # nothing listens at the carrier's address: whatever is accepted stays in the backlog
    cfg = config(tmp_path, {"docomo": _free_port()}, engine={"backlog_limit": 5})
    async with running(cfg) as (engine, _log):
        await _ids(engine, [_req(i) for i in range(5)])
        with pytest.raises(SubmitError) as info:
            await settle(engine.submit(_req(6)))
        results = await settle(engine.submit_many([_req(7), _req(8)]))
        stats = engine.stats()
    assert info.value.reason == "backlog_full" and info.value.temporary is True
    assert all(isinstance(r, SubmitError) and r.reason == "backlog_full" and r.temporary for r in results)
    assert stats["backlog"] == 5


@pytest.mark.looptime
async def test_an_events_iterator_ends_when_the_engine_closes(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=100) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        engine = make_engine(cfg)
        await settle(engine.start())
        seen: list[str] = []

        async def read() -> None:
            async for event in engine.events():
                seen.append(event.status)  # type: ignore[union-attr]

        reader = asyncio.create_task(read())
        (mid,) = await _ids(engine, [_req(1)])
        await settle(engine.close())
        await asyncio.wait_for(reader, timeout=5)  # ends by itself; a hang fails here
    assert "submitted" in seen or seen == [], seen


@pytest.mark.looptime
async def test_backpressure_accepts_what_fits_and_knows_its_duplicates(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"docomo": _free_port()}, engine={"backlog_limit": 5})
    async with running(cfg) as (engine, _log):
        first = await settle(engine.submit_many([_req(i, client_ref=f"r{i}") for i in range(3)]))
        results = await settle(engine.submit_many([_req(i, client_ref=f"r{i}") for i in range(3, 7)]))
        # the backlog is full now: a retry of an accepted message is still its duplicate
        retry = await settle(engine.submit(_req(0, client_ref="r0")))
    assert [type(r).__name__ for r in results] == ["Accepted", "Accepted", "SubmitError", "SubmitError"]
    assert all(r.reason == "backlog_full" for r in results[2:])  # type: ignore[union-attr]
    assert retry.duplicate and retry.id == first[0].id  # type: ignore[union-attr]


@pytest.mark.looptime
async def test_backlog_frees_as_messages_are_submitted(tmp_path: Path) -> None:
    # a message leaves the backlog when the carrier accepted it: responses take 1 s here
    async with simulator("docomo", dlr_delay_ms=200, response_delay_ms=1000) as sim:
        cfg = config(tmp_path, {"docomo": sim}, engine={"backlog_limit": 5}, carriers={"docomo": {"rate": 2.0}})
        async with running(cfg) as (engine, log):
            await _ids(engine, [_req(i) for i in range(5)])
            with pytest.raises(SubmitError):
                await settle(engine.submit(_req(6)))
            await elapse(2.2 - asyncio.get_running_loop().time())  # answered at 1.0, 1.5, 2.0
            assert engine.stats()["backlog"] == 2
            more = await _ids(engine, [_req(10), _req(11)])
            await log.wait_finals(more, timeout=30)
    assert sim.stats()["accepted"] == 7


@pytest.mark.looptime
async def test_suppression_after_an_invalid_destination(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=200, reject_rate=1.0, reject_status=0x0B) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            (mid,) = await _ids(engine, [_req(1)])
            await log.wait_finals([mid], timeout=30)
            with pytest.raises(SubmitError) as info:
                await settle(engine.submit(_req(1, text="again")))
            with pytest.raises(SubmitError):
                await settle(engine.submit(SubmitRequest(account="demo", to="+8170-0000-0001", text="same number", carrier="docomo")))
            view = await settle(engine.status(mid))
            suppressed = await settle(engine.store.suppressed())
    event = log.finals[mid]
    assert event.status == "rejected" and event.billable_units == 0
    assert event.error is not None and event.error.get("smpp_status") == 0x0B
    assert view is not None and view.status == "rejected"
    assert info.value.reason == "suppressed" and info.value.temporary is False
    assert [s[0] for s in suppressed] == ["+817000000001"]
    assert sim.stats()["submit_sm"] == 1  # the later ones never reached the carrier


@pytest.mark.looptime
async def test_suppression_is_listed_and_removed_through_the_engine(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=200, reject_rate=1.0, reject_status=0x0B) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            (mid,) = await _ids(engine, [_req(1, client_ref="once")])
            await log.wait_finals([mid], timeout=30)
            listed = await settle(engine.suppressed())
            # a retry of the accepted message is its duplicate, not "suppressed"
            retry = await settle(engine.submit(_req(1, client_ref="once")))
            sim.update(reject_rate=0.0)
            removed = await settle(engine.unsuppress("070-0000-0001"))
            removed_again = await settle(engine.unsuppress("+817000000001"))
            (again,) = await _ids(engine, [_req(1, text="after removal")])
            await log.wait_finals([again], timeout=30)
            after = await settle(engine.suppressed())
    assert [(e["number"], e["carrier"], e["reason"]) for e in listed] == [("+817000000001", "docomo", "ESME_RINVDSTADR")]
    assert retry.duplicate and retry.status == "rejected"
    assert removed is True and removed_again is False and after == []
    assert log.finals[again].status == "delivered"


@pytest.mark.looptime
async def test_suppression_survives_a_restart(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=200, reject_rate=1.0, reject_status=0x0B) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            (mid,) = await _ids(engine, [_req(1)])
            await log.wait_finals([mid], timeout=30)
        await elapse(1)
        async with running(cfg) as (engine, log):
            assert [s[0] for s in await settle(engine.store.suppressed())] == ["+817000000001"]
            with pytest.raises(SubmitError) as info:
                await settle(engine.submit(_req(1, text="after the restart")))
    assert info.value.reason == "suppressed"


# --- accept-time errors ------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_accept_time_errors(tmp_path: Path) -> None:
    async with simulator("au") as au, simulator("docomo") as docomo:
        accounts = {"demo": {"senders": {"au": ["0120000001"], "docomo": ["0120000002", "0120000003"]}}}
        cfg = config(tmp_path, {"au": au, "docomo": docomo}, accounts=accounts)
        async with running(cfg) as (engine, _log):
            cases = {
                "bad number": (SubmitRequest(account="demo", to="12345", text="x", carrier="au"), "to", None),
                "landline": (SubmitRequest(account="demo", to="03-1234-5678", text="x", carrier="au"), "to", "not_mobile"),
                "unknown account": (SubmitRequest(account="nobody", to="09011112222", text="x", carrier="au"), "account", "unknown_account"),
                "unknown carrier": (SubmitRequest(account="demo", to="09011112222", text="x", carrier="kddi"), "carrier", "unknown_carrier"),
                "carrier not configured": (SubmitRequest(account="demo", to="09011112222", text="x", carrier="rakuten"), "carrier", None),
                "no lookup": (SubmitRequest(account="demo", to="09011112222", text="x"), "carrier", "unresolvable_carrier"),
                "sender": (SubmitRequest(account="demo", to="09011112222", text="x", carrier="au", sender="0120999999"), "sender", "sender_not_registered"),
                "sender of another carrier": (SubmitRequest(account="demo", to="09011112222", text="x", carrier="au", sender="0120000002"), "sender", "sender_not_registered"),
                "too long": (SubmitRequest(account="demo", to="09011112222", text="あ" * 671, carrier="au"), "text", "too_long"),
                "empty": (SubmitRequest(account="demo", to="09011112222", text="", carrier="au"), "text", "empty"),
                "priority": (SubmitRequest(account="demo", to="09011112222", text="x", carrier="au", priority="urgent"), "priority", None),
                "validity": (SubmitRequest(account="demo", to="09011112222", text="x", carrier="au", validity=0), "validity", None),
            }
            good = SubmitRequest(account="demo", to="090-1111-2222", text="fine", carrier="au")
            requests = [good] + [c[0] for c in cases.values()] + [SubmitRequest(account="demo", to="07011112222", text="x", carrier="docomo", sender="0120000003")]
            results = await settle(engine.submit_many(requests))
            with pytest.raises(SubmitError) as single:
                await settle(engine.submit(cases["too long"][0]))
            stats = engine.stats()
    assert not isinstance(results[0], SubmitError) and results[0].to == "+819011112222"
    assert not isinstance(results[-1], SubmitError)  # the account's second docomo sender
    for (name, (_req_, field, reason)), result in zip(cases.items(), results[1:-1]):
        assert isinstance(result, SubmitError), name
        assert result.field == field, (name, result)
        if reason is not None:
            assert result.reason == reason, (name, result)
        assert result.temporary is False, name
    err = single.value
    assert err.reason == "too_long"
    assert (err.extra.get("limit"), err.extra.get("count")) == (670, 671)
    assert "au" in err.detail and "670" in err.detail and "671" in err.detail
    assert stats["counters"].get("accepted") == 2


# --- carrier determination -------------------------------------------------------------------------


@pytest.mark.looptime
async def test_carrier_from_a_lookup_file(tmp_path: Path) -> None:
    table = tmp_path / "portability.csv"
    # ported numbers: the prefix says nothing (an 090 at docomo, an 080 at au)
    table.write_text("number,carrier\n090-1111-0001,docomo\n08011110002,au\n+817011110003,softbank\n", encoding="utf-8")
    async with simulator("au") as au, simulator("docomo", partial_failure_rate=0.0) as docomo, simulator("softbank") as softbank:
        sims = {"au": au, "docomo": docomo, "softbank": softbank}
        cfg = config(tmp_path, sims, lookup={"file": str(table)})
        async with running(cfg) as (engine, log):
            results = await settle(engine.submit_many([
                SubmitRequest(account="demo", to=n, text="hello")
                for n in ("09011110001", "080-1111-0002", "07011110003", "09099990000")
            ]))
            ok = [r for r in results if not isinstance(r, SubmitError)]
            await log.wait_finals([r.id for r in ok], timeout=30)
    assert [getattr(r, "carrier", None) for r in results[:3]] == ["docomo", "au", "softbank"]
    assert isinstance(results[3], SubmitError) and results[3].reason == "unresolvable_carrier"
    assert len(docomo.submit_times("819011110001")) == 1
    assert len(au.submit_times("818011110002")) == 1
    assert len(softbank.submit_times("817011110003")) == 1
    assert {log.finals[r.id].status for r in ok} == {"delivered"}


@pytest.mark.looptime
async def test_lookup_prefix_fallback_is_used_only_when_configured(tmp_path: Path) -> None:
    table = tmp_path / "portability.csv"
    table.write_text("09011110001,docomo\n", encoding="utf-8")
    async with simulator("au") as au, simulator("docomo", partial_failure_rate=0.0) as docomo:
        lookup = {"file": str(table), "prefix_fallback": True, "prefixes": {"090": "au"}}
        cfg = config(tmp_path, {"au": au, "docomo": docomo}, lookup=lookup)
        async with running(cfg) as (engine, _log):
            results = await settle(engine.submit_many([
                SubmitRequest(account="demo", to=n, text="hello") for n in ("09011110001", "09022220002", "07033330003")
            ]))
    assert [getattr(r, "carrier", None) for r in results[:2]] == ["docomo", "au"]  # the table wins over the prefix
    assert isinstance(results[2], SubmitError) and results[2].reason == "unresolvable_carrier"


# --- MO ----------------------------------------------------------------------------------------------


@pytest.mark.looptime
@pytest.mark.parametrize("carrier", ["au", "docomo", "softbank", "rakuten"])
async def test_mo_messages_arrive_joined(tmp_path: Path, carrier: str) -> None:
    long_text = "返信ありがとうございます。" * 12 + "😀 end"  # several parts on all but softbank
    async with simulator(carrier) as sim:
        cfg = config(tmp_path, {carrier: sim})
        async with running(cfg) as (engine, log):
            await elapse(0.1)  # bound
            parts = sim.inject_mo(source="819012345678", destination="0120000001", text=long_text)
            sim.inject_mo(source="819012345679", destination="0120000001", text="はい")
            await log.wait(lambda: len(log.mo) >= 2, timeout=10)
    assert parts == (1 if carrier == "softbank" else 3)
    by_sender = {m.from_: m for m in log.mo}
    assert set(by_sender) == {"+819012345678", "+819012345679"}
    mo = by_sender["+819012345678"]
    assert isinstance(mo, MoEvent) and mo.carrier == carrier
    assert mo.text == long_text and mo.parts == parts
    assert by_sender["+819012345679"].text == "はい"
    assert mo.to == "0120000001"


@pytest.mark.looptime
@pytest.mark.parametrize("carrier", ["au", "docomo"])
async def test_mo_newlines_read_back_as_lf(tmp_path: Path, carrier: str) -> None:
    """SPEC: text read back from parts equals the original after CR LF → LF (au/docomo send CR LF)."""
    async with simulator(carrier) as sim:
        cfg = config(tmp_path, {carrier: sim})
        async with running(cfg) as (engine, log):
            await elapse(0.1)
            sim.inject_mo(source="819012345678", destination="0120000001", text="一行目\n二行目")
            await log.wait(lambda: len(log.mo) >= 1, timeout=10)
    assert log.mo[0].text == "一行目\n二行目"


# --- status history ------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_status_history(tmp_path: Path) -> None:
    async with simulator("docomo", dlr_delay_ms=700) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            ids = []
            for i in range(20):  # created at different moments
                ids += await _ids(engine, [_req(i, client_ref=f"r{i}")])
                await elapse(0.37)
            await log.wait_finals(ids, timeout=30)
            views = [await settle(engine.status(i)) for i in ids]
    for mid, view in zip(ids, views):
        assert view is not None
        assert (view.id, view.status, view.carrier, view.to, view.parts, view.billing_units, view.billable_units) == (
            mid, "delivered", "docomo", view.to, 1, 1, 1)
        assert view.client_ref and view.sender == "0120000002" and view.priority == "normal"
        times = [h["at"] for h in view.history]
        assert times == sorted(times)
        assert view.done_at - view.submitted_at == pytest.approx(0.7, abs=0.05)  # type: ignore[operator]
        assert [h["status"] for h in view.history] == ["accepted", "queued", "submitted", "delivered"], view.history


@pytest.mark.looptime
async def test_status_and_cancel_of_ids_that_do_not_exist(tmp_path: Path) -> None:
    cfg = config(tmp_path, {"docomo": _free_port()})
    async with running(cfg) as (engine, _log):
        assert await settle(engine.status("0123456789abcdef")) is None
        assert await settle(engine.status("nope")) is None
        assert await settle(engine.cancel("0123456789abcdef")) is False
        # 16 hex digits, but above the 63-bit ids the store holds
        assert await settle(engine.status("f" * 16)) is None
        assert await settle(engine.cancel("f" * 16)) is False


@pytest.mark.looptime
async def test_message_ids_stay_unique_across_a_restart_with_the_clock_stepped_back(tmp_path: Path) -> None:
    """IdGenerator: ids are "unique across restarts of one store".  The first engine accepts
    at wall time T; while it is down the host clock is stepped back (NTP) so that the next
    engine starts at T again.  Its accepts must still get new ids, not fail."""
    cfg = config(tmp_path, {"docomo": _free_port()})
    first_ids: list[str] = []
    for k in range(2):
        engine = make_engine(cfg, wallclock=lambda: WALL0 + 100.0)  # both lives read T at their accept
        await settle(engine.start())
        try:
            results = await settle(engine.submit_many([_req(10 * k + i) for i in range(3)]))
        finally:
            await settle(engine.close())
        if k == 0:
            first_ids = [r.id for r in results]  # type: ignore[union-attr]
    assert all(not isinstance(r, BaseException) for r in results), results
    assert not set(first_ids) & {r.id for r in results}  # type: ignore[union-attr]


@pytest.mark.looptime
async def test_closing_does_not_wait_for_an_answered_enquire_link(tmp_path: Path) -> None:
    """The pool drains outstanding submits on close; an enquire_link answered at once must
    not hold the close for the whole drain timeout (10 s)."""
    loop = asyncio.get_running_loop()
    async with simulator("docomo") as sim:
        cfg = config(tmp_path, {"docomo": sim}, smpp={"enquire_link_interval_s": 1.0})
        async with running(cfg) as (engine, _log):
            pool = engine.carriers["docomo"].pool
            while not any(b.conn is not None and b.conn.session.probing for b in pool.binds):
                await elapse(0.0005)  # catch the moment an enquire_link is out
            t0 = loop.time()
            await pool.close()
            elapsed = loop.time() - t0
    assert elapsed < 1.0, f"close took {elapsed:.1f} s"


# --- fate unknown -----------------------------------------------------------------------------------


@pytest.mark.looptime
@pytest.mark.parametrize("resend", [True, False])
async def test_smsc_killed_mid_window_and_restarted(tmp_path: Path, resend: bool) -> None:
    """Responses take 1 s, so when the SMSC dies at 1.5 s about 50 submits are outstanding.
    Re-sending (default): they go again to the restarted SMSC.  Not re-sending: indefinite.
    Either way every message ends final, none is lost."""
    n = 300
    knobs = {"dlr_delay_ms": 300, "response_delay_ms": 1000, "partial_failure_rate": 0.0}
    async with simulator("docomo", **knobs) as sim:
        port = sim.port
        cfg = config(
            tmp_path, {"docomo": sim}, engine={"receipt_timeout_s": 20},
            carriers={"docomo": {"rate": 50.0, "resend_fate_unknown": resend}},
        )
        async with running(cfg) as (engine, log):
            ids = await _ids(engine, [_req(i) for i in range(n)])
            await elapse(1.5)
            await sim.stop()
            first_accepted = sim.stats()["accepted"]
            await elapse(2.0)
            async with simulator("docomo", port=port, **knobs) as sim2:
                await log.wait_finals(ids, timeout=120)
                await elapse(3)
                stats = engine.stats()
    statuses = [log.finals[i].status for i in ids]
    assert len(log.finals) == n
    assert all(len(log.finals_by_id[i]) == 1 or all(e.late for e in log.finals_by_id[i][1:]) for i in ids)
    fate_unknown = stats["carriers"]["docomo"]["pool"]["counters"].get("fate_unknown", 0)
    assert fate_unknown >= 20
    both = first_accepted + sim2.stats()["accepted"]
    if resend:
        # receipts come before responses here, so those answered before the kill were delivered;
        # those outstanding went again to the restarted SMSC (duplicates: at most the outstanding ones)
        assert statuses == ["delivered"] * n
        assert stats["counters"].get("resent_fate_unknown", 0) == fate_unknown
        assert n <= both <= n + fate_unknown
    else:
        assert statuses.count("indefinite") == fate_unknown
        assert statuses.count("delivered") == n - fate_unknown
        assert both <= n  # nothing sent twice


@pytest.mark.looptime
async def test_a_message_parked_behind_a_waiting_au_number_goes_with_no_other_traffic(tmp_path: Path) -> None:
    """B is offered while A's number is in its 12 s wait (A ended already): the pacer
    parks B, and a timer must wake the pool then — nothing else would."""
    async with simulator("au", dlr_delay_ms=200) as sim:
        cfg = config(tmp_path, {"au": sim})
        async with running(cfg) as (engine, log):
            (a,) = await _ids(engine, [_req(7, "au", text="first")])
            await log.wait_finals([a], timeout=30)
            (b,) = await _ids(engine, [_req(7, "au", text="second")])
            await log.wait_finals([b], timeout=30)
    assert log.finals[b].status == "delivered"
    first, second = sim.submit_times(_wire(_req(7, "au")))
    assert second - first == pytest.approx(12.2, abs=1.0)
