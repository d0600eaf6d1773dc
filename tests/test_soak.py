"""denpo bench soak: the reconciliation on crafted inputs (each check can fail), the
schedule, and a short soak with every fault for real — the build fails on any
lost message or failed check."""

from __future__ import annotations

import shutil

import pytest

from bench.soak import reconcile, schedule, smsc_counts, table

FLAT = [(float(t), 100.0 + (t % 3) * 0.5) for t in range(60)]  # 100–101 MB for a minute


def clean(**changes):
    """A run where everything adds up: 3 messages accepted, stored final, notified; one duplicate within the bound."""
    inputs = dict(
        accepted={"a": 0, "b": 1, "c": 2},
        stored={"a": "delivered", "b": "indefinite", "c": "delivered"},
        notified={"a": "delivered", "b": "indefinite", "c": "delivered"},
        renotified={},
        outbox=set(),
        smsc={"81900": 1, "81901": 2, "81902": 1},
        crashes=[("engine", 4)],
        rss={"serve_1": FLAT},
        warmup=10.0,
    )
    inputs.update(changes)
    return reconcile(**inputs)


def test_a_clean_run_passes():
    figures = clean()
    assert figures["failures"] == []
    assert (figures["accepted"], figures["final"], figures["lost"]) == (3, 3, 0)
    assert (figures["duplicates"], figures["duplicate_bound"]) == (1, 4)
    assert figures["final_statuses"] == {"delivered": 2, "indefinite": 1}
    assert figures["rss_start_mb"] == FLAT[10][1] and figures["rss_end_mb"] == FLAT[-1][1]
    assert table(figures).splitlines()[-1].split() == ["failures", "none"]


def test_a_message_missing_from_the_store_or_not_final_is_lost():
    figures = clean(stored={"a": "delivered", "b": "submitted"}, notified={"a": "delivered"})
    assert figures["lost"] == 2 and figures["missing"] == 1 and figures["stuck"] == 1
    assert set(figures["lost_ids"]) == {"b", "c"}
    assert figures["failures"] == ["lost"]


def test_a_stored_message_never_answered_must_be_final_too():
    figures = clean(stored={"a": "delivered", "b": "indefinite", "c": "delivered", "d": "queued"})
    assert figures["lost"] == 0 and figures["stored_unanswered"] == 1
    assert figures["failures"] == ["stuck_unanswered"]


def test_a_final_status_not_notified_fails_unless_it_waits_in_the_outbox():
    figures = clean(notified={"a": "delivered", "b": "indefinite"})
    assert figures["unnotified"] == 1 and figures["unnotified_ids"] == ["c"]
    assert figures["failures"] == ["unnotified"]
    assert clean(notified={"a": "delivered", "b": "indefinite"}, outbox={"c"})["failures"] == []
    # a late receipt: indefinite notified first, delivered after it (SPEC "Late receipts")
    late = clean(stored={"a": "delivered", "b": "delivered", "c": "delivered"}, renotified={"b": {"delivered"}})
    assert late["failures"] == [] and late["late_status_changes"] == 1
    assert clean(stored={"a": "delivered", "b": "delivered", "c": "delivered"})["failures"] == ["unnotified"]


def test_duplicates_over_the_in_flight_windows_fail():
    figures = clean(smsc={"81900": 3, "81901": 2, "81902": 1}, crashes=[("sim docomo", 1), ("engine", 1)])
    assert (figures["duplicates"], figures["duplicate_bound"]) == (3, 2)
    assert figures["failures"] == ["duplicates_over_bound"]


def test_rss_growth_after_the_warm_up_fails_per_lifetime():
    growing = [(float(t), 100.0 if t < 20 else 100.0 + t / 2) for t in range(60)]  # +29.5 % by the end
    warming = [(float(t), 50.0 + 5 * t if t < 10 else 100.0) for t in range(60)]  # grows only in its warm-up
    figures = clean(rss={"serve_1": warming, "serve_2": growing})
    assert figures["engine_rss"]["serve_1"]["growth_pct"] == 0.0
    assert figures["engine_rss"]["serve_2"]["growth_pct"] == 29.5
    assert figures["failures"] == ["rss_growth_serve_2"]
    assert figures["rss_start_mb"] == 100.0 and figures["rss_end_mb"] == 129.5
    short = clean(rss={"serve_1": [(0.0, 50.0), (5.0, 90.0)]})  # ended in its warm-up: nothing to judge
    assert short["failures"] == [] and short["engine_rss"]["serve_1"]["growth_pct"] is None


def test_nothing_accepted_is_a_failure():
    assert clean(accepted={}, stored={}, notified={})["failures"] == ["nothing_accepted"]


def test_smsc_counts_add_up_over_lifetimes():
    lives = [{"submit_times": {"8190": [1.0], "8191": [2.0, 3.0]}}, {"submit_times": {"8190": [9.0]}}, {}]
    assert smsc_counts(lives) == {"8190": 2, "8191": 2}


@pytest.mark.parametrize("duration", [30.0, 60.0, 180.0, 600.0])
def test_the_schedule_fits_the_duration_after_the_warm_up(duration):
    steps = schedule(duration)
    assert all(0.1 * duration < s.at < duration for s in steps)  # after a warm-up, before the load ends
    assert [s.at for s in steps] == sorted(s.at for s in steps)
    actions = [s.action for s in steps]
    for begin, end in (("kill_sim", "restart_sim"), ("throttle", "unthrottle"), ("receiver_down", "receiver_up")):
        assert actions.count(begin) == actions.count(end) >= 1
        for s in steps:
            if s.action == begin:  # every fault ends, on the same target, before the load does
                assert any(e.action == end and e.target == s.target and e.at > s.at for e in steps)
    assert actions.count("kill_engine") == 1


@pytest.mark.slow
async def test_a_short_soak_loses_nothing():
    """60 s at 400 messages/s with every fault; about 90 s of wall time."""
    from bench.soak import run

    figures = await run(duration=60.0, rate=400.0)
    if figures.get("kept"):  # the folder a failed check keeps, for a person to look into
        print(f"kept: {figures['kept']}")
    print(table(figures))
    assert figures["lost"] == 0, figures["lost_ids"]
    # Every check but RSS flatness: a lifetime of 30 s is well inside the engine's 600 s
    # receipt linger, which holds each finished message (bench/RESULTS.md, "Soak with
    # faults"), so its RSS climbs by design here; `denpo bench soak` judges it, and
    # test_rss_growth_after_the_warm_up_fails_per_lifetime shows the check works.
    judged = [f for f in figures["failures"] if not f.startswith("rss_growth_")]
    assert judged == [], (judged, figures.get("kept"))
    assert figures["accepted"] >= 0.5 * 60 * 400  # load there was (a loaded CI machine may offer less)
    assert (figures["sim_kills"], figures["sim_throttles"], figures["receiver_outages"], figures["engine_kills"]) == (2, 1, 1, 1)
    assert figures["duplicates"] <= figures["duplicate_bound"]
    for key in ("accepted", "final", "lost", "duplicates", "duplicate_bound", "rss_start_mb", "rss_end_mb", "rss_mb", "cpu_s"):
        assert key in figures
    assert {"serve_1", "serve_2", "client", "receiver"} <= set(figures["rss_mb"])
    if figures.get("kept"):  # kept for the RSS check alone: no litter in /tmp per test run
        shutil.rmtree(figures["kept"], ignore_errors=True)
