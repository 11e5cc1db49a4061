"""The worker's aiohttp application: routes and the typed app state."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from . import admin
from .context import WorkerContext
from .dispatch import Dispatcher
from .front_door import FrontDoor
from .gateway import Gateway
from .keys import CONTEXT
from .origins import OriginPolicy

__all__ = ["build_app"]

# Bodies are limited by server.max_body_size in the front door (it may change on reload); this is only
# aiohttp's outer bound.
_HARD_BODY_LIMIT = 1024**3 + 1


@web.middleware
async def _count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    context = request.app[CONTEXT]
    context.in_flight += 1
    context.requests += 1
    try:
        return await handler(request)
    finally:
        context.in_flight -= 1


def build_app(context: WorkerContext, gateway: Gateway) -> web.Application:
    settings = gateway.settings
    server = settings.server if settings is not None else None
    policy = OriginPolicy(context.spec.host, server.allowed_origins if server else [],
                          server.allowed_hosts if server else [])
    door = FrontDoor(gateway, Dispatcher(gateway), policy, context)
    app = web.Application(middlewares=[_count_in_flight], client_max_size=_HARD_BODY_LIMIT)
    app[CONTEXT] = context
    app.router.add_post("/mcp", door.post)
    app.router.add_get("/mcp", door.get)
    app.router.add_delete("/mcp", door.delete)
    app.router.add_get("/health", admin.health)
    app.router.add_get("/api/v1/admin/status", admin.status)
    app.router.add_get("/api/v1/admin/wait", admin.wait)

    async def end_streams(_app: web.Application) -> None:
        gateway.streams.close_all()  # GET streams never end by themselves; a drain must not wait for them

    app.on_shutdown.append(end_streams)
    return app
