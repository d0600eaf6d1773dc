"""The simulator's HTTP control endpoint, for tests, benchmarks and fault schedules.

    GET  /stats                     counters (?numbers=1 adds every tracked number's submit times)
    GET  /numbers/{number}          submit times of one destination number
    POST /mo        {"from", "to", "text", "system_id"?}   inject an MO message
    POST /knobs     {"throughput_cap": 500, ...}          change knobs at run time
    POST /disconnect                drop every SMPP connection now
    GET  /healthz

Errors are JSON ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from engine.ops.config import ConfigError

if TYPE_CHECKING:
    from carriers.smsc import SmscSimulator

__all__ = ["start_control_server"]


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class _BadRequest(Exception):
    pass


async def _body(request: web.Request) -> dict[str, Any]:
    try:
        data = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"malformed JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _BadRequest("expected a JSON object")
    return data


@web.middleware
async def _errors(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _BadRequest as exc:
        return _json({"error": str(exc)}, 400)


def _app(sim: "SmscSimulator") -> web.Application:
    routes = web.RouteTableDef()

    @routes.get("/healthz")
    async def healthz(request: web.Request) -> web.Response:
        return _json({"ok": True, "carrier": sim.settings.carrier})

    @routes.get("/stats")
    async def stats(request: web.Request) -> web.Response:
        return _json(sim.stats(numbers=request.query.get("numbers") in ("1", "true")))

    @routes.get("/numbers/{number}")
    async def number(request: web.Request) -> web.Response:
        return _json({"number": request.match_info["number"], "submit_times": sim.submit_times(request.match_info["number"])})

    @routes.post("/mo")
    async def mo(request: web.Request) -> web.Response:
        data = await _body(request)
        missing = [k for k in ("from", "to", "text") if not isinstance(data.get(k), str) or not data.get(k)]
        if missing:
            return _json({"error": f"missing or empty: {', '.join(missing)}"}, 400)
        try:
            parts = sim.inject_mo(source=data["from"], destination=data["to"], text=data["text"], system_id=data.get("system_id"))
        except (LookupError, ValueError) as exc:
            return _json({"error": str(exc)}, 409 if isinstance(exc, LookupError) else 400)
        return _json({"parts": parts})

    @routes.post("/knobs")
    async def knobs(request: web.Request) -> web.Response:
        data = await _body(request)
        try:
            settings = sim.update(**data)
        except ConfigError as exc:
            return _json({"error": "; ".join(str(p) for p in exc.problems)}, 400)
        return _json({f: getattr(settings, f) for f in settings.__struct_fields__})

    @routes.post("/disconnect")
    async def disconnect(request: web.Request) -> web.Response:
        return _json({"dropped": sim.disconnect_all()})

    app = web.Application(middlewares=[_errors])
    app.add_routes(routes)
    return app


async def start_control_server(sim: "SmscSimulator", host: str, port: int) -> tuple[web.AppRunner, int]:
    """Serve the control API; returns the runner (``await runner.cleanup()`` to stop) and the port."""
    runner = web.AppRunner(_app(sim), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server  # aiohttp exposes no public accessor for the bound port
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, bound
