"""What the HTTP server asks of the code that uses it: a handler that answers some requests itself, and a
fallback server (aiohttp) that takes over a connection for every other request."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

from .limits import HttpLimits
from .request import Request

__all__ = ["Fallback", "Handler", "Reply"]


class Reply(Protocol):
    """A handler's answer: a whole response, or (``streamed``) the end of a stream already sent through
    ``Request.open_stream`` and ``Request.write``."""

    status: int
    body: bytes
    headers: dict[str, str]
    streamed: bool


class Handler(Protocol):
    """Decides which requests the server answers itself and answers them."""

    routes: frozenset[tuple[bytes, bytes]]
    """(method, target) of the requests the server answers itself when they have a Content-Length body
    within ``HttpLimits.max_body_size``; every other request goes to the fallback."""

    def limits(self) -> HttpLimits:
        """The limits in force now; read on every sweep, so a new value applies to open connections too."""

    def answer(self, request: Request, body: bytes | memoryview) -> Reply | Coroutine[Any, Any, Reply] | None:
        """The answer to a request with its whole body: at once, or a coroutine producing it (no extra
        coroutine on the data path for a handler that has one already); None hands this request (its bytes
        and all that follow on the connection) to the fallback."""

    def finished(self) -> None:
        """Called once after each ``answer`` call, when its answer is sent or has failed."""


class Fallback(Protocol):
    """The server that takes over connections the handler does not want (aiohttp)."""

    def protocol(self) -> asyncio.Protocol:
        """A new protocol to take over one connection."""

    def connections(self) -> int:
        """How many connections it holds now (they count against the connection cap)."""

    def configure(self, limits: HttpLimits) -> None:
        """Apply the same head and keep-alive limits to the connections it takes over from now on."""
