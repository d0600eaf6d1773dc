"""Engine.reload: what can change while running takes effect at once, nothing is dropped;
what cannot is refused with the key and keeps its running value."""

from __future__ import annotations

import msgspec
import pytest

from engine.api import SubmitError, SubmitRequest
from engine.api.auth import Gate, new_token
from engine.ops.config import parse_config
from tests.vtime import elapse

from ._kit import SENDERS, config, running, settle, simulator


def _req(i: int, **kw) -> SubmitRequest:
    return SubmitRequest(account="demo", to=f"070{i:08d}", text=f"message {i}", carrier="docomo", **kw)


@pytest.mark.looptime
async def test_a_new_rate_and_new_senders_take_effect_and_nothing_is_dropped(tmp_path) -> None:
    async with simulator("docomo", dlr_delay_ms=100) as sim:
        cfg = config(tmp_path, {"docomo": sim}, carriers={"docomo": {"rate": 1.0}})
        async with running(cfg) as (engine, log):
            ids = [r.id for r in await settle(engine.submit_many([_req(i) for i in range(40)]))]
            await elapse(5.0)
            sent_slowly = sim.stats()["accepted"]
            assert 4 <= sent_slowly <= 7  # one a second
            faster = config(
                tmp_path, {"docomo": sim}, carriers={"docomo": {"rate": 100.0}},
                accounts={"demo": {"senders": {**SENDERS, "docomo": ["0120999999", *SENDERS["docomo"]]}}},
            )
            applied, refused = engine.reload(faster)
            assert "carriers.docomo" in applied and "accounts" in applied and refused == []
            await log.wait_finals(ids, timeout=5.0)  # 33 more at 100/s: well within 5 s
            assert all(log.finals[i].status == "delivered" for i in ids)
            new = await settle(engine.submit(_req(99, sender="0120999999")))
            await log.wait_finals([new.id], timeout=5.0)


@pytest.mark.looptime
async def test_what_cannot_change_is_refused_and_kept(tmp_path) -> None:
    async with simulator("docomo", dlr_delay_ms=100) as sim:
        cfg = config(tmp_path, {"docomo": sim})
        async with running(cfg) as (engine, log):
            other = config(tmp_path / "elsewhere", {"docomo": sim}, carriers={"docomo": {"binds": 3, "rate": 50.0}}, smpp={"window": 7})
            applied, refused = engine.reload(other)
            assert "carriers.docomo" in applied
            assert "carriers.docomo.binds: needs a restart" in refused
            assert "store: needs a restart" in refused and "smpp: needs a restart" in refused
            pool = engine.carriers["docomo"].pool
            assert pool.settings.binds == 1 and pool.settings.rate == 50.0  # the rate took, the binds kept
            assert engine.settings.store == cfg.store and engine.settings.smpp == cfg.smpp
            r = await settle(engine.submit(_req(1)))
            await log.wait_finals([r.id], timeout=5.0)
            bad = await settle(engine.submit_many([_req(2, sender="0120999999")]))
            assert isinstance(bad[0], SubmitError) and bad[0].reason == "sender_not_registered"


def test_gate_takes_new_tokens_and_keeps_unchanged_buckets() -> None:
    old_token, old_digest = new_token()
    new_token_, new_digest = new_token()
    now = [0.0]
    accounts = parse_config({"accounts": {"a": {"token_sha256": old_digest, "rate_limit": 1, "burst": 1}, "b": {"rate_limit": 1, "burst": 1}}}).accounts
    gate = Gate(accounts, clock=lambda: now[0])
    assert gate.account_for_token(old_token) == "a"
    assert gate.admit("b") == 0.0 and gate.admit("b") > 0  # b used its burst
    changed = {
        "a": msgspec.structs.replace(accounts["a"], token_sha256=new_digest, rate_limit=5.0),
        "b": accounts["b"],
    }
    gate.update(changed)
    assert gate.account_for_token(old_token) is None and gate.account_for_token(new_token_) == "a"
    assert gate.admit("b") > 0  # unchanged limits: its bucket (and what it used) stays
    assert gate.admit("a") == 0.0
