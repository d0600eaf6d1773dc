"""The ``denpo`` command line (also ``python -m engine``).

Commands committed to in shared/SPEC.md ("Interfaces we commit to") keep
their names and options; each command is one function below.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import typing
from typing import Any, Sequence

__all__ = ["main", "build_parser"]


def _run(coro: Any) -> Any:
    """Run a coroutine on uvloop (the production loop)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover
        return asyncio.run(coro)
    return uvloop.run(coro)


# --- denpo sim ----------------------------------------------------------------------


def _sim_options(parser: argparse.ArgumentParser) -> None:
    """One --option per SimulatorSettings field, so the command line and the config file agree."""
    from engine.ops.config import SimulatorSettings

    hints = typing.get_type_hints(SimulatorSettings, include_extras=True)
    for field in SimulatorSettings.__struct_fields__:
        if field == "carrier":
            continue
        tp = hints[field]
        base = _base_type(tp)
        choices = _literal_choices(tp)
        flag = "--" + field.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": field, "default": None}
        if choices:
            kwargs["choices"] = choices
        elif base is int:
            kwargs["type"] = _int
        elif base is float:
            kwargs["type"] = float
        parser.add_argument(flag, **kwargs)


class _Count(int):
    """An int that remembers it was given on the command line (argparse leaves defaults as they are)."""


def _counted(text: str) -> int:
    return _Count(text)


def _int(text: str) -> int:
    return int(text, 0)  # 0x45 as well as 69


