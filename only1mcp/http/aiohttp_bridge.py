"""Every use of aiohttp's private attributes, in one place: the seams between our HTTP server and aiohttp.

aiohttp has no public way to put our own protocol on a site's listening socket, to change the limits of
the request handlers it creates once it runs, or to count the connections it holds. This module does
those three things with attributes of aiohttp 3.14 (pinned in pyproject.toml). ``require`` names any
of them that another aiohttp release took away; each worker calls it at start and a unit test calls it,
so an upgrade fails loudly instead of serving wrongly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_runner import BaseSite, TCPSite

from .limits import HttpLimits
from .server import HttpServer

__all__ = ["AiohttpFallback", "HttpSite", "require", "runner_options"]

_SITE_ATTRIBUTES = ("_server", "_bound_port", "_host", "_port", "_backlog", "_reuse_address", "_reuse_port")
_SERVER_ATTRIBUTES = ("_kwargs", "_connections")
_RUNNER_ATTRIBUTES = ("_shutdown_timeout",)

refusals = logging.getLogger("only1mcp.http")


def require(site: object, server: object, runner: object | None = None) -> None:
    """Raise RuntimeError naming each private attribute this module uses that ``site`` (a TCPSite),
    ``server`` (aiohttp's web.Server) or ``runner`` (an AppRunner) lacks."""
    missing = [f"{type(site).__name__}.{name}" for name in _SITE_ATTRIBUTES if not hasattr(site, name)]
    missing += [f"{type(server).__name__}.{name}" for name in _SERVER_ATTRIBUTES if not hasattr(server, name)]
    if runner is not None:
        missing += [f"{type(runner).__name__}.{name}" for name in _RUNNER_ATTRIBUTES if not hasattr(runner, name)]
    if missing:
        raise RuntimeError(f"aiohttp {aiohttp.__version__} lacks {', '.join(missing)}, which "
                           "only1mcp/http/aiohttp_bridge.py relies on; install the aiohttp range pyproject.toml pins "
                           "or port the bridge")


def _handler_limits(limits: HttpLimits) -> dict[str, Any]:
    # aiohttp's parser only sees requests after a hand-over, on a connection it keeps: the same limits
    # apply there (it answers 400 where our server answers 431; it has no 431).
    return {"max_headers": limits.max_header_count, "max_field_size": limits.max_header_size,
            "max_line_size": limits.max_header_size, "keepalive_timeout": limits.keepalive_timeout}


class _ServerLog(logging.LoggerAdapter):  # type: ignore[type-arg]
    """aiohttp's server logger, except that a malformed request (which aiohttp answers 400) is one line at
    INFO, like our server's refusals, instead of a traceback at ERROR (or nothing, below DEBUG)."""

    def exception(self, msg: object, *args: object, exc_info: Any = True, **kwargs: Any) -> None:
        if not _refusal(exc_info):
            self.logger.exception(msg, *args, exc_info=exc_info, **kwargs)

    def debug(self, msg: object, *args: object, exc_info: Any = None, **kwargs: Any) -> None:
        if not _refusal(exc_info):
            self.logger.debug(msg, *args, exc_info=exc_info, **kwargs)


def _refusal(exc: object) -> bool:
    """Log a refused malformed request in one line; False when ``exc`` is not one."""
    if not isinstance(exc, HttpProcessingError):
        return False
    refusals.info("refused %d: malformed HTTP request: %s", exc.code or 400, " ".join(str(exc.message).split()))
    return True


def runner_options(limits: HttpLimits) -> dict[str, Any]:
    """Keyword arguments for ``web.AppRunner``: the request handlers' limits and logger."""
    return {"logger": _ServerLog(logging.getLogger("aiohttp.server")), **_handler_limits(limits)}


class AiohttpFallback:
    """aiohttp's low-level server as the fallback of our HTTP server."""

    __slots__ = ("_server",)

    def __init__(self, server: web.Server) -> None:
        self._server = server

    def protocol(self) -> asyncio.Protocol:
        return self._server()

    def connections(self) -> int:
        return len(self._server._connections)  # the public .connections copies them into a list

    def configure(self, limits: HttpLimits) -> None:
        self._server._kwargs.update(_handler_limits(limits))  # read for each handler it creates


class HttpSite(TCPSite):
    """aiohttp's TCP site, listening with our HTTP server in front of aiohttp's own request handler."""

    __slots__ = ("_drain_timeout", "_http")

    def __init__(self, runner: web.AppRunner, make_server: Callable[[AiohttpFallback], HttpServer], host: str,
                 port: int, backlog: int, drain_timeout: float) -> None:
        super().__init__(runner, host, port, reuse_port=True, backlog=backlog)
        assert runner.server is not None
        require(self, runner.server, runner)
        self._http = make_server(AiohttpFallback(runner.server))
        self._drain_timeout = drain_timeout

    def drain_for(self, seconds: float) -> None:
        """How long the drain that follows may take (a reloaded server.drain_timeout): for our connections
        and for the ones aiohttp holds, whose runner reads it when it shuts down."""
        self._drain_timeout = seconds
        self._runner._shutdown_timeout = seconds

    @property
    def http(self) -> HttpServer:
        return self._http

    async def start(self) -> None:
        await BaseSite.start(self)  # registers the site with its runner; TCPSite.start would listen itself
        loop = asyncio.get_running_loop()
        self._http.start()
        self._server = await loop.create_server(self._http.connection, self._host, self._port,
                                                backlog=self._backlog, reuse_address=self._reuse_address,
                                                reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def stop(self) -> None:
        await super().stop()  # stops accepting
        await self._http.drain(self._drain_timeout)
