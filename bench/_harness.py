"""Conventions every ``denpo bench`` mode follows.

* A mode is a function returning a flat dict of figures.
* :func:`finish` adds the machine (``nproc``, CPU model, Python, uvloop),
  the date and the git commit, prints the result as **one JSON object on the
  last line** of stdout, and appends it to ``bench/results/<mode>.jsonl``
  (``DENPO_BENCH_RESULTS`` overrides the folder; ``-`` disables writing).
* Each process involved reports ``rss_mb`` and ``cpu_s``
  (:func:`process_usage` for children, :func:`self_usage` for this one).
* ``bench/RESULTS.md`` summarises the figures with the command that made them.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

__all__ = ["machine", "process_usage", "self_usage", "finish", "median_of", "Stopwatch"]

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_CLK_TCK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import uvloop

        uv = uvloop.__version__
    except ImportError:  # pragma: no cover
        uv = None
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu or platform.processor(),
        "python": platform.python_version(),
        "uvloop": uv,
        "platform": platform.platform(),
    }


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def process_usage(pid: int) -> dict[str, float]:
    """RSS (MB) and CPU seconds (user + system) of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        statm = Path(f"/proc/{pid}/statm").read_text().split()
    except OSError:
        return {"rss_mb": float("nan"), "cpu_s": float("nan")}
    cpu = (int(fields[11]) + int(fields[12])) / _CLK_TCK
    rss = int(statm[1]) * _PAGE / 2**20
    return {"rss_mb": round(rss, 1), "cpu_s": round(cpu, 2)}


def self_usage() -> dict[str, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    current = process_usage(os.getpid())
    return {"rss_mb": current["rss_mb"], "cpu_s": round(usage.ru_utime + usage.ru_stime, 2)}


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


class Stopwatch:
    def __init__(self) -> None:
        self.start = time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self.start


def finish(mode: str, figures: dict[str, Any], *, argv: list[str] | None = None) -> dict[str, Any]:
    """Stamp, store and print one benchmark result."""
    result = {
        "mode": mode,
        **figures,
        "command": "denpo bench " + " ".join(argv if argv is not None else sys.argv[2:]),
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine(),
    }
    target = os.environ.get("DENPO_BENCH_RESULTS")
    if target != "-":
        folder = Path(target) if target else RESULTS_DIR
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / f"{mode}.jsonl").open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(result, ensure_ascii=False) + "\n")
    print(json.dumps(result, ensure_ascii=False), flush=True)
    return result
