"""The worker's aiohttp application: routes and the typed app state."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from . import admin
from .context import WorkerContext
from .keys import CONTEXT

__all__ = ["build_app"]


@web.middleware
async def _count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    context = request.app[CONTEXT]
    context.in_flight += 1
    try:
        return await handler(request)
    finally:
        context.in_flight -= 1


def build_app(context: WorkerContext) -> web.Application:
    app = web.Application(middlewares=[_count_in_flight])
    app[CONTEXT] = context
    app.router.add_get("/health", admin.health)
    app.router.add_get("/api/v1/admin/status", admin.status)
    app.router.add_get("/api/v1/admin/wait", admin.wait)
    return app
