"""``GET /metrics`` (Prometheus) and ``GET /readyz``: what an operator watches.

Nothing here runs per message.  :class:`EngineCollector` reads the figures the
engine already keeps (:meth:`Engine.stats`, ``engine.notifier.stats()``) at
scrape time and turns them into Prometheus families; the latency histograms
are the engine's own :class:`~engine.flow.backoff.Histogram` objects, exported
bucket for bucket.  A family whose figures are missing from ``stats()`` (an
older or newer engine) is left out, never an error: a scrape must not fail
because one section moved.

Names (all prefixed ``denpo_``; counters end in ``_total``; times in seconds):

* engine: ``backlog_messages``, ``live_messages``, ``awaiting_receipt_messages``,
  ``scheduled_messages``, ``messages_accepted_total``, ``messages_final_total{status}``,
  ``receipts_total``, ``engine_events_total{event}``;
* store: ``store_commit_seconds`` (summary: commits and their time),
  ``store_committed_writes_total``, ``store_last_commit_seconds``, ``store_queued_ops``;
* correlator: ``correlator_entries{kind}``, ``correlator_events_total{event}``;
* per carrier (``carrier``): ``carrier_binds``, ``carrier_binds_up``,
  ``carrier_submitted_total``, ``carrier_responses_total{status}`` (SMPP
  command_status names), ``carrier_throttles_total``, ``carrier_rate_cuts_total``,
  ``carrier_submit_events_total{event}``, ``carrier_window_outstanding``,
  ``carrier_window_capacity``, ``carrier_queued_retries``, ``carrier_in_memory_messages``,
  ``carrier_rate_limit`` (configured, +Inf when none), ``carrier_effective_rate_limit``
  (after throttle feedback), ``carrier_achieved_rate`` (submits/s);
* pacing (carriers with per-number pacing): ``pacing_deferrals_total``,
  ``pacing_table_numbers``, ``pacing_parked_messages``, ``pacing_waiting_numbers``,
  ``pacing_events_total{event}``;
* per bind (``carrier``, ``bind``, ``kind``): ``bind_up``, ``bind_state{state}``,
  ``bind_submitted_total``, ``bind_reconnects_total``, ``bind_events_total{event}``,
  ``bind_window_outstanding``, ``bind_window_capacity``;
* histograms: ``submit_response_seconds{carrier,bind}`` (submit → response),
  ``notification_seconds`` (a notification POST's round trip);
* notifications: ``notifications_total{outcome}`` (sent, retry, dead, …),
  ``notifications_held{state}`` (pending, queued, retrying, in_flight);
* HTTP: ``http_draining``; and the process (``process_*``: CPU, memory, fds).

``/readyz`` (:func:`readiness`): 200 while the store commits and HTTP serves;
the body lists every carrier's binds.  Neither endpoint needs a token: they
are for the operator's network (bind HTTP to it, or filter them at the proxy).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.exposition import choose_encoder
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry

__all__ = ["EngineCollector", "Metrics", "readiness", "BIND_STATES"]

log = logging.getLogger("denpo.metrics")

BIND_STATES = ("down", "connecting", "binding", "up", "closed")
_INF = math.inf


def _num(value: Any, default: float | None = 0.0) -> float | None:
    if value is None:
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _histogram(family: HistogramMetricFamily, labels: list[str], data: Mapping[str, Any] | None) -> None:
    """One :meth:`Histogram.as_dict` (cumulative buckets keyed by their bound) into ``family``."""
    if not data or "buckets" not in data:
        return
    buckets = [(str(le), float(n)) for le, n in data["buckets"].items()]
    if not buckets or buckets[-1][0] != "+Inf":
        buckets.append(("+Inf", float(data.get("count", 0))))
    family.add_metric(labels, buckets, float(data.get("sum", 0.0)))


class EngineCollector(Collector):
    """Reads an engine's ``stats()`` at scrape time (and an HttpApi's draining flag)."""

    def __init__(self, engine: Any, api: Any = None) -> None:
        self.engine = engine
        self.api = api

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to collect at registration

    def collect(self) -> Iterator[Metric]:
        try:
            stats = self.engine.stats()
        except Exception:  # noqa: BLE001 - the engine's own families are left out, the rest still served
            log.exception("engine.stats() failed during a scrape")
            stats = {}
        for section in (self._engine, self._store, self._correlator, self._carriers, self._notifications, self._http):
            try:
                yield from section(stats)
            except Exception:  # noqa: BLE001 - one section that moved must not fail the scrape
                log.exception("metrics: %s failed", section.__name__)

    # --- sections -------------------------------------------------------------------------

    def _engine(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        for key, name, text in (
            ("backlog", "denpo_backlog_messages", "Messages accepted and not yet submitted (memory and store)"),
            ("live", "denpo_live_messages", "Messages the engine is working on"),
            ("awaiting_receipts", "denpo_awaiting_receipt_messages", "Submitted messages waiting for their receipts"),
            ("scheduled", "denpo_scheduled_messages", "Messages waiting for their send_at"),
        ):
            if key in stats:
                yield GaugeMetricFamily(name, text, value=_num(stats[key]))
        if "backlog_by_priority" in stats:
            by = GaugeMetricFamily("denpo_backlog_priority_messages", "Backlog by priority", labels=["priority"])
            for priority, n in sorted(stats["backlog_by_priority"].items()):
                by.add_metric([priority], _num(n))
            yield by
        if "loop_lag" in stats:
            yield GaugeMetricFamily("denpo_loop_lag_max_seconds", "Longest an event-loop timer ran late", value=(_num(stats["loop_lag"].get("max_ms")) or 0.0) / 1000)
            lag = HistogramMetricFamily("denpo_loop_lag_seconds", "How late the event loop ran a 0.1 s timer")
            _histogram(lag, [], stats["loop_lag"].get("histogram"))
            yield lag
        counters: Mapping[str, Any] = stats.get("counters") or {}
        if not stats:
            return
        yield CounterMetricFamily("denpo_messages_accepted", "Messages accepted (durably stored)", value=_num(counters.get("accepted")))
        yield CounterMetricFamily("denpo_receipts", "Delivery receipts matched to a message", value=_num(counters.get("receipts")))
        final = CounterMetricFamily("denpo_messages_final", "Messages that reached a final status", labels=["status"])
        other = CounterMetricFamily("denpo_engine_events", "Other engine counters", labels=["event"])
        for key, value in sorted(counters.items()):
            if key.startswith("final_"):
                final.add_metric([key[len("final_") :]], _num(value))
            elif key not in ("accepted", "receipts"):
                other.add_metric([key], _num(value))
        yield final
        yield other

    def _store(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        store = stats.get("store")
        if not store:
            return
        yield SummaryMetricFamily(
            "denpo_store_commit_seconds", "Store commits (count) and the time they took (sum)",
            count_value=_num(store.get("commits")), sum_value=_num(store.get("commit_seconds_total")),
        )
        yield CounterMetricFamily("denpo_store_committed_writes", "Writes committed to the store", value=_num(store.get("committed_writes")))
        yield GaugeMetricFamily("denpo_store_last_commit_seconds", "How long the last commit took", value=(_num(store.get("last_commit_ms")) or 0.0) / 1000)
        yield GaugeMetricFamily("denpo_store_queued_ops", "Writes queued for the store, not yet committed", value=_num(store.get("queued_ops")))

    def _correlator(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        corr = stats.get("correlator")
        if not corr:
            return
        entries = GaugeMetricFamily("denpo_correlator_entries", "Receipt correlator tables", labels=["kind"])
        events = CounterMetricFamily("denpo_correlator_events", "Receipt correlator counters", labels=["event"])
        for key, value in sorted(corr.items()):
            if key in ("registered", "lingering", "pending", "orphan_ring"):
                entries.add_metric([key], _num(value))
            else:
                events.add_metric([key], _num(value))
        yield entries
        yield events

    def _carriers(self, stats: Mapping[str, Any]) -> Iterator[Metric]:
        carriers: Mapping[str, Any] = stats.get("carriers") or {}
        if not carriers:
            return
        f = {
            "binds": GaugeMetricFamily("denpo_carrier_binds", "Binds configured", labels=["carrier"]),
            "binds_up": GaugeMetricFamily("denpo_carrier_binds_up", "Binds up (bound)", labels=["carrier"]),
            "submitted": CounterMetricFamily("denpo_carrier_submitted", "submit_sm PDUs sent", labels=["carrier"]),
            "responses": CounterMetricFamily("denpo_carrier_responses", "submit_sm responses by command_status", labels=["carrier", "status"]),
            "throttles": CounterMetricFamily("denpo_carrier_throttles", "Throttle responses (ESME_RTHROTTLED and the like)", labels=["carrier"]),
            "rate_cuts": CounterMetricFamily("denpo_carrier_rate_cuts", "Rate decreases after throttling", labels=["carrier"]),
            "events": CounterMetricFamily("denpo_carrier_submit_events", "Other pool counters (failed, retried, fate_unknown, …)", labels=["carrier", "event"]),
            "outstanding": GaugeMetricFamily("denpo_carrier_window_outstanding", "Submits awaiting their response", labels=["carrier"]),
            "capacity": GaugeMetricFamily("denpo_carrier_window_capacity", "Window size summed over sending binds", labels=["carrier"]),
            "retries": GaugeMetricFamily("denpo_carrier_queued_retries", "Submits queued for a retry", labels=["carrier"]),
            "in_memory": GaugeMetricFamily("denpo_carrier_in_memory_messages", "Backlog held in memory for the carrier", labels=["carrier"]),
            "rate": GaugeMetricFamily("denpo_carrier_rate_limit", "Configured submit rate per second (+Inf: none)", labels=["carrier"]),
            "effective": GaugeMetricFamily("denpo_carrier_effective_rate_limit", "Submit rate per second after throttle feedback (+Inf: none)", labels=["carrier"]),
            "achieved": GaugeMetricFamily("denpo_carrier_achieved_rate", "Submits per second achieved recently", labels=["carrier"]),
            "deferrals": CounterMetricFamily("denpo_pacing_deferrals", "Messages held back by per-number pacing", labels=["carrier"]),
            "table": GaugeMetricFamily("denpo_pacing_table_numbers", "Numbers in the pacing table", labels=["carrier"]),
            "parked": GaugeMetricFamily("denpo_pacing_parked_messages", "Messages parked behind a paced number now", labels=["carrier"]),
            "waiting": GaugeMetricFamily("denpo_pacing_waiting_numbers", "Numbers with parked messages now", labels=["carrier"]),
            "pacing": CounterMetricFamily("denpo_pacing_events", "Other pacing counters", labels=["carrier", "event"]),
            "bind_up": GaugeMetricFamily("denpo_bind_up", "1 while the bind is bound", labels=["carrier", "bind", "kind"]),
            "bind_state": GaugeMetricFamily("denpo_bind_state", "1 for the bind's current state", labels=["carrier", "bind", "state"]),
            "bind_submitted": CounterMetricFamily("denpo_bind_submitted", "submit_sm PDUs sent on the bind", labels=["carrier", "bind"]),
            "bind_reconnects": CounterMetricFamily("denpo_bind_reconnects", "Successful binds after the first", labels=["carrier", "bind"]),
            "bind_events": CounterMetricFamily("denpo_bind_events", "Bind counters (binds, disconnects, connect_failures, timeouts, delivered, …)", labels=["carrier", "bind", "event"]),
            "bind_outstanding": GaugeMetricFamily("denpo_bind_window_outstanding", "Submits awaiting their response on the bind", labels=["carrier", "bind"]),
            "bind_capacity": GaugeMetricFamily("denpo_bind_window_capacity", "The bind's window (0: a receiver)", labels=["carrier", "bind"]),
            "latency": HistogramMetricFamily("denpo_submit_response_seconds", "submit_sm → submit_sm_resp", labels=["carrier", "bind"]),
            "receipts": CounterMetricFamily("denpo_carrier_receipts", "Final part receipts by result", labels=["carrier", "result"]),
            "bind_responses": CounterMetricFamily("denpo_bind_responses", "submit_sm responses on the bind by command_status", labels=["carrier", "bind", "status"]),
            "to_submit": HistogramMetricFamily("denpo_accept_to_submit_seconds", "Accepted → every part with the carrier", labels=["carrier"]),
            "to_final": HistogramMetricFamily("denpo_submit_to_receipt_seconds", "Submitted → final status from the receipts", labels=["carrier"]),
        }
        for name, c in sorted(carriers.items()):
            c = c or {}
            if "in_memory" in c:
                f["in_memory"].add_metric([name], _num(c["in_memory"]))
            for result, n in sorted((c.get("receipts") or {}).items()):
                f["receipts"].add_metric([name, result], _num(n))
            _histogram(f["to_submit"], [name], c.get("accept_to_submit_s"))
            _histogram(f["to_final"], [name], c.get("submit_to_final_s"))
            pacing = c.get("pacing")
            if pacing:
                f["deferrals"].add_metric([name], _num(pacing.get("parked_total")))
                f["table"].add_metric([name], _num(pacing.get("tracked")))
                f["parked"].add_metric([name], _num(pacing.get("parked")))
                f["waiting"].add_metric([name], _num(pacing.get("numbers_waiting")))
                for key, value in sorted(pacing.items()):
                    if key not in ("parked_total", "tracked", "parked", "numbers_waiting", "in_flight", "heap", "expiry_refs"):
                        f["pacing"].add_metric([name, key], _num(value))
            pool = c.get("pool")
            if not pool:
                continue
            binds = pool.get("binds") or []
            f["binds"].add_metric([name], float(len(binds)))
            f["binds_up"].add_metric([name], _num(pool.get("binds_up")))
            counters = pool.get("counters") or {}
            f["submitted"].add_metric([name], _num(counters.get("submitted")))
            for status, n in sorted((pool.get("responses") or {}).items()):
                f["responses"].add_metric([name, status], _num(n))
            f["throttles"].add_metric([name], _num(pool.get("throttles")))
            f["rate_cuts"].add_metric([name], _num(pool.get("rate_cuts")))
            for key, value in sorted(counters.items()):
                if key not in ("submitted", "throttled"):
                    f["events"].add_metric([name, key], _num(value))
            f["outstanding"].add_metric([name], _num(pool.get("outstanding")))
            f["capacity"].add_metric([name], _num(pool.get("window_total")))
            f["retries"].add_metric([name], _num(pool.get("queued_retries")))
            configured = _num(pool.get("configured_rate"), _INF)
            f["rate"].add_metric([name], configured)  # type: ignore[arg-type]
            f["effective"].add_metric([name], _num(pool.get("effective_rate"), configured))  # type: ignore[arg-type]
            f["achieved"].add_metric([name], _num(pool.get("achieved_rate")))
            for b in binds:
                bind = str(b.get("name"))
                state = b.get("state")
                f["bind_up"].add_metric([name, bind, str(b.get("kind", ""))], 1.0 if state == "up" else 0.0)
                for s in BIND_STATES:
                    f["bind_state"].add_metric([name, bind, s], 1.0 if state == s else 0.0)
                bc = b.get("counters") or {}
                f["bind_submitted"].add_metric([name, bind], _num(bc.get("submitted")))
                for status, n in sorted((b.get("responses") or {}).items()):
                    f["bind_responses"].add_metric([name, bind, status], _num(n))
                f["bind_reconnects"].add_metric([name, bind], max(0.0, (_num(bc.get("binds")) or 0.0) - 1))
                for key, value in sorted(bc.items()):
                    if key != "submitted":
                        f["bind_events"].add_metric([name, bind, key], _num(value))
                f["bind_outstanding"].add_metric([name, bind], _num(b.get("outstanding")))
                f["bind_capacity"].add_metric([name, bind], _num(b.get("window")))
                _histogram(f["latency"], [name, bind], b.get("submit_latency_s"))
        yield from f.values()

    def _notifications(self, _stats: Mapping[str, Any]) -> Iterator[Metric]:
        notifier = getattr(self.engine, "notifier", None)
        if notifier is None:
            return
        n = notifier.stats()
        gauges = ("pending", "queued", "retrying", "in_flight")
        outcomes = CounterMetricFamily("denpo_notifications", "Notification POSTs by outcome (sent, retry, dead, …)", labels=["outcome"])
        for outcome in ("sent", "retry", "dead"):
            outcomes.add_metric([outcome], _num(n.get(outcome)))
        for key, value in sorted(n.items()):
            if key not in gauges and key not in ("sent", "retry", "dead", "latency") and isinstance(value, (int, float)):
                outcomes.add_metric([key], _num(value))
        yield outcomes
        held = GaugeMetricFamily("denpo_notifications_held", "Notifications held by the sender, by state", labels=["state"])
        for key in gauges:
            if key in n:
                held.add_metric([key], _num(n[key]))
        yield held
        latency = HistogramMetricFamily("denpo_notification_seconds", "A notification POST: request → answer")
        _histogram(latency, [], n.get("latency"))
        yield latency

    def _http(self, _stats: Mapping[str, Any]) -> Iterator[Metric]:
        if self.api is not None:
            yield GaugeMetricFamily("denpo_http_draining", "1 while shutting down (new API requests get 503)", value=1.0 if getattr(self.api, "draining", False) else 0.0)


class Metrics:
    """A registry of its own per HTTP API (several engines may share a process)."""

    def __init__(self, engine: Any, api: Any = None, *, process: bool = True) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(EngineCollector(engine, api))
        if process:
            ProcessCollector(registry=self.registry)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when ``accept`` asks) and its content type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


# --- /readyz -----------------------------------------------------------------------------


def _carrier_binds(engine: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, carrier in sorted(getattr(engine, "carriers", {}).items()):
        pool = getattr(carrier, "pool", None)
        binds = list(pool.binds) if pool is not None else []
        up = sum(1 for b in binds if getattr(b, "state", None) == "up")
        out[name] = {
            "ready": up > 0,
            "binds_up": up,
            "binds": len(binds),
            "states": [
                {
                    "name": b.name, "kind": getattr(b, "kind", None), "state": b.state,
                    **({"last_error": b.last_error} if getattr(b, "last_error", "") else {}),
                }
                for b in binds
            ],
        }
    return out


async def readiness(engine: Any, probe: "StoreProbe", *, draining: bool, carrier: str | None = None) -> tuple[int, dict[str, Any]]:
    """(HTTP status, body) of ``/readyz``: 200 while the store commits and HTTP
    serves (not draining); with ``carrier``, also 503 while it has no bind up.
    (404 for a carrier that is not configured.)"""
    carriers = _carrier_binds(engine)
    if carrier is not None and carrier not in carriers:
        return 404, {"status": "unknown_carrier", "detail": f"no carrier {carrier!r}; configured: {', '.join(carriers)}", "carriers": carriers}
    if draining:
        store = "draining"
    else:
        store = await probe.check()
    ready = store == "ok" and not draining
    body: dict[str, Any] = {"status": "ready" if ready else ("draining" if draining else "not_ready"), "store": store, "http": "ok"}
    if carrier is not None:
        body["carrier"] = carrier
        ready = ready and carriers[carrier]["ready"]
        if store == "ok" and not draining and not ready:
            body["status"] = "carrier_down"
    body["carriers"] = carriers
    return (200 if ready else 503), body


class StoreProbe:
    """Is the store writable?  A store flush (the writer thread runs one
    transaction: BEGIN IMMEDIATE … COMMIT) within ``timeout``; concurrent probes
    share one flush, so a burst of probes costs one."""

    def __init__(self, engine: Any, timeout: float = 5.0) -> None:
        self.engine = engine
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None

    async def check(self) -> str:
        store = getattr(self.engine, "store", None)
        if store is None:
            return "ok"
        if getattr(self.engine, "_closing", False):
            return "closing"
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(store.flush())
            self._task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved, even after a timeout
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.timeout)
        except TimeoutError:
            return f"no commit within {self.timeout:g} s"
        except Exception as exc:  # noqa: BLE001 - that is the answer
            return f"error: {exc}"
        return "ok"
