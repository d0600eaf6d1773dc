"""The embedded Python API, end to end, against local carrier simulators.

    .venv/bin/python examples/embedded.py

Starts one ``denpo sim`` process per carrier it uses (au, docomo) on free
ports, builds a config in code, and runs the engine in this process with its
SQLite store in a temporary directory:

* ``submit_many``: a Japanese text to au, a long (multi-part) text to docomo,
  a message with a ``client_ref``, a bad number, and one scheduled an hour
  ahead — one result per request, in order;
* ``submit`` of the ``client_ref`` message again: the same id, ``duplicate=True``;
* ``cancel`` of the scheduled message;
* ``events()`` until every accepted message has a final status, then a
  reply from a handset (injected at the au simulator) as an ``MoEvent``;
* ``status(id)`` of the docomo message.

It stops the simulators it started and exits; a few seconds in all.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from engine.api import Accepted, MoEvent, StatusEvent, SubmitError, SubmitRequest
from engine.engine import Engine
from engine.ops.config import parse_config

CARRIERS = ("au", "docomo")
SENDERS = {"au": ["0120000001"], "docomo": ["0120000002"]}


async def start_simulator(carrier: str) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    """``denpo sim`` on free ports (SMPP and HTTP control); returns the process and its ready line."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "engine", "sim", "--carrier", carrier, "--port", "0", "--control-port", "0",
        "--dlr-delay-ms", "50", "--partial-failure-rate", "0", "--seed", "1",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line:
        raise RuntimeError(f"the {carrier} simulator exited before it was ready")
    return proc, json.loads(line)


def make_config(ports: dict[str, int], store_path: str) -> Any:
    """The same structure as a TOML file (config/denpo.toml), validated by parse_config."""
    return parse_config(
        {
            "store": {"path": store_path},
            "accounts": {"demo": {"senders": SENDERS}},
            "carriers": {
                carrier: {"endpoints": [{"host": "127.0.0.1", "port": port, "system_id": "demo", "password": "demo"}]}
                for carrier, port in ports.items()
            },
        }
    )


def show(label: str, result: Accepted | SubmitError) -> None:
    if isinstance(result, SubmitError):
        print(f"  {label:<10} error: field={result.field} reason={result.reason} temporary={result.temporary} ({result.detail})")
    else:
        print(
            f"  {label:<10} id={result.id} status={result.status} carrier={result.carrier} to={result.to} "
            f"parts={result.parts} billing_units={result.billing_units} duplicate={result.duplicate}"
        )


def post_json(url: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


async def run(ports: dict[str, int], control_ports: dict[str, int], store_path: str) -> None:
    async with Engine(make_config(ports, store_path)) as engine:
        requests = {
            "au": SubmitRequest(account="demo", to="090-1234-5678", carrier="au", text="ご予約ありがとうございます。明日10時にお待ちしております。"),
            "docomo": SubmitRequest(
                account="demo", to="080-2345-6789", carrier="docomo",
                text="本日はご来店ありがとうございました。次回のご予約は会員ページから承っております。" * 5,
            ),
            "order-42": SubmitRequest(account="demo", to="+81 70-3456-7890", carrier="docomo", text="ご注文42を発送しました。", client_ref="order-42"),
            "landline": SubmitRequest(account="demo", to="03-1234-5678", carrier="docomo", text="届きません"),
            "scheduled": SubmitRequest(
                account="demo", to="090-9876-5432", carrier="au", text="明日のリマインダー", send_at=time.time() + 3600,
            ),
        }
        print("submit_many:")
        results = await engine.submit_many(list(requests.values()))
        accepted: dict[str, Accepted] = {}
        for label, result in zip(requests, results):
            show(label, result)
            if isinstance(result, Accepted):
                accepted[label] = result

        print("submit again with client_ref=order-42:")
        again = await engine.submit(requests["order-42"])
        show("order-42", again)
        assert again.id == accepted["order-42"].id and again.duplicate

        scheduled = accepted["scheduled"].id
        print(f"cancel({scheduled}) -> {await engine.cancel(scheduled)}")
        print(f"cancel({scheduled}) again -> {await engine.cancel(scheduled)}")

        print("events:")
        waiting = {a.id for a in accepted.values()}
        async with asyncio.timeout(30):  # receipts come within 50 ms here; fail rather than hang
            async for event in engine.events():
                if isinstance(event, StatusEvent):
                    error = f" error={event.error}" if event.error else ""
                    print(f"  {event.id} {event.carrier:<6} {event.status:<10} final={event.final} billable_units={event.billable_units}{error}")
                    if event.final:
                        waiting.discard(event.id)
                if not waiting:
                    break
        print("every accepted message has a final status")

        # a reply from the au handset, injected at the simulator's HTTP control port
        await asyncio.to_thread(
            post_json, f"http://127.0.0.1:{control_ports['au']}/mo",
            {"from": "819012345678", "to": SENDERS["au"][0], "text": "はい、伺います。"},
        )
        async with asyncio.timeout(30):
            async for event in engine.events():
                if isinstance(event, MoEvent):
                    print(f"MO: carrier={event.carrier} from={event.from_} to={event.to} text={event.text}")
                    break

        view = await engine.status(accepted["docomo"].id)
        assert view is not None
        print(f"status({view.id}):")
        print(f"  status={view.status} parts={view.parts} billing_units={view.billing_units} billable_units={view.billable_units} error={view.error}")
        print(f"  history={[h['status'] for h in view.history]}")
        print(f"stats: counters={engine.stats()['counters']}")


async def main() -> None:
    sims: dict[str, tuple[asyncio.subprocess.Process, dict[str, Any]]] = {}
    try:
        for carrier in CARRIERS:
            sims[carrier] = await start_simulator(carrier)
        ports = {c: ready["port"] for c, (_proc, ready) in sims.items()}
        control_ports = {c: ready["control_port"] for c, (_proc, ready) in sims.items()}
        with tempfile.TemporaryDirectory(prefix="denpo-example-") as folder:
            await run(ports, control_ports, str(Path(folder) / "denpo.db"))
        print("engine closed")
    finally:
        for proc, _ready in sims.values():  # only the processes started above
            if proc.returncode is None:
                proc.terminate()
        for proc, _ready in sims.values():
            await proc.wait()
    print("simulators stopped")


if __name__ == "__main__":
    asyncio.run(main())
