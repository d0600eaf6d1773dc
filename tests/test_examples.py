"""The examples run as documented (README: "Embedded Python API")."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_embedded_example_runs() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embedded.py")],
        check=False, cwd=ROOT, capture_output=True, text=True, encoding="utf-8", timeout=120,
    )
    out = done.stdout
    assert done.returncode == 0, f"exit {done.returncode}\n--- stdout\n{out}\n--- stderr\n{done.stderr}"
    # submit_many: one result per request, in order; the bad number is a SubmitError naming field and reason
    labels = re.findall(r"^  (\S+) +(?:id=|error:)", out.split("submit again")[0], re.MULTILINE)
    assert labels == ["au", "docomo", "order-42", "landline", "scheduled"]
    assert re.search(r"^  landline +error: field=to reason=not_mobile temporary=False", out, re.MULTILINE)
    assert re.search(r"^  docomo +id=\S+ status=queued carrier=docomo .* parts=4 billing_units=4 duplicate=False", out, re.MULTILINE)
    # the same client_ref again: the same id, marked duplicate
    first = re.search(r"^  order-42 +id=(\S+) .*duplicate=False$", out, re.MULTILINE)
    again = re.search(r"^  order-42 +id=(\S+) .*duplicate=True$", out, re.MULTILINE)
    assert first and again and first.group(1) == again.group(1)
    # cancel of the scheduled message: True once, then False
    scheduled = re.search(r"^  scheduled +id=(\S+) status=accepted ", out, re.MULTILINE)
    assert scheduled
    assert f"cancel({scheduled.group(1)}) -> True" in out
    assert f"cancel({scheduled.group(1)}) again -> False" in out
    # events: every accepted message reached a final status
    finals = dict(re.findall(r"^  (\S+) \S+ +(\S+) +final=True", out, re.MULTILINE))
    assert finals[scheduled.group(1)] == "cancelled"
    assert sorted(finals.values()) == ["cancelled", "delivered", "delivered", "delivered"]
    assert "every accepted message has a final status" in out
    assert "MO: carrier=au from=+819012345678" in out
    assert "history=['accepted', 'queued', 'submitted', 'delivered']" in out
    assert out.rstrip().endswith("simulators stopped")
