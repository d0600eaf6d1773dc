"""What the au pacing gate and the carrier lookup cost at scale: bytes held and operations per second.

    python -m bench.pacing_bench [--numbers 1000000]

Pacer (engine/flow/pacing.py), ``numbers`` distinct E.164 numbers:

* ``bytes_per_number_*``: tracemalloc's traced memory held by the pacer once
  every number has had a message sent and ended, i.e. all of them in their
  12 s wait (the pacer's whole working set at that send rate), for the
  strings themselves (the default) and for int keys (``compact_keys=True``).  The
  number strings are made and dropped inside the measured loop, so a string
  the pacer keeps is counted and one it converts is not.
* ``*_per_s``: the same operations without tracemalloc — ``offer`` of a
  free number (sent at once), ``ended``, ``offer`` of a waiting number
  (parked: one heap push), ``release`` (in batches of 1,000, as one
  scheduler pass would take them), and the expiry sweep.
* ``expiry_*_bytes_per_number``: the design choice for expiring idle state —
  a coarse wheel (a list reference per number, what the pacer uses) against
  a heap of ``(not_before, key)`` tuples (the alternative).

CarrierLookup (engine/numbers.py): bytes per entry and lookups per second for
``numbers`` entries.
"""

from __future__ import annotations

import argparse
import gc
import heapq
import json
import time
import tracemalloc
from typing import Any

from engine.flow.pacing import Pacer
from engine.numbers import CARRIERS, CarrierLookup

__all__ = ["run"]


def _number(i: int) -> str:
    return f"+8190{i:08d}"


def _held_bytes(n: int, compact: bool) -> tuple[float, float]:
    """(bytes per number in its wait, extra bytes per number that also has one item parked)."""
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        pacer: Pacer[None] = Pacer(12.0, compact_keys=compact)
        for i in range(n):
            number = f"+8190{i:08d}"
            pacer.offer(number, None, 0.0)
            pacer.ended(number, 1.0)
        del number
        gc.collect()
        waiting = tracemalloc.get_traced_memory()[0] - base
        for i in range(n):
            pacer.offer(f"+8190{i:08d}", None, 2.0)
        gc.collect()
        parked = tracemalloc.get_traced_memory()[0] - base - waiting
    finally:
        tracemalloc.stop()
    assert pacer.tracked == n and pacer.parked == n
    return waiting / n, parked / n


def _rate(count: int, seconds: float) -> int:
    return round(count / seconds) if seconds > 0 else 0


def _throughput(n: int, compact: bool) -> dict[str, Any]:
    numbers = [_number(i) for i in range(n)]
    pacer: Pacer[int] = Pacer(12.0, compact_keys=compact)
    suffix = "_int_keys" if compact else ""

    t = time.perf_counter()
    for i, number in enumerate(numbers):
        pacer.offer(number, i, 0.0)
    offer_free = time.perf_counter() - t

    t = time.perf_counter()
    for number in numbers:
        pacer.ended(number, 1.0)
    ended = time.perf_counter() - t

    t = time.perf_counter()
    for i, number in enumerate(numbers):
        pacer.offer(number, i, 2.0)
    offer_parked = time.perf_counter() - t
    assert pacer.parked == n

    released = 0
    t = time.perf_counter()
    while True:
        batch = pacer.release(13.0, 1000)
        if not batch:
            break
        released += len(batch)
    release = time.perf_counter() - t
    assert released == n

    for number in numbers:  # all end at 14: not before 26
        pacer.ended(number, 14.0)
    t = time.perf_counter()
    expired = pacer.expire(30.0)
    expire = time.perf_counter() - t
    assert expired == n and pacer.tracked == 0

    return {
        f"offer_free_per_s{suffix}": _rate(n, offer_free),
        f"ended_per_s{suffix}": _rate(n, ended),
        f"offer_parked_per_s{suffix}": _rate(n, offer_parked),
        f"release_per_s{suffix}": _rate(n, release),
        f"expire_per_s{suffix}": _rate(n, expire),
    }


def _expiry_structures(n: int) -> dict[str, float]:
    keys = [819000000000 + i for i in range(n)]
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        wheel: dict[int, list[int]] = {}
        for i, k in enumerate(keys):
            wheel.setdefault(13 + i * 12 // n, []).append(k)
        wheel_bytes = tracemalloc.get_traced_memory()[0] - base
        del wheel
        base = tracemalloc.get_traced_memory()[0]
        heap: list[tuple[float, int]] = []
        for i, k in enumerate(keys):
            heapq.heappush(heap, (13.0 + i * 12 / n, k))
        heap_bytes = tracemalloc.get_traced_memory()[0] - base
        del heap
    finally:
        tracemalloc.stop()
    return {
        "expiry_wheel_bytes_per_number": round(wheel_bytes / n, 1),
        "expiry_heap_bytes_per_number": round(heap_bytes / n, 1),
    }


def _lookup(n: int) -> dict[str, Any]:
    lines = [f"{_number(i * 7)},{CARRIERS[i % 4]}" for i in range(n)]
    gc.collect()
    t = time.perf_counter()
    table = CarrierLookup.from_lines(lines)
    parse = time.perf_counter() - t
    del lines
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        table2 = CarrierLookup({_number(i * 7): CARRIERS[i % 4] for i in range(n)})
        held = tracemalloc.get_traced_memory()[0] - base
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    assert len(table2) == n
    probes = [_number(i * 7) for i in range(0, n, max(1, n // 200_000))]
    misses = [_number(i * 7 + 1) for i in range(0, n, max(1, n // 200_000))]
    t = time.perf_counter()
    for p in probes:
        table.lookup(p)
    hit = time.perf_counter() - t
    t = time.perf_counter()
    for p in misses:
        table.lookup(p)
    miss = time.perf_counter() - t
    return {
        "lookup_entries": n,
        "lookup_bytes_per_entry": round(held / n, 1),
        "lookup_build_peak_bytes_per_entry": round(peak / n, 1),
        "lookup_parse_lines_per_s": _rate(n, parse),
        "lookup_hit_per_s": _rate(len(probes), hit),
        "lookup_miss_per_s": _rate(len(misses), miss),
    }


def run(*, numbers: int = 1_000_000) -> dict[str, Any]:
    started = time.perf_counter()
    result: dict[str, Any] = {"numbers": numbers, "interval_s": 12.0}
    waiting, parked = _held_bytes(numbers, False)
    result["bytes_per_number"] = round(waiting, 1)
    result["bytes_per_parked_number_extra"] = round(parked, 1)
    waiting, parked = _held_bytes(numbers, True)
    result["bytes_per_number_int_keys"] = round(waiting, 1)
    result["bytes_per_parked_number_extra_int_keys"] = round(parked, 1)
    result["mb_held"] = round(result["bytes_per_number"] * numbers / 2**20, 1)
    result.update(_throughput(numbers, False))
    result.update(_throughput(numbers, True))
    result.update(_expiry_structures(numbers))
    result.update(_lookup(numbers))
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--numbers", type=int, default=1_000_000)
    args = parser.parse_args()
    from bench._harness import machine

    print(json.dumps({**run(numbers=args.numbers), "machine": machine()}))
