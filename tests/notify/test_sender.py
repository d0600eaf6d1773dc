"""The notifier's delivery rules, with the HTTP call injected (and one real receiver)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from types import SimpleNamespace

import pytest
from aiohttp import web

from engine.notify import Entry, Notifier, sign
from tests.vtime import elapse


def account(**kw):
    base = dict(notify_batch=1, notify_concurrency=4, signing_secret="s" * 16, notify_max_age_s=3600.0)
    return SimpleNamespace(**{**base, **kw})


def entry(seq, account="a", mid=None, kind="result", url="http://r/x", at=0.0):
    return Entry(seq=seq, account=account, kind=kind, message_id=mid, url=url, body=json.dumps({"event_id": seq}).encode(), created_at=at)


class Receiver:
    """A scripted receiver: answers per call from ``script`` (status or exception), records calls."""

    def __init__(self, script=None, gate: asyncio.Event | None = None):
        self.calls: list[tuple[str, str, bytes, dict]] = []
        self.script = list(script or [])
        self.gate = gate
        self.changed = asyncio.Event()

    async def __call__(self, method, url, body, headers, timeout):
        self.calls.append((method, url, body, headers))
        self.changed.set()
        if self.gate is not None:
            await self.gate.wait()
        outcome = self.script.pop(0) if self.script else 200
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def wait_calls(self, n, timeout=60):
        async with asyncio.timeout(timeout):
            while len(self.calls) < n:
                self.changed.clear()
                await self.changed.wait()


class Recorder:
    def __init__(self):
        self.deliveries = []
        self.changed = asyncio.Event()

    def __call__(self, outcomes):
        self.deliveries.extend(outcomes)
        self.changed.set()

    def by(self, outcome):
        return [d.seq for d in self.deliveries if d.outcome == outcome]

    async def wait(self, predicate, timeout=60):
        async with asyncio.timeout(timeout):
            while not predicate():
                self.changed.clear()
                await self.changed.wait()


async def notifier(accounts, receiver, recorder, **kw):
    loop = asyncio.get_running_loop()
    n = Notifier(accounts, record=recorder, post=receiver, wall=kw.pop("wall", loop.time), **kw)
    await n.start()
    return n


@pytest.mark.looptime
async def test_sent_signed_and_recorded():
    receiver, recorder = Receiver(), Recorder()
    n = await notifier({"a": account()}, receiver, recorder)
    n.push([entry(1), entry(2)])
    await recorder.wait(lambda: len(recorder.by("sent")) == 2)
    method, url, body, headers = receiver.calls[0]
    assert method == "POST" and url == "http://r/x" and headers["Content-Type"] == "application/json"
    expected = hmac.new(b"s" * 16, headers["X-Denpo-Timestamp"].encode() + b"." + body, hashlib.sha256).hexdigest()
    assert headers["X-Denpo-Signature"] == expected == sign("s" * 16, headers["X-Denpo-Timestamp"], body)
    await n.close()


@pytest.mark.looptime
async def test_retry_with_backoff_then_dead():
    receiver = Receiver([500, asyncio.TimeoutError(), 503] + [500] * 100)
    recorder = Recorder()
    n = await notifier({"a": account(notify_max_age_s=30.0)}, receiver, recorder, retry_base_s=1.0, retry_cap_s=8.0)
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    n.push([entry(1, at=t0)])
    await recorder.wait(lambda: recorder.by("dead") == [1])
    retries = [d for d in recorder.deliveries if d.outcome == "retry"]
    assert [d.error for d in retries[:3]] == ["HTTP 500", "TimeoutError", "HTTP 503"]
    gaps = [d.next_at - t for d, t in zip(retries, [t0] + [r.next_at for r in retries])]
    assert all(g > 0 for g in gaps)
    assert loop.time() - t0 <= 30.0 + 8.0  # gave up once the next try would pass max_age
    assert recorder.deliveries[-1].attempts == len(receiver.calls)
    await n.close()


@pytest.mark.looptime
async def test_order_per_message_and_other_messages_go_on():
    # message 7's first event fails once: its second waits behind it, message 8 does not wait
    receiver = Receiver([500])
    recorder = Recorder()
    n = await notifier({"a": account(notify_concurrency=1)}, receiver, recorder, retry_base_s=2.0)
    n.push([entry(1, mid=7), entry(2, mid=7), entry(3, mid=8)])
    await recorder.wait(lambda: len(recorder.by("sent")) == 3)
    order = [json.loads(body)["event_id"] for _m, _u, body, _h in receiver.calls]
    assert order == [1, 3, 1, 2]
    await n.close()


@pytest.mark.looptime
async def test_a_dead_receiver_holds_back_only_its_account():
    stuck = asyncio.Event()
    slow = Receiver(gate=stuck)

    async def post(method, url, body, headers, timeout):
        if "slow" in url:
            return await slow(method, url, body, headers, timeout)
        return 200

    recorder = Recorder()
    n = await notifier({"a": account(notify_concurrency=2), "b": account()}, post, recorder)
    n.push([entry(i, account="a", url="http://slow/") for i in range(1, 6)])
    n.push([entry(i, account="b") for i in range(10, 20)])
    await recorder.wait(lambda: len(recorder.by("sent")) == 10)
    assert len(slow.calls) == 2  # a's concurrency, nothing more in flight for a
    stuck.set()
    await recorder.wait(lambda: len(recorder.by("sent")) == 15)
    await n.close()


@pytest.mark.looptime
async def test_batching_posts_a_list_to_one_url():
    receiver, recorder = Receiver(), Recorder()
    n = await notifier({"a": account(notify_batch=3, notify_concurrency=1)}, receiver, recorder)
    n.push([entry(i) for i in range(1, 8)] + [entry(8, url="http://other/")])
    await recorder.wait(lambda: len(recorder.by("sent")) == 8)
    sizes = [len(json.loads(body)) for _m, _u, body, _h in receiver.calls]
    assert sizes == [3, 3, 1, 1]  # the 7th alone: the 8th goes elsewhere
    assert receiver.calls[-1][1] == "http://other/"
    await n.close()


@pytest.mark.looptime
async def test_dlr_url_is_a_get_one_by_one():
    receiver, recorder = Receiver(), Recorder()
    n = await notifier({"a": account(notify_batch=10)}, receiver, recorder)
    n.push([entry(1, kind="dlr", url="http://k/dlr?s=1"), entry(2, kind="dlr", url="http://k/dlr?s=2")])
    await recorder.wait(lambda: len(recorder.by("sent")) == 2)
    assert [(m, u, b) for m, u, b, _h in receiver.calls] == [("GET", "http://k/dlr?s=1", b""), ("GET", "http://k/dlr?s=2", b"")]
    await n.close()


@pytest.mark.looptime
async def test_recovered_entries_with_attempts_wait_their_backoff():
    receiver, recorder = Receiver(), Recorder()
    loop = asyncio.get_running_loop()
    n = await notifier({"a": account()}, receiver, recorder, retry_base_s=5.0)
    e = entry(1, mid=3, at=loop.time())
    e.attempts = 2
    n.push([e, entry(2, mid=3)])
    await elapse(2.0)
    assert receiver.calls == []  # attempt 3 waits ~5-10 s; message 3's next event waits behind it
    await recorder.wait(lambda: len(recorder.by("sent")) == 2)
    assert [json.loads(b)["event_id"] for _m, _u, b, _h in receiver.calls] == [1, 2]
    await n.close()


async def test_real_receiver_over_http():
    got = []
    stamps = []

    async def handler(request):
        got.append(await request.read())
        stamps.append(request.headers["X-Denpo-Signature"])
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    recorder = Recorder()
    n = Notifier({"a": account()}, record=recorder)
    await n.start()
    try:
        n.push([entry(i, url=f"http://127.0.0.1:{port}/hook") for i in range(1, 21)])
        await recorder.wait(lambda: len(recorder.by("sent")) == 20, timeout=20)
        assert sorted(json.loads(b)["event_id"] for b in got) == list(range(1, 21))
        n.push([entry(99, url=f"http://127.0.0.1:{port}/missing", at=time.time())])
        await recorder.wait(lambda: recorder.by("retry") == [99], timeout=20)
        assert recorder.deliveries[-1].error == "HTTP 404"
    finally:
        await n.close()
        await runner.cleanup()
