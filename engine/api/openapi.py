"""The OpenAPI 3.1 document of the HTTP API (``GET /openapi.json``).

Schemas come from the msgspec types the server decodes and encodes with, so
the document cannot drift from the code; the paths are written out here.
``tests/api/test_openapi.py`` holds real responses to it (schemathesis).
"""

from __future__ import annotations

from typing import Any

import msgspec

from engine.api import Accepted
from engine.api.schema import (
    PROBLEM_TYPES,
    BatchIn,
    ItemError,
    MessageIn,
    MessageOut,
    Problem,
    RefusedItem,
)

__all__ = ["openapi_document"]

_REF = "#/components/schemas/{name}"


def _json(schema: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(name=schema)}}}


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {"schema": {"$ref": _REF.format(name="Problem")}}}}


_TXID = {"X-Transaction-Id": {"description": "names the request in logs and support cases", "schema": {"type": "string"}}}
_RETRY = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}


_READY = {
    "type": "object",
    "required": ["status", "carriers"],
    "properties": {
        "status": {"enum": ["ready", "not_ready", "draining", "carrier_down", "unknown_carrier"]},
        "store": {"type": "string"}, "http": {"type": "string"}, "carrier": {"type": "string"},
        "carriers": {"type": "object", "additionalProperties": {"type": "object", "properties": {
            "ready": {"type": "boolean"}, "binds_up": {"type": "integer"}, "binds": {"type": "integer"},
            "states": {"type": "array", "items": {"type": "object"}},
        }}},
    },
}


def _responses(ok: dict[str, Any], *errors: int) -> dict[str, Any]:
    text = {
        400: "malformed JSON", 401: "missing or wrong token", 403: "address not allowed for the account",
        404: "no such message (or another account's)", 405: "method not allowed", 409: "not cancellable any more",
        413: "body or batch too large", 415: "not JSON", 422: "invalid request: the errors name the fields",
        429: "over the account's request rate", 503: "backpressure: retry after Retry-After seconds",
    }
    out = {code: {**value, "headers": _TXID} for code, value in ok.items()}
    for code in (401, 403, 429, *errors):
        problem = _problem(text[code])
        problem["headers"] = {**_TXID, **(_RETRY if code in (429, 503) else {})}
        out[str(code)] = problem
    return out


def openapi_document() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(
        [MessageIn, BatchIn, Accepted, MessageOut, Problem, ItemError, RefusedItem], ref_template=_REF
    )
    components["BatchOut"] = {
        "title": "BatchOut",
        "description": "A result per item, in order: the accepted message, or why it was refused.",
        "type": "object",
        "properties": {
            "accepted": {"type": "integer"},
            "rejected": {"type": "integer"},
            "results": {"type": "array", "items": {"anyOf": [{"$ref": _REF.format(name="Accepted")}, {"$ref": _REF.format(name="RefusedItem")}]}},
        },
        "required": ["accepted", "rejected", "results"],
    }
    components["Problem"]["properties"]["type"]["description"] = "urn:denpo:problem:<kind>; kinds: " + ", ".join(PROBLEM_TYPES)
    message_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}, "description": "16 hex digits"}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "denpo",
            "version": "1",
            "description": "SMS to the Japanese carriers (au, docomo, SoftBank, Rakuten). 202 means durably stored.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
        "paths": {
            "/v1/messages": {
                "post": {
                    "summary": "Send one SMS",
                    "operationId": "sendMessage",
                    "requestBody": {"required": True, "content": _json("MessageIn")},
                    "responses": _responses({"202": {"description": "stored", "content": _json("Accepted")}}, 400, 413, 415, 422, 503),
                }
            },
            "/v1/messages/batch": {
                "post": {
                    "summary": "Send up to 1,000 SMS; a result per item",
                    "operationId": "sendBatch",
                    "requestBody": {"required": True, "content": _json("BatchIn")},
                    "responses": _responses({"202": {"description": "a result per item", "content": _json("BatchOut")}}, 400, 413, 415, 422, 503),
                }
            },
            "/v1/notifications": {
                "get": {
                    "summary": "Dead notifications: not answered 2xx within their max age (newest first)",
                    "operationId": "deadNotifications",
                    "parameters": [
                        {"name": "state", "in": "query", "required": False, "schema": {"enum": ["dead"]}},
                        {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1, "maximum": 1000}},
                    ],
                    "responses": _responses(
                        {"200": {"description": "the dead notifications", "content": {"application/json": {"schema": {
                            "type": "object", "required": ["notifications"],
                            "properties": {"notifications": {"type": "array", "items": {"type": "object"}}},
                        }}}}},
                        422,
                    ),
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness: the event loop answers (no token)",
                    "operationId": "healthz",
                    "security": [],
                    "responses": {"200": {"description": "alive", "headers": _TXID, "content": {"application/json": {"schema": {"type": "object"}}}}},
                }
            },
            "/readyz": {
                "get": {
                    "summary": "Readiness: the store commits and HTTP serves; each carrier's binds (no token)",
                    "operationId": "readyz",
                    "security": [],
                    "parameters": [{"name": "carrier", "in": "query", "required": False, "schema": {"type": "string"},
                                    "description": "also 503 while this carrier has no bind up"}],
                    "responses": {
                        "200": {"description": "ready", "headers": _TXID, "content": {"application/json": {"schema": _READY}}},
                        "404": {"description": "no such carrier", "headers": _TXID, "content": {"application/json": {"schema": _READY}}},
                        "503": {"description": "not ready: the store does not commit, the service is draining, or the carrier has no bind up",
                                "headers": _TXID, "content": {"application/json": {"schema": _READY}}},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "summary": "Prometheus metrics (no token)",
                    "operationId": "metrics",
                    "security": [],
                    "responses": {"200": {"description": "Prometheus text format (OpenMetrics when the Accept header asks)", "headers": _TXID,
                                          "content": {"text/plain": {"schema": {"type": "string"}},
                                                      "application/openmetrics-text": {"schema": {"type": "string"}}}}},
                }
            },
            "/v1/messages/{id}": {
                "get": {
                    "summary": "A message's status and history",
                    "operationId": "getMessage",
                    "parameters": [message_id],
                    "responses": _responses({"200": {"description": "the message", "content": _json("MessageOut")}}, 404),
                },
                "delete": {
                    "summary": "Cancel a message not yet submitted",
                    "operationId": "cancelMessage",
                    "parameters": [message_id],
                    "responses": _responses({"200": {"description": "cancelled", "content": _json("MessageOut")}}, 404, 409),
                },
            },
        },
    }
