"""The README's first command brings the service up and its curl lines work.

Runs `scripts/run` (setup, then `denpo serve` on the embedded default) exactly
as the README says, with `--http` on a free port and the data directory in a
temporary folder (the README's `var/`), then the README's own shell block with
the port put in, and follows the message to `delivered`.  CI runs it (it is
part of the test suite)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _readme_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _read_until_delivered(script: str, cwd: Path) -> dict:
    """Run the README's read command until the message is delivered (30 s at most)."""
    async with asyncio.timeout(30):
        while True:
            proc = await asyncio.create_subprocess_exec("bash", "-c", script, cwd=cwd, stdout=asyncio.subprocess.PIPE)
            out, _ = await proc.communicate()
            view = json.loads(out)
            if view["status"] == "delivered":
                return view
            await asyncio.sleep(0.2)  # polling the API as the README's reader would


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_first_command_and_curl(tmp_path):
    first, curl_block = _readme_blocks()[:2]
    command = first.splitlines()[0].split("#")[0].strip()
    assert command == "scripts/run"
    port = _free_port()
    serve = subprocess.Popen(
        [str(ROOT / command), "--http", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "var")],
        cwd=tmp_path, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env={**os.environ, "DENPO_DEMO_TOKEN": ""},
    )
    try:
        assert serve.stdout is not None
        ready = json.loads(serve.stdout.readline())
        assert ready["event"] == "ready" and (tmp_path / "var" / "demo-token").exists()
        lines = [l for l in curl_block.splitlines() if not l.lstrip().startswith("#")]
        script = "\n".join(lines).replace("127.0.0.1:8080", f"127.0.0.1:{port}")
        send, read = script.split("\ncurl -s http", 1)
        read = "curl -s http" + read
        sent = subprocess.run(["bash", "-c", f"set -e\n{send}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
        accepted = json.loads(sent.stdout)
        assert accepted["status"] == "queued" and accepted["to"] == "+819012345678" and accepted["carrier"] == "au"
        token_line = lines[0]
        view = asyncio.run(_read_until_delivered(f"set -e\n{token_line}\n{read.replace('<id>', accepted['id'])}", tmp_path))
        assert view["status"] == "delivered", view
        assert [h["status"] for h in view["history"]][0] == "accepted"
    finally:
        serve.send_signal(signal.SIGTERM)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()
    assert serve.returncode == 0
