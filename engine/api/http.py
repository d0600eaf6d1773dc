"""The HTTP API of SPEC's "Interfaces we commit to", independent of the server
that carries it: :meth:`HttpApi.handle` takes a parsed request and returns a
:class:`Reply`.  The server (see :mod:`engine.api.server`) only moves bytes.

Every request passes the :class:`~engine.api.auth.Gate` — token (401), address
(403), rate (429) — before its body is looked at.  Bodies are JSON, decoded and
validated by msgspec; every error is an RFC 9457 problem naming the field and
the reason, always 4xx (503 with ``Retry-After`` for backpressure).  202 is
answered only once the message is durably stored (``Engine.submit_many``
returns after the commit).

``/healthz``, ``/readyz`` and ``/metrics`` need no token (they are for the
operator's network).  While :attr:`HttpApi.draining` is set (``denpo serve``
shutting down) every API request is answered 503 with ``Retry-After``; those
three still answer (``/readyz`` 503 ``draining``).
"""

from __future__ import annotations

import codecs
import datetime as _dt
import itertools
import logging
import math
import os
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

import msgspec

from engine.api import SubmitError, SubmitRequest
from engine.api.auth import Gate
from engine.api.schema import DECODE_ERRORS, BatchIn, FieldError, MessageIn, decode_errors, problem_body
from engine.ops.config import Config

__all__ = ["HttpApi", "Reply", "Request"]

log = logging.getLogger("denpo.http")

JSON = "application/json"
PROBLEM = "application/problem+json"
_encode = msgspec.json.Encoder().encode
_decode_message = msgspec.json.Decoder(MessageIn).decode
_decode_batch = msgspec.json.Decoder(BatchIn).decode
_decode_any = msgspec.json.Decoder().decode
_convert = msgspec.convert


class Request(NamedTuple):
    method: str
    path: str  # without the query
    query: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    peer: str | None  # "host:port" of the TCP peer


class Reply(NamedTuple):
    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


