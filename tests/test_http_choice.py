"""bench.http_choice runs end to end on tiny sizes, and every installed candidate answers correctly."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_http_choice_tiny_run():
    out = subprocess.run(
        [sys.executable, "-m", "bench.http_choice", "--seconds", "0.05", "--warmup", "0.02", "--rounds", "1",
         "--batch-size", "5", "--connections", "2", "--batch-connections", "1"],
        check=False, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("mode", "command", "date", "machine", "settings", "versions", "handlers_only", "candidates"):
        assert key in result
    assert set(result["candidates"]) == {"aiohttp", "httptools_lean", "httptools_lean_async", "uvicorn_asgi", "denpo"}
    assert result["candidates"]["aiohttp"]["status"] == "ok"  # a dependency of denpo: never skipped
    for name, cand in result["candidates"].items():
        if cand["status"] == "skipped":
            assert cand["reason"].startswith("not installed")
            continue
        assert cand["status"] == "ok" and cand["correct"], (name, cand.get("checks"))
        assert all(v is True for v in cand["checks"].values()), (name, cand["checks"])
        assert cand["bad_responses"] == 0, name
        assert cand["single"]["requests_per_s"] > 0 and cand["single"]["server_cpu_us_per_request"] > 0
        assert cand["batch"]["messages_per_s"] > 0 and cand["batch"]["server_cpu_us_per_message"] > 0
        for phase in ("latency_single_half_own_peak", "latency_single_common_rate", "latency_batch_half_own_peak",
                      "latency_batch_target_rate"):
            assert cand[phase]["p99_ms"] is not None and cand[phase]["p99_ms"] >= cand[phase]["p50_ms"] > 0
        assert set(cand["vs_aiohttp"]) >= {"server_cpu_per_request", "server_cpu_per_message_batch"}
        assert set(cand["http_layer_cpu_us"]) == {"per_request", "per_batch_request"}
