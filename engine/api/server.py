"""Carries :class:`~engine.api.http.HttpApi` over HTTP/1.1 (aiohttp's server).

The server only moves bytes: it enforces the body-size limit before reading a
body (413), adds ``X-Transaction-Id`` to every response and logs it with the
request, and hands everything else to :meth:`HttpApi.handle`.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from aiohttp import web

from engine.api.http import PROBLEM, HttpApi, Reply, Request
from engine.api.schema import problem_body

__all__ = ["HttpServer"]

log = logging.getLogger("denpo.http")


class HttpServer:
    """``async with HttpServer(api, host, port):`` serves until the block ends."""

    def __init__(self, api: HttpApi, host: str = "127.0.0.1", port: int = 8080, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self.api = api
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application(client_max_size=self.api.max_body, handler_args={"max_field_size": 16384})
        app.router.add_route("*", "/{tail:.*}", self._serve)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=self.ssl_context, reuse_address=True)
        await site.start()
        server = site._server  # noqa: SLF001 - the bound port when 0 was asked for
        if self.port == 0 and server is not None and server.sockets:
            self.port = server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "HttpServer":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, request: web.Request) -> web.Response:
        txid = self.api.transaction_id()
        length = request.content_length
        if length is not None and length > self.api.max_body:
            reply = Reply(413, problem_body("body_too_large", 413, f"{length} bytes; at most {self.api.max_body}"), PROBLEM)
        else:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                reply = Reply(413, problem_body("body_too_large", 413, f"more than {self.api.max_body} bytes"), PROBLEM)
            else:
                peer = request.transport.get_extra_info("peername") if request.transport is not None else None
                reply = await self.api.handle(
                    Request(
                        request.method, request.path, request.query_string,
                        {k.lower(): v for k, v in request.headers.items()}, body, _peer_text(peer),
                    )
                )
        if reply.status >= 400:
            log.info("HTTP %s %s -> %d", request.method, request.path, reply.status, extra={"transaction_id": txid})
        headers = {"X-Transaction-Id": txid, **dict(reply.headers)}
        return web.Response(status=reply.status, body=reply.body, content_type=reply.content_type.split(";")[0], headers=headers)


def _peer_text(peer: Any) -> str | None:
    if not peer:
        return None
    host = peer[0]
    return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
