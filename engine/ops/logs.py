"""Logging for ``denpo serve``: JSON lines for machines, plain text for people.

``format = "auto"`` (the default) writes plain text when stderr is a terminal
and JSON lines otherwise (systemd's journal, a log shipper).  A JSON line has
``ts`` (ISO 8601, UTC), ``level``, ``logger``, ``msg`` and whatever of
``message_id``, ``transaction_id``, ``carrier``, ``bind``, ``account`` the
call passed in ``extra=`` — the keys a support case is traced by.  The hot
path logs nothing per message at info level; warnings and errors always carry
their context.
"""

from __future__ import annotations

import datetime as _dt
import logging
import sys
from typing import IO, Any

import msgspec

__all__ = ["setup_logging", "JsonFormatter", "CONTEXT_KEYS"]

CONTEXT_KEYS = ("message_id", "transaction_id", "carrier", "bind", "account")
_encode = msgspec.json.Encoder().encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": _dt.datetime.fromtimestamp(record.created, _dt.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in CONTEXT_KEYS:
            value = record.__dict__.get(key)
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return _encode(line).decode()


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s%(context)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        context = [f"{k}={record.__dict__[k]}" for k in CONTEXT_KEYS if record.__dict__.get(k) is not None]
        record.context = f"  [{' '.join(context)}]" if context else ""
        return super().format(record)


def setup_logging(level: str = "info", fmt: str = "auto", stream: IO[str] | None = None) -> logging.Handler:
    """Route the ``denpo`` loggers (and warnings of the libraries) to ``stream``
    (stderr) in the chosen format; returns the handler (tests remove it)."""
    stream = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not getattr(stream, "isatty", lambda: False)())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if use_json else TextFormatter())
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_denpo", False)]:
        root.removeHandler(old)
    handler._denpo = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("denpo").setLevel(level.upper())
    return handler
