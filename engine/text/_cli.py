"""``denpo text --carrier C [--ref N] TEXT``: print a text plan as one JSON object.

Wiring: ``engine/cli.py`` either hands the remaining argv to
:func:`cli_main`, or adds a ``text`` sub-parser, calls
:func:`add_text_arguments` on it and :func:`run_text_command` with the
parsed namespace. Output is one JSON line on stdout; on any error (unknown
carrier, empty or over-limit text, bad ``--ref``, bad usage) it is
``{"error": ..., "reason": ..., ...}`` and the exit status is non-zero
(1 for a text that cannot be sent, 2 for bad usage).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Sequence, TextIO

from engine.text._errors import TextError
from engine.text._plan import plan
from engine.text._profiles import PROFILES

__all__ = ["add_text_arguments", "cli_main", "run_text_command"]


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # type: ignore[override]
        raise _UsageError(message)


def add_text_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--carrier``, ``--ref`` and ``TEXT`` to a (sub-)parser."""
    parser.add_argument(
        "--carrier",
        required=True,
        help=f"carrier profile: {', '.join(PROFILES)}",
    )
    parser.add_argument(
        "--ref",
        type=int,
        default=0,
        help="concatenation reference number (default 0, for reproducible output)",
    )
    parser.add_argument("text", metavar="TEXT", help="the message text")


def _emit(obj: dict, out: TextIO) -> None:
    out.write(json.dumps(obj, ensure_ascii=False, separators=(", ", ": ")) + "\n")


def run_text_command(args: argparse.Namespace, *, stdout: TextIO | None = None) -> int:
    """Plan ``args.text`` for ``args.carrier`` and print the JSON; return the exit status."""
    out = stdout if stdout is not None else sys.stdout
    try:
        result = plan(args.text, args.carrier, ref=args.ref)
    except TextError as exc:
        _emit(exc.to_json_dict(), out)
        return 1
    _emit(result.to_json_dict(), out)
    return 0


def cli_main(argv: Sequence[str] | None = None, *, stdout: TextIO | None = None) -> int:
    """Entry point for ``denpo text`` given the arguments after ``text``."""
    out = stdout if stdout is not None else sys.stdout
    parser = _Parser(prog="denpo text", description="Show how a text would be sent to a carrier.")
    add_text_arguments(parser)
    try:
        args = parser.parse_args(list(argv) if argv is not None else None)
    except _UsageError as exc:
        _emit({"error": str(exc), "reason": "usage"}, out)
        return 2
    return run_text_command(args, stdout=out)
