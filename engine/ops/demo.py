"""``denpo demo``: a mixed batch against a running ``denpo serve``, with live
progress and a final table.

The batch covers what makes the Japanese carriers different: all four
carriers, Japanese (UCS-2) and ASCII (GSM 7-bit) texts, long messages sent in
parts (billed per carrier's units), and au numbers that get several messages
— au lets a number have its next message only 12 s after the previous one
ended, so those finish last, paced by the engine.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["run_demo", "demo_messages"]

FINAL = {"delivered", "partially_failed", "undeliverable", "expired", "rejected", "indefinite", "cancelled"}

_TEXTS = [
    "ご予約ありがとうございます。明日10時にお待ちしております。",
    "Your verification code is 482913. It expires in 10 minutes.",
    "【お知らせ】" + "本日はご来店いただき誠にありがとうございました。次回のご利用をお待ちしております。" * 3,
    "Order #1042 shipped. Track it at example.invalid/t/1042 - " + "thanks for shopping with us! " * 8,
]


def demo_messages(count: int, au_repeat: int = 2) -> list[dict[str, Any]]:
    """``count`` messages round robin over carriers and texts; every fifth au
    number gets ``au_repeat`` messages (paced 12 s apart)."""
    carriers = ("au", "docomo", "softbank", "rakuten")
    out: list[dict[str, Any]] = []
    i = 0
    while len(out) < count:
        carrier = carriers[i % 4]
        number = f"090{70_000_000 + i:08d}"
        repeats = au_repeat if carrier == "au" and i % 5 == 0 else 1
        for k in range(repeats):
            if len(out) < count:
                out.append({"to": number, "text": _TEXTS[(i + k) % len(_TEXTS)], "carrier": carrier, "client_ref": f"demo-{i}-{k}"})
        i += 1
    return out


async def run_demo(url: str, token: str, *, count: int = 200, timeout: float = 120.0, out: Any = sys.stdout) -> int:
    import aiohttp

    headers = {"Authorization": f"Bearer {token}"}
    messages = demo_messages(count)
    tty = getattr(out, "isatty", lambda: False)()
    started = time.perf_counter()
    async with aiohttp.ClientSession(base_url=url.rstrip("/") + "/", headers=headers) as http:
        accepted: list[dict[str, Any]] = []
        for k in range(0, len(messages), 1000):
            async with http.post("v1/messages/batch", json={"messages": messages[k : k + 1000]}) as r:
                body = await r.json(content_type=None)
                if r.status != 202:
                    print(f"denpo demo: the batch was refused: {r.status} {body.get('detail', body)}", file=out)
                    return 1
                accepted += [item for item in body["results"] if "id" in item]
        accept_s = time.perf_counter() - started
        print(f"accepted {len(accepted)} of {len(messages)} messages in {accept_s:.2f} s", file=out)
        status: dict[str, dict[str, Any]] = {a["id"]: a for a in accepted}
        pending = set(status)
        last_print = 0.0
        semaphore = asyncio.Semaphore(32)

        async def read(mid: str) -> None:
            async with semaphore, http.get(f"v1/messages/{mid}") as r:
                if r.status == 200:
                    view = await r.json()
                    status[mid] = {**status[mid], **view}
                    if view["status"] in FINAL:
                        pending.discard(mid)

        deadline = time.perf_counter() + timeout
        while pending and time.perf_counter() < deadline:
            await asyncio.gather(*(read(mid) for mid in list(pending)))
            now = time.perf_counter()
            if now - last_print >= 0.5 or not pending:
                last_print = now
                counts = collections.Counter(v["status"] for v in status.values())
                line = f"{now - started:6.1f} s  " + "  ".join(f"{s} {n}" for s, n in sorted(counts.items()))
                print(("\r" + line) if tty else line, end="" if tty else "\n", file=out, flush=True)
            if pending:
                await asyncio.sleep(0.5)  # the demo polls the API as a client would
        if tty:
            print(file=out)
    seconds = time.perf_counter() - started
    _table(status.values(), len(messages), seconds, out)
    return 0 if not pending else 1


def _table(views: Any, sent: int, seconds: float, out: Any) -> None:
    by: dict[tuple[str, str], list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for v in views:
        row = by[(v["carrier"], v["status"])]
        row[0] += 1
        row[1] += v.get("parts", 1)
        row[2] += v.get("billable_units", 0)
    print(f"\n{'carrier':<10}{'status':<18}{'messages':>9}{'parts':>7}{'billed units':>14}", file=out)
    for (carrier, st), (n, parts, units) in sorted(by.items()):
        print(f"{carrier:<10}{st:<18}{n:>9}{parts:>7}{units:>14}", file=out)
    total = sum(r[0] for r in by.values())
    final = sum(r[0] for (_c, st), r in by.items() if st in FINAL)
    print(f"\n{total} of {sent} accepted, {final} final in {seconds:.1f} s "
          f"({final / seconds:.0f}/s; au numbers with several messages wait 12 s between them)", file=out)


def token_from(path: str | None) -> str:
    return Path(path or "var/demo-token").read_text(encoding="utf-8").strip()
