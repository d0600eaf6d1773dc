"""Locust load against ``denpo serve``'s HTTP API, valid and invalid requests mixed.

    DENPO_TOKEN=$(cat var/demo-token) locust -f bench/locustfile.py --headless -u 50 -r 50 -t 30s --host http://127.0.0.1:8080

(``pip install '.[bench]'`` installs locust.)  Each request is checked against
the answer the API commits to (shared/SPEC.md): valid sends → 202; bad JSON →
400; unknown fields, bad numbers, text over the carrier's limit → 422 RFC 9457
problems naming the field and reason; a batch with bad items → 202 with a
result per item; an over-size batch → 413; no token → 401.  Anything else
(including 429 over the account's rate and 503 backpressure) is a failure in
locust's table, so the figures show exactly what did not go as specified.

``denpo bench http`` is the throughput figure (a lean client that is not the
bottleneck); this file is for a mixed, realistic load and its error paths.
"""

from __future__ import annotations

import itertools
import json
import os
import random

from locust import FastHttpUser, between, task

CARRIERS = ("au", "docomo", "softbank", "rakuten")
TEXT = "ご予約ありがとうございます。明日10時にお待ちしております。"
TOKEN = os.environ.get("DENPO_TOKEN", "")
_seq = itertools.count(random.randrange(10**7))


def _number() -> str:
    return f"090{next(_seq) % 10**8:08d}"


def _message(carrier: str | None = None) -> dict[str, str]:
    return {"to": _number(), "text": TEXT, "carrier": carrier or random.choice(CARRIERS)}


class ApiUser(FastHttpUser):
    wait_time = between(0.0, 0.05)

    def on_start(self) -> None:
        if not TOKEN:
            raise RuntimeError("set DENPO_TOKEN to the account's API token (var/demo-token for denpo serve)")
        self.auth = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def _post(self, path: str, body: bytes, expect: int, name: str, check=None) -> None:
        with self.client.post(path, data=body, headers=self.auth, name=name, catch_response=True) as resp:
            if resp.status_code != expect:
                resp.failure(f"HTTP {resp.status_code}, expected {expect}: {(resp.text or '')[:200]}")
                return
            try:
                payload = json.loads(resp.text or "null")
            except ValueError:
                resp.failure("the body is not JSON")
                return
            problem = check(payload) if check else None
            if problem:
                resp.failure(problem)
            else:
                resp.success()

    @staticmethod
    def _field_error(field: str, reason: str | None = None):
        def check(payload: dict) -> str | None:
            errors = payload.get("errors") or []
            if not any(e.get("field") == field and (reason is None or e.get("reason") == reason) for e in errors):
                return f"expected an error on {field} ({reason or 'any reason'}), got {errors}"
            if not {"type", "title", "status", "detail"} <= set(payload):
                return "not an RFC 9457 problem"
            return None

        return check

    # --- valid ------------------------------------------------------------------

    @task(20)
    def send_one(self) -> None:
        self._post("/v1/messages", json.dumps(_message()).encode(), 202, "POST /v1/messages",
                   lambda p: None if p.get("id") and p.get("status") else f"no id/status in {p}")

    @task(2)
    def send_batch(self) -> None:
        body = json.dumps({"messages": [_message(CARRIERS[k % 4]) for k in range(100)]}).encode()
        self._post("/v1/messages/batch", body, 202, "POST /v1/messages/batch (100)",
                   lambda p: None if p.get("accepted") == 100 else f"accepted {p.get('accepted')} of 100")

    # --- invalid ----------------------------------------------------------------

    @task(2)
    def bad_json(self) -> None:
        self._post("/v1/messages", b'{"to": "090-1234-5678", "text": ', 400, "POST /v1/messages [bad JSON]")

    @task(2)
    def unknown_field(self) -> None:
        body = json.dumps({**_message(), "colour": "red"}).encode()
        self._post("/v1/messages", body, 422, "POST /v1/messages [unknown field]", self._field_error("colour"))

    @task(2)
    def bad_number(self) -> None:
        body = json.dumps({"to": random.choice(["12345", "03-1234-5678", "+1 555 0100", "090-abcd-efgh"]), "text": TEXT, "carrier": "docomo"}).encode()
        self._post("/v1/messages", body, 422, "POST /v1/messages [bad number]", self._field_error("to"))

    @task(2)
    def text_over_limit(self) -> None:
        carrier = random.choice(CARRIERS)
        limit = 670 if carrier in ("au", "softbank") else 660
        body = json.dumps({"to": _number(), "text": "あ" * (limit + 1), "carrier": carrier}).encode()
        self._post("/v1/messages", body, 422, "POST /v1/messages [text over limit]", self._field_error("text", "too_long"))

    @task(1)
    def batch_with_bad_items(self) -> None:
        items = [_message("au"), {"to": "12345", "text": TEXT, "carrier": "au"}, {**_message("docomo"), "extra": 1}, _message("rakuten")]
        body = json.dumps({"messages": items}).encode()

        def check(p: dict) -> str | None:
            results = p.get("results") or []
            if p.get("accepted") != 2 or p.get("rejected") != 2 or len(results) != 4:
                return f"expected 2 accepted, 2 rejected, 4 results: {p}"
            if "error" not in results[1] or "error" not in results[2]:
                return "the bad items have no error"
            return None

        self._post("/v1/messages/batch", body, 202, "POST /v1/messages/batch [bad items]", check)

    @task(1)
    def batch_too_large(self) -> None:
        body = json.dumps({"messages": [{"to": "09012345678", "text": "x", "carrier": "au"}] * 1001}).encode()
        self._post("/v1/messages/batch", body, 413, "POST /v1/messages/batch [1001 items]")

    @task(1)
    def no_token(self) -> None:
        with self.client.post("/v1/messages", data=json.dumps(_message()).encode(), headers={"Content-Type": "application/json"},
                              name="POST /v1/messages [no token]", catch_response=True) as resp:
            if resp.status_code == 401:
                resp.success()
            else:
                resp.failure(f"HTTP {resp.status_code}, expected 401")
