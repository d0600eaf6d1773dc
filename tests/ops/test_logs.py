"""Structured logs: JSON lines with the context keys; plain text on a terminal."""

from __future__ import annotations

import io
import json
import logging

from engine.ops.logs import setup_logging


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_json_lines_carry_the_context():
    out = io.StringIO()
    handler = setup_logging("info", "auto", out)  # not a terminal: JSON
    try:
        log = logging.getLogger("denpo.test")
        log.info("bind lost", extra={"carrier": "au", "bind": "au-1"})
        log.debug("not shown at info")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed", extra={"message_id": "01a2", "transaction_id": "t-1"})
        logging.getLogger("aiohttp.access").info("libraries' info stays out")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(l["level"], l["msg"]) for l in lines] == [("info", "bind lost"), ("error", "failed")]
    assert lines[0]["carrier"] == "au" and lines[0]["bind"] == "au-1" and lines[0]["logger"] == "denpo.test"
    assert lines[1]["message_id"] == "01a2" and lines[1]["transaction_id"] == "t-1" and "ValueError: boom" in lines[1]["exc"]
    assert lines[0]["ts"].endswith("+00:00")


def test_text_on_a_terminal():
    out = Tty()
    handler = setup_logging("debug", "auto", out)
    try:
        logging.getLogger("denpo.test").warning("slow receiver", extra={"account": "acme"})
    finally:
        logging.getLogger().removeHandler(handler)
    text = out.getvalue()
    assert "WARNING" in text and "denpo.test: slow receiver" in text and "[account=acme]" in text
    assert not text.lstrip().startswith("{")
