"""Import hygiene and the benchmark's own sanity (fast)."""

from __future__ import annotations

import subprocess
import sys

import engine.text


def test_public_surface():
    for name in engine.text.__all__:
        assert hasattr(engine.text, name), name
    for name in ("TextProfile", "PROFILES", "plan", "TextPlan", "TextError", "decode_wire",
                 "count_characters", "encode_gsm7", "decode_gsm7", "pack_gsm7", "unpack_gsm7"):
        assert name in engine.text.__all__


def test_imports_only_stdlib_and_msgspec():
    code = (
        "import sys; before = set(sys.modules); import engine.text; "
        "extra = {m.split('.')[0] for m in set(sys.modules) - before}; "
        "bad = sorted(m for m in extra if m not in sys.stdlib_module_names "
        "and m not in ('engine', 'msgspec', 'typing_extensions') and not m.startswith('_')); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_bench_runs_and_texts_match_their_names():
    from bench.text_bench import TEXTS, run

    carrier, text = TEXTS["ascii70"]
    assert text.isascii() and len(text) == 70
    _, text = TEXTS["japanese300"]
    assert len(text) == 300 and not text.isascii()
    _, text = TEXTS["mixed670"]
    assert engine.text.plan(text, "au").characters == 670
    assert "\n" in text and any(ord(c) > 0xFFFF for c in text) and any(c.isascii() for c in text)
    result = run(repeats=1, seconds=0.01)
    for key in ("ascii70_plans_per_s", "japanese300_plans_per_s", "mixed670_plans_per_s", "repeats"):
        assert key in result
