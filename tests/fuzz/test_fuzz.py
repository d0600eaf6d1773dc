"""The fuzz targets of tests/fuzz/targets.py, briefly, as part of the test suite (CI).

Per target: its seeds pass; hypothesis (arbitrary octets and mutated seeds,
derandomized in CI) for a bounded number of examples; and, where atheris is
installed (Linux x86_64), libFuzzer for ``DENPO_FUZZ_SECONDS`` (default 3) per
target in child processes, two at a time, started when this module starts so
that they overlap the hypothesis tests.  Any finding — a decoder crash, a 500,
an oracle that does not hold — fails its test, naming the input.  The whole
module takes ~30 s on two cores.

Long runs: ``python -m tests.fuzz.run TARGET --seconds 600`` (see tests/fuzz/run.py).
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings

from tests.fuzz.run import Result, have_atheris, run_atheris
from tests.fuzz.seeds import SEEDS, fuzz_input
from tests.fuzz.targets import TARGETS, close_harnesses

SECONDS = float(os.environ.get("DENPO_FUZZ_SECONDS", "3"))  # libFuzzer time per target
EXAMPLES = {"http_api": 100, "engine_deliver": 100, "http_server": 100}  # hypothesis examples; others:
DEFAULT_EXAMPLES = 200
HAVE_ATHERIS = have_atheris()


@pytest.fixture(scope="module", autouse=True)
def atheris_runs(tmp_path_factory: pytest.TempPathFactory):
    """Every target's libFuzzer run, started now, two at a time; tests wait for theirs."""
    if not HAVE_ATHERIS or SECONDS <= 0:
        yield {}
        close_harnesses()
        return
    base = tmp_path_factory.mktemp("fuzz")
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="fuzz")
    seed = 1 if os.environ.get("CI") else None
    futures = {
        name: pool.submit(run_atheris, name, SECONDS, corpus=base / name / "corpus", crashes=base / name / "crashes", seed=seed, keep_going=False)
        for name in TARGETS
    }
    try:
        yield futures
    finally:
        for f in futures.values():
            f.cancel()
        pool.shutdown(wait=True)
        close_harnesses()


@pytest.mark.parametrize("name", list(TARGETS))
def test_seeds_pass(name: str) -> None:
    seeds = SEEDS[name]()
    assert len(seeds) >= 5
    for data in seeds:
        TARGETS[name].run(data)


@pytest.mark.parametrize("name", list(TARGETS))
def test_hypothesis(name: str) -> None:
    target = TARGETS[name]

    @settings(
        max_examples=EXAMPLES.get(name, DEFAULT_EXAMPLES), deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
    )
    @given(fuzz_input(SEEDS[name](), target.max_len))
    def check(data: bytes) -> None:
        target.run(data)

    check()


def _report(result: Result) -> str:
    lines = [result.summary()]
    for path in result.crashes:
        data = Path(path).read_bytes()
        lines.append(f"input ({len(data)} octets): {data!r}")
        report = Path(str(path) + ".txt")
        if report.exists():
            lines.append(report.read_text()[-4000:])
    if not result.crashes:
        lines.append(result.output[-4000:])
    return "\n".join(lines)


@pytest.mark.skipif(not HAVE_ATHERIS, reason="atheris is not installed (it has wheels for Linux x86_64 only)")
@pytest.mark.skipif(SECONDS <= 0, reason="DENPO_FUZZ_SECONDS=0")
@pytest.mark.parametrize("name", list(TARGETS))
def test_atheris(name: str, atheris_runs) -> None:
    result = atheris_runs[name].result(timeout=SECONDS * 10 + 120)
    print(result.summary())
    assert result.ok, _report(result)
    assert result.execs >= 20, _report(result)  # it ran, rather than failing to start
