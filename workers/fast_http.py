"""POST /mcp on the worker's own HTTP server (only1mcp/http), with everything else handed to aiohttp.

The server answers the one request that carries the traffic, a legacy-era JSON-RPC POST to /mcp with a
Content-Length body, through the same FrontDoor code aiohttp uses; a 2026-07-28 message goes on to
aiohttp's stateless door. Figures are in docs/architecture.md ("The fast path for POST /mcp").
"""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from only1mcp.config.models import Settings
from only1mcp.http.limits import HttpLimits
from only1mcp.http.request import Request
from only1mcp.observe.scope import RequestScope

from .exchange import Answer
from .front_door import FrontDoor, Unreadable
from .gateway import Gateway

__all__ = ["McpFastPath", "limits_of"]


def limits_of(settings: Settings | None) -> HttpLimits:
    """The HTTP server's limits from the config (the defaults before the first one arrives)."""
    if settings is None:
        return HttpLimits()
    server = settings.server
    return HttpLimits(header_timeout=server.header_timeout, body_timeout=server.body_timeout,
                      keepalive_timeout=server.keepalive_timeout, send_timeout=server.send_timeout,
                      max_connections=server.max_connections, max_header_count=server.max_header_count,
                      max_header_size=server.max_header_size, max_body_size=server.max_body_size)


class McpFastPath:
    """The worker's handler for only1mcp.http.server: answers POST /mcp with the door."""

    __slots__ = ("_context", "_door", "_gateway", "_limits", "_requests", "_settings")

    routes = frozenset({(b"POST", b"/mcp")})

    def __init__(self, door: FrontDoor, gateway: Gateway) -> None:
        self._door = door
        self._context = door.context
        self._gateway = gateway
        self._requests = gateway.requests
        self._settings: Settings | None = None
        self._limits = limits_of(None)

    def limits(self) -> HttpLimits:
        settings = self._gateway.settings  # replaced as a whole on every config version
        if settings is not self._settings:
            self._settings = settings
            self._limits = limits_of(settings)
        return self._limits

    def answer(self, request: Request, body: bytes | memoryview) -> Answer | Coroutine[Any, Any, Answer] | None:
        # Not a coroutine itself: the door's answer is awaited directly by the server (one coroutine less
        # per call); the in-flight count ends in finished().
        door = self._door
        context = self._context
        context.in_flight += 1
        context.requests += 1
        scope = self._requests.begin(request.headers)  # this task's request, for every line it causes
        # _limits is current: the worker refreshes its server's limits (and so ours) on every config change
        answer = door.refuse_early(request, len(body), self._limits.max_body_size)
        if answer is None:
            message = door.parse(body)
            if isinstance(message, Unreadable):
                answer = door.unreadable(request, message)
            elif door.is_modern(request, message):
                return None  # aiohttp's stateless door serves it (a scope of its own)
            else:
                answer = door.answer(request, message)
        if scope.started:  # traced, or its access line drawn: its end is wanted
            return self._ended(scope, answer)
        return answer

    async def _ended(self, scope: RequestScope, answer: Answer | Coroutine[Any, Any, Answer]) -> Answer:
        status = 500  # what the server answers when the door raises
        try:
            if not isinstance(answer, Answer):
                answer = await answer
            status = answer.status
            return answer
        finally:
            self._requests.end(scope, status, "POST", "/mcp")

    def finished(self) -> None:
        self._context.in_flight -= 1
