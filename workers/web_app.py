"""The worker's aiohttp application: routes and the typed app state."""

from __future__ import annotations

from aiohttp import web

from . import admin
from .context import WorkerContext
from .keys import CONTEXT

__all__ = ["build_app"]


def build_app(context: WorkerContext) -> web.Application:
    app = web.Application()
    app[CONTEXT] = context
    app.router.add_get("/health", admin.health)
    app.router.add_get("/api/v1/admin/status", admin.status)
    app.router.add_get("/api/v1/admin/wait", admin.wait)
    return app