def _base_type(tp: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _base_type(typing.get_args(tp)[0])
    if origin in (typing.Union, __import__("types").UnionType):
        arms = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(arms[0])
    return tp


def _literal_choices(tp: Any) -> list[Any] | None:
    base = _base_type(tp)
    if typing.get_origin(base) is typing.Literal:
        return list(typing.get_args(base))
    return None


def cmd_sim(args: argparse.Namespace) -> int:
    from engine.ops.config import ConfigError, load_config, simulator_settings

    values = {k: v for k, v in vars(args).items() if k not in ("command", "func", "config") and v is not None}
    smpp = None
    if args.config:
        try:
            config = load_config(args.config)
        except ConfigError as exc:
            print(exc, file=sys.stderr)
            return 2
        smpp = config.smpp
        for sim in config.simulators:
            if sim.carrier == args.carrier:
                base = {f: getattr(sim, f) for f in sim.__struct_fields__}
                values = {**base, **values}
    try:
        settings = simulator_settings(**values)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    return _run(_serve_sim(settings, smpp))


async def _serve_sim(settings: Any, smpp: Any) -> int:
    from carriers.smsc import SmscSimulator

    sim = SmscSimulator(settings, smpp=smpp)
    await sim.start()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(
        json.dumps({"event": "ready", "carrier": settings.carrier, "port": sim.port, "control_port": sim.control_port}),
        flush=True,
    )
    await stop.wait()
    await sim.stop()
    print(json.dumps({"event": "stopped", **sim.stats()}), flush=True)
    return 0


# --- denpo check-config ---------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    from engine.ops.config import check_config_file

    problems = check_config_file(args.path)
    if not problems:
        print(f"{args.path}: ok")
        return 0
    print(f"{args.path}: {len(problems)} problem(s)", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    return 1


# --- denpo text -----------------------------------------------------------------------
# Implemented by engine.text (its own parser, so usage errors also come out as JSON).


# --- denpo bench ----------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    from bench import _harness

    argv = sys.argv[2:] if len(sys.argv) > 2 and sys.argv[1] == "bench" else [args.mode]
    args.count_given = isinstance(args.count, _Count)
    if args.mode == "codec":
        from bench.codec_bench import run

        figures = run(repeats=args.repeats, seconds=args.seconds)
        figures.update({f"bench_{k}": v for k, v in _harness.self_usage().items()})
    elif args.mode == "sim":
        from bench.sim_bench import run

        figures = _run(
            run(count=args.count, window=args.window, binds=args.binds or 1, receipts=not args.no_receipts, carrier=args.carrier, dlr_delay_ms=args.dlr_delay_ms)
        )
    elif args.mode == "pool":
        from bench.pool_bench import run

        figures = _run(
            run(
                smsc=args.smsc, system_id=args.system_id, password=args.password, binds=args.binds or 4,
                window=args.window, count=args.count, rate=args.rate, carrier=args.carrier,
            )
        )
    elif args.mode == "e2e":
        from bench.e2e_bench import run

        figures = _run(run(count=args.count, au_repeat=args.au_repeat, batch=args.batch or 500, callers=args.callers))
    elif args.mode == "http":
        from bench.http_bench import run

        figures = _run(
            run(
                mode=args.http_mode, count=args.count, concurrency=args.concurrency, batch=args.batch or 1000, rate=args.rate,
                half_peak=args.half_peak,
            )
        )
    elif args.mode == "limiter":
        from bench.limiter_bench import run

        try:
            figures = _run(run(count=args.count))
        except ImportError:
            print("denpo bench limiter compares with aiolimiter: pip install aiolimiter (or '.[bench]')", file=sys.stderr)
            return 2
    elif args.mode == "text":
        from bench.text_bench import run

        figures = run(repeats=args.repeats, seconds=args.seconds)
        figures.update({f"bench_{k}": v for k, v in _harness.self_usage().items()})
    elif args.mode == "pacing":
        from bench.pacing_bench import run

        figures = run(numbers=args.count)
    elif args.mode == "dlr":
        from bench.dlr_bench import run

        figures = run(n=args.count, repeats=args.repeats, entries=50_000)
    elif args.mode == "kannel":
        from bench.kannel_bench import run

        figures = _run(run(count=args.count if args.count_given else 20_000, pairs=args.pairs, concurrency=args.concurrency))
    elif args.mode == "soak":
        from bench.soak import run

        figures = _run(run(duration=args.duration, rate=args.rate))
        _harness.finish(args.mode, figures, argv=argv)
        return 0 if figures.get("lost") == 0 and not figures.get("failures") else 1
    else:  # pragma: no cover - argparse restricts the choices
        raise AssertionError(args.mode)
    _harness.finish(args.mode, figures, argv=argv)
    return 0


# --- denpo serve / new-token ---------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.ops.config import ConfigError
    from engine.ops.serve import parse_listen, serve

    if args.http is not None:
        try:
            parse_listen(args.http)
        except ValueError as exc:
            print(f"--http {exc}", file=sys.stderr)
            return 2
    try:
        return _run(serve(args.config, http=args.http, data_dir=args.data_dir, drain_timeout=args.drain_timeout))
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2


def cmd_probe_webhook(args: argparse.Namespace) -> int:
    from engine.notify.probe import probe

    if not args.url.startswith(("http://", "https://")):
        print("give an http:// or https:// URL", file=sys.stderr)
        return 2
    result = _run(probe(args.url, attempts=args.attempts, limit_ms=args.limit_ms, secret=args.secret))
    print(json.dumps(result, ensure_ascii=False))
    return 0 if result["ok"] else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from engine.ops.demo import run_demo, token_from

    try:
        token = args.token or token_from(args.token_file)
    except OSError as exc:
        print(f"denpo demo: no token ({exc.strerror}: {exc.filename}); give --token or --token-file", file=sys.stderr)
        return 2
    try:
        return _run(run_demo(args.url, token, count=args.count, timeout=args.timeout))
    except OSError as exc:
        print(f"denpo demo: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 2


def cmd_new_token(args: argparse.Namespace) -> int:
    from engine.api.auth import new_token

    token, digest = new_token()
    print(json.dumps({"token": token, "token_sha256": digest}))
    return 0


# --- denpo sim-demo -------------------------------------------------------------------


def cmd_sim_demo(args: argparse.Namespace) -> int:
    from carriers.demo import run_demo

    return _run(run_demo(dlr_delay_ms=args.dlr_delay_ms))


# --- parser ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    from engine.ops.config import CARRIERS

    parser = argparse.ArgumentParser(prog="denpo", description="SMS dispatch engine for the Japanese carriers.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("sim", help="run one carrier's SMSC simulator (SMPP 3.4 over TCP)")
    p.add_argument("--carrier", required=True, choices=CARRIERS)
    p.add_argument("--config", help="take this carrier's [[simulators]] entry from a config file; options override it")
    _sim_options(p)
    p.set_defaults(func=cmd_sim)

    p = sub.add_parser("check-config", help="validate a config file; exit 0 or print every problem")
    p.add_argument("path")
    p.set_defaults(func=cmd_check_config)

    from engine.text import add_text_arguments, run_text_command

    p = sub.add_parser("text", help="print, as JSON, how a text would be sent to a carrier")
    add_text_arguments(p)
    p.set_defaults(func=run_text_command)

    p = sub.add_parser("bench", help="run a benchmark; prints one JSON object last")
    p.add_argument("mode", choices=["codec", "sim", "pool", "e2e", "http", "kannel", "soak", "text", "limiter", "pacing", "dlr"])
    p.add_argument("--repeats", type=int, default=5, help="codec/text/dlr: runs per figure (median reported)")
    p.add_argument("--seconds", type=float, default=0.5, help="codec/text: seconds per run")
    p.add_argument("--count", type=_counted, default=200_000, help="messages to submit (kannel: per run, default 20,000; pacing: distinct au numbers; dlr: receipts)")
    p.add_argument("--pairs", type=int, default=3, help="kannel: alternating Kannel/denpo run pairs")
    p.add_argument("--duration", type=float, default=180.0, help="soak: seconds of load with faults on a schedule")
    p.add_argument("--window", type=int, default=100, help="sim: outstanding submits per bind")
    p.add_argument("--binds", type=int, default=None, help="sim/pool: transceiver binds (sim 1, pool 4)")
    p.add_argument("--smsc", metavar="HOST:PORT", help="pool: the SMSC to drive (default: start a denpo sim)")
    p.add_argument("--system-id", default="denpo", help="pool: bind credentials")
    p.add_argument("--password", default="denpo", help="pool: bind credentials")
    p.add_argument("--rate", type=float, default=None, help="pool: configured submits/s for the carrier; http: messages/s offered (default: as fast as answered)")
    p.add_argument("--au-repeat", type=int, default=0, help="e2e: messages to each of a set of au numbers, mixed in")
    p.add_argument("--batch", type=int, default=None, help="e2e: messages per submit_many call (500); http --mode batch: messages per request (1000)")
    p.add_argument("--mode", dest="http_mode", choices=["single", "batch"], default="single", help="http: POST /v1/messages or /v1/messages/batch")
    p.add_argument("--concurrency", type=int, default=None, help="http: keep-alive connections, a request in flight on each (single 64, batch 4)")
    p.add_argument("--half-peak", action="store_true", help="http: then offer half the accepted rate reached and report that phase's latency")
    p.add_argument("--callers", type=int, default=4, help="e2e: submit_many calls in flight at once")
    p.add_argument("--carrier", choices=CARRIERS, default="docomo", help="sim: which simulator")
    p.add_argument("--no-receipts", action="store_true", help="sim: request no delivery receipts")
    p.add_argument("--dlr-delay-ms", type=float, default=100.0, help="sim: receipt delay")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("serve", help="run the engine and its HTTP API (no --config: the embedded default with simulators)")
    p.add_argument("--config", help="TOML config (default: the embedded default, config/denpo.toml, with local simulators)")
    p.add_argument("--http", metavar="HOST:PORT", help="listen here (default: the config's http.listen)")
    p.add_argument("--data-dir", help="store and demo token here (default: ./var)")
    p.add_argument("--drain-timeout", type=float, default=30.0, metavar="S",
                   help="on SIGTERM: at most this long to finish requests and submits in flight (default 30)")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("probe-webhook", help="check a notification receiver answers 200 within 500 ms (exit 0 OK, 1 NG)")
    p.add_argument("url")
    p.add_argument("--attempts", type=int, default=3)
    p.add_argument("--limit-ms", type=float, default=500.0)
    p.add_argument("--secret", help="sign the probe as notifications are signed")
    p.set_defaults(func=cmd_probe_webhook)

    p = sub.add_parser("demo", help="against a running denpo serve: a mixed batch, live progress, a final table")
    p.add_argument("--url", default="http://127.0.0.1:8080")
    p.add_argument("--token", help="the account's token (default: read --token-file)")
    p.add_argument("--token-file", default="var/demo-token")
    p.add_argument("--count", type=int, default=200)
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for final statuses")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("new-token", help="make an API token and the token_sha256 to put in the config")
    p.set_defaults(func=cmd_new_token)

    p = sub.add_parser("sim-demo", help="start the four simulators in-process and send them a mixed batch")
    p.add_argument("--dlr-delay-ms", type=float, default=200.0)
    p.set_defaults(func=cmd_sim_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["text"]:
        from engine.text import cli_main

        return cli_main(argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
