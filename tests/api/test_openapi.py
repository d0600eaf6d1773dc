"""The OpenAPI document holds for real responses: schemathesis generates requests
from it against `denpo serve` (embedded default, a subprocess) and checks every
response — no 5xx, status codes and bodies as documented."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

TOKEN = "openapi-test-token-0123456789"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    proc = subprocess.Popen(
        [sys.executable, "-m", "engine", "serve", "--http", "127.0.0.1:0", "--data-dir", str(folder / "var")],
        stdout=subprocess.PIPE, env={**os.environ, "DENPO_DEMO_TOKEN": TOKEN}, cwd=folder,
    )
    try:
        assert proc.stdout is not None
        ready = json.loads(proc.stdout.readline())
        assert ready["event"] == "ready"
        yield ready["http"]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_responses_match_the_document(server):
    # schemathesis as a library (its pytest plugin does not run on this pytest):
    # one hypothesis run per operation, its cases sent to the running server
    api = schemathesis.openapi.from_url(f"{server}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.label for op in operations} >= {"POST /v1/messages", "POST /v1/messages/batch", "GET /v1/messages/{id}", "DELETE /v1/messages/{id}"}
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case):
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
            response = case.call(base_url=server)
            assert response.status_code < 500, response.text
            assert "x-transaction-id" in {k.lower() for k in response.headers}
            # schema-valid data may still be refused: a mobile number's ranges,
            # a carrier's character limits and the account's senders are not
            # JSON Schema; every such refusal is a documented 422 problem
            case.validate_response(response, excluded_checks=[positive_data_acceptance])

        check()
