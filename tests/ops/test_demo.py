"""denpo demo against denpo serve (embedded default, a subprocess)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import sys

import pytest

from engine.ops.demo import demo_messages, run_demo


def test_the_mix():
    messages = demo_messages(40)
    assert len(messages) == 40
    assert {m["carrier"] for m in messages} == {"au", "docomo", "softbank", "rakuten"}
    au = [m["to"] for m in messages if m["carrier"] == "au"]
    assert len(au) > len(set(au))  # some au numbers get several messages
    assert any(not m["text"].isascii() for m in messages) and any(m["text"].isascii() for m in messages)
    assert any(len(m["text"]) > 70 for m in messages)  # long ones go in parts


@pytest.mark.slow
async def test_demo_against_serve(tmp_path):
    env = {**os.environ, "DENPO_DEMO_TOKEN": "demo-test-token-0123456789"}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "serve", "--http", "127.0.0.1:0", "--data-dir", str(tmp_path / "var"),
        stdout=asyncio.subprocess.PIPE, env=env, cwd=tmp_path,
    )
    assert proc.stdout is not None
    try:
        ready = json.loads(await asyncio.wait_for(proc.stdout.readline(), 60))
        out = io.StringIO()
        code = await run_demo(ready["http"], "demo-test-token-0123456789", count=24, timeout=60, out=out)
        text = out.getvalue()
        assert code == 0, text
        assert "accepted 24 of 24" in text and "24 of 24 accepted, 24 final" in text
        for carrier in ("au", "docomo", "softbank", "rakuten"):
            assert f"\n{carrier:<10}delivered" in text
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
