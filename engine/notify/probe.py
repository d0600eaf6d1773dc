"""``denpo probe-webhook URL``: the connectivity check the seeds describe before
notifications are turned on — a POST to the receiver, which must answer HTTP 200
within 500 ms, counted from sending the request to receiving the answer
(a fresh connection each time, so the handshake counts as it will for a
receiver that closes idle connections)."""

from __future__ import annotations

import time
from typing import Any

from engine.notify.sender import sign

__all__ = ["probe"]


async def probe(url: str, *, attempts: int = 3, limit_ms: float = 500.0, secret: str | None = None) -> dict[str, Any]:
    """Each attempt's status and milliseconds, and the verdict (``ok``: every
    attempt answered 200 within ``limit_ms``)."""
    import aiohttp

    body = b'{"event_id":0,"probe":true,"status":"probe"}'
    results: list[dict[str, Any]] = []
    timeout = aiohttp.ClientTimeout(total=max(limit_ms / 1000 * 4, 2.0))
    for _ in range(attempts):
        headers = {"Content-Type": "application/json", "User-Agent": "denpo-probe"}
        if secret:
            ts = str(int(time.time()))
            headers.update({"X-Denpo-Timestamp": ts, "X-Denpo-Signature": sign(secret, ts, body)})
        started = time.perf_counter()
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True), timeout=timeout) as session:
                async with session.post(url, data=body, headers=headers, allow_redirects=False) as response:
                    await response.read()
                    status: int | None = response.status
                    error = ""
        except Exception as exc:  # noqa: BLE001 - any failure is the probe's answer
            status, error = None, f"{type(exc).__name__}: {exc}".rstrip(": ")
        ms = round((time.perf_counter() - started) * 1000, 1)
        results.append({"status": status, "ms": ms, **({"error": error} if error else {})})
    ok = all(r["status"] == 200 and r["ms"] <= limit_ms for r in results)
    worst = max(r["ms"] for r in results)
    verdict = "OK: 200 within %d ms" % limit_ms if ok else "NG: " + (
        f"slowest answer {worst} ms (limit {limit_ms:g} ms)" if all(r["status"] == 200 for r in results)
        else "not every answer was 200: " + ", ".join(str(r["status"] or r.get("error")) for r in results)
    )
    return {"url": url, "ok": ok, "verdict": verdict, "limit_ms": limit_ms, "attempts": results}
