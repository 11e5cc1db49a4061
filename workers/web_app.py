"""The worker's aiohttp application: routes and the typed app state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from only1mcp.bus import MessageRouter

from . import admin
from .context import WorkerContext
from .dispatch import Dispatcher
from .front_door import FrontDoor
from .gateway import Gateway
from .keys import CONTEXT
from .legacy_sse import LegacySseDoor
from .stateless import StatelessDoor
from .websocket_door import WebSocketDoor

__all__ = ["build_app", "counted"]

# Bodies are limited by server.max_body_size in the front door (it may change on reload); this is only
# aiohttp's outer bound.
_HARD_BODY_LIMIT = 1024**3 + 1


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def counted(context: WorkerContext, handler: Handler) -> Handler:
    """Count the requests this worker serves and those in flight (for drains and load visibility).

    A wrapper on the MCP routes rather than an aiohttp middleware: the middleware chain cost ~5% of a
    proxied call's CPU.
    """

    async def wrapped(request: web.Request) -> web.StreamResponse:
        context.in_flight += 1
        context.requests += 1
        try:
            return await handler(request)
        finally:
            context.in_flight -= 1

    return wrapped


def build_app(context: WorkerContext, gateway: Gateway, inbox: MessageRouter) -> tuple[web.Application, FrontDoor]:
    """The aiohttp application, and the front door that the fast path (workers/fast_http.py) shares.

    Each part that handles messages relayed from other workers registers them in ``inbox``."""
    dispatcher = Dispatcher(gateway)
    stateless = StatelessDoor(gateway, dispatcher)
    door = FrontDoor(gateway, dispatcher, context, stateless)
    sockets = WebSocketDoor(gateway, dispatcher)
    legacy = LegacySseDoor(gateway, dispatcher)
    for part in (gateway, stateless, legacy):
        part.register(inbox)
    app = web.Application(client_max_size=_HARD_BODY_LIMIT)
    app[CONTEXT] = context
    app.router.add_post("/mcp", counted(context, door.post))
    app.router.add_get("/mcp", counted(context, door.get))
    app.router.add_delete("/mcp", counted(context, door.delete))
    app.router.add_get("/ws", counted(context, sockets.handle))
    app.router.add_get("/sse", counted(context, legacy.stream))
    app.router.add_post("/messages", counted(context, legacy.post))
    app.router.add_get("/health", counted(context, admin.health))
    app.router.add_get("/api/v1/admin/status", counted(context, admin.status))
    app.router.add_get("/api/v1/admin/wait", counted(context, admin.wait))

    async def end_streams(_app: web.Application) -> None:
        gateway.streams.close_all()  # GET streams never end by themselves; a drain must not wait for them
        legacy.close_all()
        await stateless.close()
        await sockets.close_all()

    app.on_shutdown.append(end_streams)
    return app, door