class _Refused(Exception):
    """A request refused before it reached the engine."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply


def _problem(kind: str, status: int, detail: str, errors: list[FieldError] | None = None, headers: tuple[tuple[str, str], ...] = (), **extra: Any) -> Reply:
    return Reply(status, problem_body(kind, status, detail, errors, **extra), PROBLEM, headers)


def _submit_error_status(exc: SubmitError) -> int:
    return 503 if exc.temporary else 422


def _error_item(exc: SubmitError) -> dict[str, Any]:
    item: dict[str, Any] = {"field": exc.field, "reason": exc.reason, "detail": exc.detail}
    item.update({k: v for k, v in exc.extra.items() if v is not None})
    if exc.temporary:
        item["temporary"] = True
    return item


class HttpApi:
    """Routes, checks and answers; one per server, sharing the engine."""

    def __init__(self, engine: Any, config: Config, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.engine = engine
        self.config = config
        self.gate = Gate(config.accounts, trusted_proxies=config.http.trusted_proxies, clock=clock)
        self.max_batch = config.http.max_batch
        self.max_body = config.http.max_body_bytes
        self._ids = itertools.count(1)
        self._prefix = os.urandom(4).hex()  # transaction ids unique across restarts
        self.counters: dict[str, int] = {}
        self._openapi: bytes | None = None
        self.draining = False  # set by denpo serve on SIGTERM: API requests get 503 from then on
        self.drain_retry_after = 5  # seconds, the Retry-After of those 503s
        self._metrics: Any = None
        self._store_probe: Any = None

    def reload(self, config: Config) -> None:
        """Accounts, tokens, allowlists, rate limits, proxies and limits from a new config."""
        self.config = config
        self.gate.update(config.accounts, config.http.trusted_proxies)
        self.max_batch = config.http.max_batch
        self.max_body = config.http.max_body_bytes

    def transaction_id(self) -> str:
        return f"{self._prefix}-{next(self._ids):x}"

    # --- the checks every request passes ------------------------------------------------

    def _account(self, request: Request, token: str | None) -> str:
        if not token:
            raise _Refused(_problem("unauthorized", 401, "give the account's token: Authorization: Bearer <token>", headers=(("WWW-Authenticate", 'Bearer realm="denpo"'),)))
        account = self.gate.account_for_token(token)
        if account is None:
            raise _Refused(_problem("unauthorized", 401, "the token is not valid", headers=(("WWW-Authenticate", 'Bearer realm="denpo", error="invalid_token"'),)))
        address = self.gate.client_address(request.peer, request.headers.get("x-forwarded-for"))
        if not self.gate.ip_allowed(account, address):
            raise _Refused(_problem("forbidden_address", 403, f"{address or 'this address'} is not in the account's allow_ips"))
        wait = self.gate.admit(account)
        if wait:
            seconds = max(1, math.ceil(wait)) if math.isfinite(wait) else 60
            raise _Refused(
                _problem(
                    "rate_limited", 429, f"over the account's request rate; retry after {seconds} s",
                    headers=(("Retry-After", str(seconds)),), retry_after=seconds,
                )
            )
        return account

    @staticmethod
    def _bearer(request: Request) -> str | None:
        value = request.headers.get("authorization", "")
        scheme, _, token = value.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    @staticmethod
    def _require_json(request: Request) -> None:
        ctype = request.headers.get("content-type", JSON).split(";", 1)[0].strip().lower()
        if ctype != JSON and not ctype.endswith("+json"):
            raise _Refused(_problem("unsupported_media_type", 415, f"Content-Type {ctype!r}: send application/json"))

    # --- routing ---------------------------------------------------------------------------

    async def handle(self, request: Request) -> Reply:
        """Answer one request; never raises (an unexpected error is logged and
        answered 500 — a bug, which the tests hold at zero)."""
        try:
            return await self._route(request)
        except _Refused as refused:
            return refused.reply
        except Exception:  # noqa: BLE001 - a bug must not take the server down
            log.exception("HTTP %s %s failed", request.method, request.path)
            return _problem("internal", 500, "an unexpected error; it was logged")

    async def _route(self, request: Request) -> Reply:
        method, path = request.method, request.path
        if path in _OPS:
            if method != "GET":
                return _not_allowed("GET")
            if path == "/healthz":
                return Reply(200, b'{"status":"ok"}')
            if path == "/readyz":
                return await self._readyz(request)
            return self._metrics_reply(request)
        if self.draining and (path.startswith("/v1/") or path == "/cgi-bin/sendsms"):
            return self._draining_reply(path)
        if path == "/v1/messages":
            if method != "POST":
                return _not_allowed("POST")
            return await self._post_message(request)
        if path == "/v1/messages/batch":
            if method != "POST":
                return _not_allowed("POST")
            return await self._post_batch(request)
        if path.startswith("/v1/messages/"):
            message_id = path[len("/v1/messages/") :]
            if method == "GET":
                return await self._get_message(request, message_id)
            if method == "DELETE":
                return await self._cancel(request, message_id)
            return _not_allowed("GET, DELETE")
        if path == "/v1/notifications":
            if method != "GET":
                return _not_allowed("GET")
            account = self._account(request, self._bearer(request))
            query = parse_query(request.query)
            if query.get("state", "dead") != "dead":
                return _problem("validation", 422, "state: only dead notifications are listed", [FieldError("state", "bad_value", "dead")])
            try:
                limit = min(1000, max(1, int(query.get("limit", "100"))))
            except ValueError:
                return _problem("validation", 422, "limit: a number", [FieldError("limit", "bad_type", "a number")])
            return Reply(200, _encode({"notifications": await self.engine.dead_notifications(account, limit)}))
        if path == "/cgi-bin/sendsms":
            if method not in ("GET", "POST"):
                return _not_allowed("GET, POST")
            return await self._kannel_sendsms(request)
        if path == "/openapi.json":
            if self._openapi is None:
                from engine.api.openapi import openapi_document

                self._openapi = _encode(openapi_document())
            return Reply(200, self._openapi)
        return _problem("no_route", 404, f"no endpoint {path}")

    # --- operations: readiness, metrics, draining ---------------------------------------------

    async def _readyz(self, request: Request) -> Reply:
        from engine.ops.metrics import StoreProbe, readiness

        if self._store_probe is None:
            self._store_probe = StoreProbe(self.engine)
        carrier = parse_query(request.query).get("carrier") or None
        status, body = await readiness(self.engine, self._store_probe, draining=self.draining, carrier=carrier)
        headers = (("Retry-After", str(self.drain_retry_after)),) if self.draining else ()
        return Reply(status, _encode(body), JSON, headers)

    def _metrics_reply(self, request: Request) -> Reply:
        if self._metrics is None:
            from engine.ops.metrics import Metrics

            self._metrics = Metrics(self.engine, self)
        accept = request.headers.get("accept", "")
        if not (accept.isascii() and accept.replace("\t", " ").isprintable()):
            accept = ""  # prometheus_client copies the asked version into Content-Type
        try:
            body, content_type = self._metrics.render(accept)
        except TypeError:  # prometheus_client compares a non-numeric Accept version with ints
            body, content_type = self._metrics.render("")
        return Reply(200, body, content_type)

    def _draining_reply(self, path: str) -> Reply:
        retry = str(self.drain_retry_after)
        detail = "the service is shutting down; retry shortly (another instance, or this one once restarted)"
        if path == "/cgi-bin/sendsms":
            return _text(503, "Temporary failure, try again later", (("Retry-After", retry),))
        return _problem(
            "backpressure", 503, detail, [FieldError("", "shutting_down", detail)],
            headers=(("Retry-After", retry),), retry_after=self.drain_retry_after,
        )

    # --- sending ----------------------------------------------------------------------------

    async def _post_message(self, request: Request) -> Reply:
        account = self._account(request, self._bearer(request))
        self._require_json(request)
        try:
            message = _decode_message(request.body)
        except DECODE_ERRORS as exc:
            errors = decode_errors(exc)
            kind = "malformed_json" if errors[0].reason == "malformed_json" else "validation"
            return _problem(kind, 400 if kind == "malformed_json" else 422, errors[0].detail or "invalid body", errors)
        try:
            submit = self._to_request(account, message)
        except SubmitError as refused:  # (one name per exception type: see codec._decode_frame)
            return _problem("validation", 422, refused.detail, [FieldError(refused.field, refused.reason, refused.detail)])
        (result,) = await self.engine.submit_many([submit])
        if isinstance(result, SubmitError):
            return self._refused(result)
        return Reply(202, _encode(result))  # a retry (duplicate) gets the same answer

    async def _post_batch(self, request: Request) -> Reply:
        account = self._account(request, self._bearer(request))
        self._require_json(request)
        try:
            batch = _decode_batch(request.body)
            items: list[MessageIn | list[FieldError]] = list(batch.messages)
        except DECODE_ERRORS as exc:
            errors = decode_errors(exc)
            if errors[0].reason == "malformed_json":
                return _problem("malformed_json", 400, errors[0].detail, errors)
            decoded = self._items_one_by_one(request.body)
            if decoded is None:  # the envelope itself is wrong
                return _problem("validation", 422, errors[0].detail or "invalid body", errors)
            items = decoded
        if len(items) > self.max_batch:
            return _problem(
                "batch_too_large", 413, f"{len(items)} messages; at most {self.max_batch} per batch",
                [FieldError("messages", "too_many", f"at most {self.max_batch}")], limit=self.max_batch, count=len(items),
            )
        if not items:
            return _problem("validation", 422, "no messages", [FieldError("messages", "too_short", "at least one message")])
        results: list[Any] = [None] * len(items)
        requests: list[SubmitRequest] = []
        where: list[int] = []
        for k, item in enumerate(items):
            if isinstance(item, list):
                results[k] = {"error": _batch_errors(item, k)}
                continue
            try:
                requests.append(self._to_request(account, item))
                where.append(k)
            except SubmitError as refused:  # (one name per exception type: see codec._decode_frame)
                results[k] = {"error": _error_item(refused)}
        accepted = 0
        temporary = 0
        if requests:
            for k, result in zip(where, await self.engine.submit_many(requests)):
                if isinstance(result, SubmitError):
                    results[k] = {"error": _error_item(result)}
                    temporary += result.temporary
                else:
                    results[k] = result
                    accepted += 1
        body = {"accepted": accepted, "rejected": len(items) - accepted, "results": results}
        if accepted == 0 and temporary == len(items):
            return _problem(
                "backpressure", 503, "nothing was accepted: the engine is busy; retry shortly",
                headers=(("Retry-After", "1"),), retry_after=1, results=results,
            )
        return Reply(202, _encode(body))

    @staticmethod
    def _items_one_by_one(body: bytes) -> list[MessageIn | list[FieldError]] | None:
        """A batch that did not decode as a whole: each item on its own, so one
        bad item costs only its own result (None when the envelope is wrong)."""
        try:
            raw = _decode_any(body)
        except DECODE_ERRORS:
            return None
        if not isinstance(raw, dict) or set(raw) != {"messages"} or not isinstance(raw["messages"], list):
            return None
        items: list[MessageIn | list[FieldError]] = []
        for value in raw["messages"]:
            try:
                items.append(_convert(value, MessageIn))
            except msgspec.ValidationError as exc:
                items.append(decode_errors(exc))
        return items

    def _to_request(self, account: str, m: MessageIn) -> SubmitRequest:
        send_at = m.send_at
        if isinstance(send_at, _dt.datetime):
            if send_at.tzinfo is None:
                raise SubmitError("send_at", "bad_value", "give a time zone offset (e.g. +09:00) or epoch seconds")
            send_at = send_at.timestamp()
        return SubmitRequest(
            account=account, to=m.to, text=m.text, carrier=m.carrier, client_ref=m.client_ref, sender=m.sender,
            priority=m.priority, validity=m.validity, send_at=send_at,
        )

    @staticmethod
    def _refused(exc: SubmitError) -> Reply:
        status = _submit_error_status(exc)
        if status == 503:
            retry = int(exc.extra.get("retry_after") or 1)
            return _problem("backpressure", 503, exc.detail, headers=(("Retry-After", str(retry)),), retry_after=retry)
        return _problem(
            "validation", 422, exc.detail, [FieldError(exc.field, exc.reason, exc.detail)],
            limit=exc.extra.get("limit"), count=exc.extra.get("count"),
        )

    # --- Kannel-compatible sendsms -----------------------------------------------------------

    async def _kannel_sendsms(self, request: Request) -> Reply:
        """Kannel's ``/cgi-bin/sendsms``: the same parameters, the same plain-text answers,
        so an application written for Kannel switches by changing the URL."""
        params = _kannel_params(request)
        password = params.get("password", b"").decode("latin-1")
        username = params.get("username", b"").decode("latin-1")
        try:
            account = self._account(request, password)
        except _Refused as refused:
            if refused.reply.status == 401:
                return _text(403, "Authorization failed for sendsms")
            return _text(refused.reply.status, _problem_detail(refused.reply), refused.reply.headers)
        if account != username:
            return _text(403, "Authorization failed for sendsms")
        charset = params.get("charset", b"").decode("latin-1").strip() or ("UTF-16BE" if params.get("coding") == b"2" else "UTF-8")
        try:
            if "\x00" in charset:  # (the native build's decode would read the name up to it)
                raise ValueError("embedded null character")
            text = params.get("text", b"").decode(_CHARSETS.get(charset.upper(), charset))
        except (LookupError, ValueError) as exc:  # ValueError: a codec's UnicodeError, a NUL in the name
            return _text(400, f"Rejected: text: cannot be read as {charset} ({exc.__class__.__name__})")
        receivers = params.get("to", b"").decode("latin-1").split()
        if not receivers:
            return _text(400, "Missing receiver number, rejected")
        if not text:
            return _text(400, "Missing text, rejected")
        extra: dict[str, Any] = {}
        try:
            if params.get("dlr-url"):
                extra["dlr_url"] = params["dlr-url"].decode("utf-8")
                extra["dlr_mask"] = int(params.get("dlr-mask", b"31") or 31)
            if params.get("validity"):
                extra["validity"] = float(params["validity"]) * 60  # Kannel: minutes
            if params.get("deferred"):
                extra["send_at"] = time.time() + float(params["deferred"]) * 60
        except (ValueError, UnicodeDecodeError):
            return _text(400, "Rejected: dlr-mask, validity and deferred are numbers")
        smsc = params.get("smsc", b"").decode("latin-1") or None
        sender = params.get("from", b"").decode("latin-1") or None
        requests = [
            SubmitRequest(account=account, to=to, text=text, carrier=smsc, sender=sender, **extra) for to in receivers
        ]
        results = await self.engine.submit_many(requests)
        errors = [r for r in results if isinstance(r, SubmitError)]
        if not errors:
            return _text(202, "0: Accepted for delivery")
        if len(errors) == len(results) and all(e.temporary for e in errors):
            retry = str(int(errors[0].extra.get("retry_after") or 1))
            return _text(503, "Temporary failure, try again later", (("Retry-After", retry),))
        if len(errors) == len(results):
            first = errors[0]
            return _text(400, f"Rejected: {first.field}: {first.detail}")
        return _text(202, f"0: Accepted for delivery ({len(results) - len(errors)} of {len(results)} receivers; "
                     f"rejected: {', '.join(f'{r.to}: {e.detail}' for r, e in zip(requests, results) if isinstance(e, SubmitError))})")

    # --- reading and cancelling ---------------------------------------------------------------

    async def _own_message(self, account: str, message_id: str) -> Any:
        view = await self.engine.status(message_id)
        if view is None or view.account != account:  # another account's message does not exist for this one
            raise _Refused(_problem("not_found", 404, f"no message {message_id}"))
        return view

    async def _get_message(self, request: Request, message_id: str) -> Reply:
        account = self._account(request, self._bearer(request))
        view = await self._own_message(account, message_id)
        return Reply(200, _encode(_view_dict(view)))

    async def _cancel(self, request: Request, message_id: str) -> Reply:
        account = self._account(request, self._bearer(request))
        view = await self._own_message(account, message_id)
        if await self.engine.cancel(message_id):
            view = await self.engine.status(message_id) or view
            return Reply(200, _encode(_view_dict(view)))
        view = await self.engine.status(message_id) or view
        return _problem("not_cancellable", 409, f"message {message_id} is {view.status}: only messages not yet submitted can be cancelled")


_OPS = frozenset(("/healthz", "/readyz", "/metrics"))


def _view_dict(view: Any) -> dict[str, Any]:
    return {
        "id": view.id, "status": view.status, "carrier": view.carrier, "to": view.to, "client_ref": view.client_ref,
        "parts": view.parts, "billing_units": view.billing_units, "billable_units": view.billable_units,
        "error": view.error, "history": view.history, "submitted_at": view.submitted_at, "done_at": view.done_at,
    }


def _batch_errors(errors: list[FieldError], k: int) -> dict[str, Any]:
    first = errors[0]
    return {"field": first.field, "reason": first.reason, "detail": first.detail, "index": k}


_CHARSETS = {"UCS-2": "utf-16-be", "UCS2": "utf-16-be", "UTF-16": "utf-16-be", "SHIFT_JIS": "shift_jis", "SJIS": "shift_jis"}


def _kannel_params(request: Request) -> dict[str, bytes]:
    """Query (GET) or form body (POST) parameters as raw bytes: ``text`` is in the
    request's ``charset``, decoded only once that is known.  The first of repeated
    keys wins; as ``urllib.parse.parse_qsl(..., keep_blank_values=True)`` reads them,
    at a third of its cost (its per-escape loop was a fifth of a sendsms request)."""
    raw = request.query.encode("latin-1")
    if request.method == "POST" and request.body:
        raw = raw + b"&" + request.body if raw else request.body
    out: dict[str, bytes] = {}
    for piece in raw.split(b"&"):
        if not piece:
            continue
        key, _, value = piece.partition(b"=")
        name = _unquote_plus(key).decode("latin-1")
        if name not in out:
            out[name] = _unquote_plus(value)
    return out


_LONE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _unquote_plus(data: bytes) -> bytes:
    """``+`` → space, ``%XX`` → its byte, a ``%`` not followed by two hex digits kept
    as it is (as urllib does) — by the C escape decoder: ``%XX`` becomes ``\\xXX``."""
    data = data.replace(b"+", b" ")
    if b"%" not in data:
        return data
    data = data.replace(b"\\", b"\\\\")  # a backslash of the input stays one
    try:
        return codecs.escape_decode(data.replace(b"%", b"\\x"))[0]
    except ValueError:  # a lone "%": kept, as "\\x25"
        return codecs.escape_decode(_LONE_PERCENT.sub(rb"\\x25", data).replace(b"%", b"\\x"))[0]


def _text(status: int, text: str, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, text.encode("utf-8"), "text/plain; charset=utf-8", headers)


def _problem_detail(reply: Reply) -> str:
    try:
        return str(msgspec.json.decode(reply.body).get("detail", ""))
    except msgspec.DecodeError:
        return ""


def _not_allowed(allow: str) -> Reply:
    return _problem("method_not_allowed", 405, f"use {allow}", headers=(("Allow", allow),))


def parse_query(query: str) -> dict[str, str]:
    """``a=1&b=%E3%81%82`` → {"a": "1", "b": "あ"} (the first of repeated keys wins)."""
    out: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, errors="replace"):
        out.setdefault(key, value)
    return out
