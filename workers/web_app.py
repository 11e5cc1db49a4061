"""The worker's aiohttp application: routes and the typed app state."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from only1mcp.bus import MessageRouter
from only1mcp.observe.requests import RequestLog

from . import admin
from .admin_api import AdminApi, openapi_document, status_page
from .context import WorkerContext
from .dispatch import Dispatcher
from .exchange import web_response
from .front_door import FrontDoor
from .gateway import Gateway
from .guard import Guard
from .keys import BACKEND_TOKENS, CONTEXT, ISSUER_KEYS
from .legacy_sse import LegacySseDoor
from .metrics_routes import WorkerGauges, metrics_route
from .resource_metadata import PATHS, ResourceMetadata
from .stateless import StatelessDoor
from .websocket_door import WebSocketDoor

__all__ = ["build_app", "guarded"]

# Bodies are limited by server.max_body_size in the front door (it may change on reload); this is only
# aiohttp's outer bound.
_HARD_BODY_LIMIT = 1024**3 + 1


# A profile's endpoint: the door's path, then the profile's name (config names: letters, digits, _ . -)
_PROFILE = "/{}/{{profile:[A-Za-z0-9_.-]{{1,64}}}}"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def guarded(context: WorkerContext, guard: Guard, requests: RequestLog, handler: Handler) -> Handler:
    """Every route: the request's scope (its id in every line it causes, its access line, its span), the
    Host and Origin check first (admin and health included), then the handler, counted in the requests this
    worker serves and those in flight (for drains and load visibility).

    A wrapper on each route rather than an aiohttp middleware: the middleware chain cost ~5% of a proxied
    call's CPU.
    """

    async def wrapped(request: web.Request) -> web.StreamResponse:
        scope = requests.begin(request.headers)
        status = 500  # aiohttp's answer when the handler raises
        try:
            refused = guard.origin(request.headers.get("Host"), request.headers.get("Origin"))
            if refused is not None:
                response = web_response(refused)
            else:
                context.in_flight += 1
                context.requests += 1
                try:
                    response = await handler(request)
                finally:
                    context.in_flight -= 1
            status = response.status
            return response
        finally:
            if scope.started:
                requests.end(scope, status, request.method, request.path)

    return wrapped


def build_app(context: WorkerContext, gateway: Gateway, inbox: MessageRouter,
              gauges: WorkerGauges) -> tuple[web.Application, FrontDoor]:
    """The aiohttp application, and the front door that the fast path (workers/fast_http.py) shares.

    Each part that handles messages relayed from other workers registers them in ``inbox``."""
    guard = Guard(gateway)
    dispatcher = Dispatcher(gateway)
    stateless = StatelessDoor(gateway, dispatcher, guard)
    door = FrontDoor(gateway, dispatcher, context, stateless, guard)
    sockets = WebSocketDoor(gateway, dispatcher, guard)
    legacy = LegacySseDoor(gateway, dispatcher, guard)
    for part in (gateway, stateless, legacy):
        part.register(inbox)
    app = web.Application(client_max_size=_HARD_BODY_LIMIT)
    app[CONTEXT] = context
    app[ISSUER_KEYS] = gateway.issuer_keys
    app[BACKEND_TOKENS] = gateway.backend_tokens
    api = AdminApi(gateway.traffic, lambda: gateway.settings)

    def admin_route(method: str, action: str, handler: Handler, path: str | None = None) -> tuple[str, str, Handler]:
        return method, path or f"/api/v1/admin/{action}", admin.authorized(guard, action, handler)

    async def openapi(_request: web.Request) -> web.Response:
        return openapi_document()

    async def page(_request: web.Request) -> web.Response:
        return status_page()

    routes: list[tuple[str, str, Handler]] = [
        ("POST", "/mcp", door.post), ("GET", "/mcp", door.get), ("DELETE", "/mcp", door.delete),
        ("GET", "/ws", sockets.handle), ("GET", "/sse", legacy.stream), ("POST", "/messages", legacy.post),
        # Each profile's endpoints (config `profiles`); the doors read the name from the path
        ("POST", _PROFILE.format("mcp"), door.post), ("GET", _PROFILE.format("mcp"), door.get),
        ("DELETE", _PROFILE.format("mcp"), door.delete), ("GET", _PROFILE.format("ws"), sockets.handle),
        ("GET", _PROFILE.format("sse"), legacy.stream),
        ("GET", "/health", admin.health(guard)),
        admin_route("GET", "status", admin.status),
        admin_route("GET", "wait", admin.wait),
        admin_route("GET", "backends", api.backends),
        admin_route("GET", "workers", api.workers),
        admin_route("GET", "catalog", api.catalog),
        admin_route("GET", "config", api.config),
        admin_route("GET", "reloads", api.reloads),
        admin_route("POST", "reload", api.reload),
        *(admin_route("POST", action, api.backend_action, f"/api/v1/admin/backends/{{name}}/{{action:{action}}}")
          for action in ("drain", "undrain", "reset", "restart")),
        ("GET", "/api/v1/admin/openapi.json", openapi),  # the API's description is no secret
        ("GET", "/ui", page),  # a static page: its data comes from the admin API, which checks the caller
        # one handler at both paths: /metrics is where Prometheus looks by default
        ("GET", "/metrics", admin.authorized(guard, "metrics", metrics_route(gateway, gauges))),
        ("GET", "/api/v1/admin/metrics", admin.authorized(guard, "metrics", metrics_route(gateway, gauges))),
        *(("GET", path, ResourceMetadata(gateway).get) for path in PATHS),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, guarded(context, guard, gateway.requests, handler))

    async def end_streams(_app: web.Application) -> None:
        gateway.streams.close_all()  # GET streams never end by themselves; a drain must not wait for them
        legacy.close_all()
        await stateless.close()
        await sockets.close_all()

    app.on_shutdown.append(end_streams)
    return app, door
