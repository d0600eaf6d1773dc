"""Run the fuzz targets of tests/fuzz/targets.py for as long as you like (outside CI).

    .venv/bin/python -m tests.fuzz.run TARGET [--seconds 600]      # one target
    .venv/bin/python -m tests.fuzz.run all --seconds 600            # each target in turn
    .venv/bin/python -m tests.fuzz.run TARGET --replay FILE ...     # run saved inputs, show what fails
    .venv/bin/python -m tests.fuzz.run --list

With atheris installed (Linux x86_64: ``pip install -e '.[test]'``) this is
coverage-guided fuzzing with libFuzzer over instrumented ``engine`` code: the
corpus grows in ``var/fuzz/TARGET/corpus`` (kept between runs, seeded from
tests/fuzz/seeds.py) and each crashing input is saved in
``var/fuzz/TARGET/crashes`` with its traceback beside it (``.txt``); after a
crash the fuzzer starts again until the time is up (``--stop-on-crash`` to
stop).  Without atheris, hypothesis runs the same targets for the time given
(``--engine hypothesis`` forces it).  Exit status 1 when anything was found.

A crash found becomes a regression test (tests/fuzz/test_regressions.py): the
input as a literal, the target it fails, and the fix.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TARGET_NAMES = ("smpp_codec", "smpp_session", "dlr_receipt", "engine_deliver", "http_api", "http_server", "text")


def have_atheris() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass
class Result:
    target: str
    engine: str
    seconds: float = 0.0
    execs: int = 0
    crashes: list[Path] = field(default_factory=list)
    output: str = ""  # the fuzzer's log (its tail is what matters)
    exit_code: int = 0

    @property
    def ok(self) -> bool:
        return not self.crashes and self.exit_code == 0

    def summary(self) -> str:
        found = f", {len(self.crashes)} crash(es): {', '.join(str(c) for c in self.crashes)}" if self.crashes else ""
        return f"{self.target}: {self.engine}, {self.execs} inputs in {self.seconds:.1f} s{found}"


def write_seeds(target: str, corpus: Path) -> int:
    from tests.fuzz.seeds import SEEDS

    corpus.mkdir(parents=True, exist_ok=True)
    seeds = SEEDS[target]()
    for data in seeds:
        (corpus / f"seed-{hashlib.sha1(data).hexdigest()[:16]}").write_bytes(data)
    return len(seeds)


_EXECS = re.compile(r"^#(\d+)\s", re.MULTILINE)
_DONE = re.compile(r"stat::number_of_executed_units:\s*(\d+)")


def run_atheris(
    target: str, seconds: float, *, corpus: Path, crashes: Path, seed: int | None = None, keep_going: bool = True,
    quiet: bool = True,
) -> Result:
    """libFuzzer on ``target`` for ``seconds``, in child processes (restarted after each crash when ``keep_going``)."""
    from tests.fuzz.targets import TARGETS

    result = Result(target, "atheris")
    crashes.mkdir(parents=True, exist_ok=True)
    write_seeds(target, corpus)
    started = time.monotonic()
    logs = []
    with tempfile.TemporaryDirectory(prefix=f"denpo-fuzz-{target}-") as tmp:
        env = {**os.environ, "DENPO_FUZZ_TMP": tmp, "PYTHONPATH": str(ROOT)}
        while True:
            left = seconds - (time.monotonic() - started)
            if left < 1:
                break
            before = set(crashes.iterdir())
            cmd = [
                sys.executable, "-m", "tests.fuzz.run", "--worker", target, str(corpus),
                f"-max_total_time={max(1, int(left))}", f"-artifact_prefix={crashes}/", f"-max_len={TARGETS[target].max_len}",
                "-timeout=30", "-rss_limit_mb=1536", "-print_final_stats=1",
            ]
            if seed is not None:
                cmd.append(f"-seed={seed}")
            proc = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
            logs.append(proc.stdout)
            if not quiet:
                sys.stdout.write(proc.stdout[-4000:])
            m = _DONE.findall(proc.stdout)
            result.execs += int(m[-1]) if m else max((int(x) for x in _EXECS.findall(proc.stdout)), default=0)
            new = sorted(set(crashes.iterdir()) - before)
            new = [p for p in new if not p.name.endswith(".txt")]
            for path in new:
                path.with_name(path.name + ".txt").write_text(_crash_report(proc.stdout))
            result.crashes += new
            if proc.returncode != 0 and not new:
                result.exit_code = proc.returncode  # died without saying what on: a finding too
                break
            if not new or not keep_going:
                break
            if shutil.disk_usage(crashes).free < 1 << 30:
                break
            seed = None if seed is None else seed + 1
    result.seconds = time.monotonic() - started
    result.output = "\n".join(logs)
    return result


def _crash_report(log: str) -> str:
    start = log.find("=== Uncaught Python exception: ===")
    return log[start:] if start >= 0 else log[-6000:]


def run_hypothesis(target: str, seconds: float) -> Result:
    """The same target under hypothesis: arbitrary octets and mutated seeds, in rounds
    of fresh random examples until the time is up."""
    from hypothesis import HealthCheck, Phase, given, settings

    from tests.fuzz.seeds import SEEDS, fuzz_input
    from tests.fuzz.targets import TARGETS, close_harnesses

    run = TARGETS[target].run
    result = Result(target, "hypothesis")
    started = time.monotonic()
    count = 0

    @settings(max_examples=500, deadline=None, database=None, derandomize=False, phases=[Phase.generate, Phase.shrink],
              suppress_health_check=list(HealthCheck))
    @given(fuzz_input(SEEDS[target](), TARGETS[target].max_len))
    def body(data: bytes) -> None:
        nonlocal count
        count += 1
        run(data)

    try:
        while time.monotonic() - started < seconds:
            body()
    except Exception as exc:  # noqa: BLE001 - reported, with hypothesis' minimal example
        result.exit_code = 1
        result.output = f"{type(exc).__name__}: {exc}"
    finally:
        close_harnesses()
    result.seconds = time.monotonic() - started
    result.execs = count
    return result


def replay(target: str, files: list[str]) -> int:
    import traceback

    from tests.fuzz.targets import TARGETS, close_harnesses

    failed = 0
    try:
        for name in files:
            data = Path(name).read_bytes()
            try:
                TARGETS[target].run(data)
            except Exception:  # noqa: BLE001
                failed += 1
                print(f"--- {name} ({len(data)} octets): {data!r}")
                traceback.print_exc()
            else:
                print(f"--- {name}: passes")
    finally:
        close_harnesses()
    return 1 if failed else 0


_WHOLE_ENGINE = ("engine_deliver", "http_api", "http_server")


def worker(target: str, libfuzzer_args: list[str]) -> None:
    """Inside the child process: instrument engine/, then hand the target to libFuzzer."""
    import atexit
    import importlib
    import logging
    import pkgutil

    import atheris

    logging.disable(logging.CRITICAL)  # the engine's warnings (carriers unreachable, …) are noise here
    atheris.enabled_hooks.add("RegEx")
    atheris.enabled_hooks.add("str")
    with atheris.instrument_imports(include=["engine"]):
        import engine
        import engine.smpp.codec as codec
        from tests.fuzz.targets import TARGETS, close_harnesses, engine_harness

        if target in _WHOLE_ENGINE:
            # every module now, so that what the target imports lazily (the engine, the server) is instrumented too
            for module in pkgutil.walk_packages(engine.__path__, "engine."):
                if not module.name.endswith("__main__"):
                    importlib.import_module(module.name)
    # libFuzzer ends the process with exit(): too late to stop the engine cleanly (the
    # parent removes its directory), and trying would only add a traceback to the log
    atexit.unregister(close_harnesses)
    # the codec's encoders and decoders are generated at import (exec): instrument them too
    for fn in [*codec._DECODERS.values(), *codec._ENCODERS.values()]:
        atheris.instrument_func(fn)
    run = TARGETS[target].run
    if target in ("http_api", "engine_deliver"):
        engine_harness()  # start the engine before libFuzzer counts time per input
    atheris.Setup([sys.argv[0], *libfuzzer_args], run)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", nargs="?", choices=[*TARGET_NAMES, "all"])
    parser.add_argument("--seconds", type=float, default=600.0, help="per target (default 600)")
    parser.add_argument("--engine", choices=["auto", "atheris", "hypothesis"], default="auto")
    parser.add_argument("--dir", type=Path, default=ROOT / "var" / "fuzz", help="corpus and crashes go under DIR/TARGET/")
    parser.add_argument("--seed", type=int, default=None, help="libFuzzer's -seed (default: random)")
    parser.add_argument("--stop-on-crash", action="store_true")
    parser.add_argument("--replay", nargs="+", metavar="FILE", help="run these inputs through the target and report")
    parser.add_argument("--list", action="store_true", help="list the targets")
    args = parser.parse_args(argv)
    if args.list or not args.target:
        from tests.fuzz.targets import TARGETS

        for t in TARGETS.values():
            print(f"{t.name:15} {t.doc}")
        return 0
    if args.replay:
        return replay(args.target, args.replay)
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if have_atheris() else "hypothesis"
    found = False
    for target in TARGET_NAMES if args.target == "all" else (args.target,):
        if engine == "atheris":
            result = run_atheris(
                target, args.seconds, corpus=args.dir / target / "corpus", crashes=args.dir / target / "crashes",
                seed=args.seed, keep_going=not args.stop_on_crash, quiet=False,
            )
        else:
            result = run_hypothesis(target, args.seconds)
            if result.output:
                print(result.output)
        print(result.summary(), flush=True)
        found = found or not result.ok
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
