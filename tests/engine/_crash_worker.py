"""The engine as a process for the crash test: submit N messages (idempotent
client_refs, so a restart re-submits safely), then wait until every message
is final.  Prints one JSON line per phase.

    python -m tests.engine._crash_worker CONFIG.json N
"""

from __future__ import annotations

import asyncio
import json
import sys

from engine.api import SubmitRequest
from engine.engine import Engine
from engine.ops.config import parse_config

CARRIERS = ("au", "docomo", "softbank", "rakuten")


def requests(n: int) -> list[SubmitRequest]:
    out = []
    for i in range(n):
        carrier = CARRIERS[i % 4]
        # every 20th message goes to one of 500 au numbers (two each): pacing across the crash
        if i % 20 == 0:
            out.append(SubmitRequest(account="crash", to=f"+8170{(i // 20) % 500:08d}", text=f"paced {i}", carrier="au", client_ref=f"m{i}"))
        else:
            out.append(SubmitRequest(account="crash", to=f"+8190{i:08d}", text=f"message {i}", carrier=carrier, client_ref=f"m{i}"))
    return out


async def main(config_path: str, n: int) -> None:
    config = parse_config(json.loads(open(config_path).read()))
    async with Engine(config) as engine:
        accepted = 0
        batch = requests(n)
        for k in range(0, n, 500):
            results = await engine.submit_many(batch[k : k + 500])
            accepted += sum(1 for r in results if not isinstance(r, Exception))
        print(json.dumps({"phase": "submitted", "accepted": accepted}), flush=True)
        while True:
            counts = await engine.store.counts()
            unfinished = sum(v for k, v in counts.items() if k in ("accepted", "queued", "submitted"))
            if not unfinished:
                break
            await asyncio.sleep(0.2)
        print(json.dumps({"phase": "done", "counts": counts}), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
