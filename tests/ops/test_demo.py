"""denpo demo against denpo serve (embedded default, a subprocess)."""

from __future__ import annotations

import io

import pytest

from engine.ops.demo import demo_messages, run_demo
from tests.ops.serving import TOKEN, serving


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
    async with serving(tmp_path / "var") as serve:
        out = io.StringIO()
        code = await run_demo(serve.url, TOKEN, count=24, timeout=60, out=out)
        text = out.getvalue()
        assert code == 0, text
        assert "accepted 24 of 24" in text and "24 of 24 accepted, 24 final" in text
        for carrier in ("au", "docomo", "softbank", "rakuten"):
            assert f"\n{carrier:<10}delivered" in text
