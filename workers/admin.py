"""Health and admin endpoints served by every worker."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from only1mcp.bus import Kind
from only1mcp.bus.messages import Request, Status

from .context import WorkerContext
from .exchange import AiohttpExchange, Answer, web_response
from .guard import Guard
from .keys import BACKEND_TOKENS, CONTEXT, ISSUER_KEYS

__all__ = ["authorized", "health", "identity", "status", "supervisor_status", "wait"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

log = logging.getLogger("only1mcp.worker")

_STATUS_TIMEOUT = 2.0
_MAX_WAIT = 60.0


def identity(context: WorkerContext) -> dict[str, Any]:
    """Which worker answers, and the state it holds (``served_by`` in admin answers)."""
    return {
        "pid": context.pid,
        "slot": context.spec.slot,
        "seq": context.state.seq,
        "config_version": context.state.config_version,
        "catalog_version": context.state.catalog_version,
        "in_flight": context.in_flight,
        "uptime": round(time.time() - context.started_at, 3),
    }


def health(guard: Guard) -> Handler:
    """Liveness of this worker, and the state it holds. Open to anyone: with authentication on, a request
    without a valid credential learns nothing beyond liveness."""

    async def handle(request: web.Request) -> web.Response:
        if not guard.proves(AiohttpExchange(request)):
            return web.json_response({"status": "ok"})
        return web.json_response({"status": "ok", **identity(request.app[CONTEXT])})

    return handle


def authorized(guard: Guard, action: str, handler: Handler) -> Handler:
    """An admin route: with authentication on, only for a request whose credential is valid and whose roles
    allow ``admin:<action>`` (403 otherwise)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        caller = await guard.authenticate(AiohttpExchange(request))
        if isinstance(caller, Answer):
            return web_response(caller)
        if caller is not None and not guard.permissions(caller).allows_admin(action):
            log.info("refused 403: %s may not use admin:%s", caller.key, action)
            return web.json_response({"error": f"admin:{action} is not allowed for this credential's roles "
                                               "(rbac.roles.<role>.allow)"}, status=403)
        return await handler(request)

    return handle


async def supervisor_status(context: WorkerContext) -> dict[str, Any]:
    """The supervisor's view, fetched over the bus (not a hot path); 503 when it does not answer."""
    try:
        reply = await context.replica.request(Kind.STATUS_REQUEST, Request, timeout=_STATUS_TIMEOUT)
    except TimeoutError:
        log.warning("admin status: the supervisor did not answer within %.0fs", _STATUS_TIMEOUT)
        raise web.HTTPServiceUnavailable(
            text=json.dumps({"error": f"the supervisor did not answer within {_STATUS_TIMEOUT:.0f}s; it may be "
                                      "overloaded or restarting"}), content_type="application/json") from None
    return dict(reply.payload.status) if isinstance(reply.payload, Status) else {}


async def status(request: web.Request) -> web.Response:
    """The supervisor's view of every worker, and the answering worker's own."""
    context = request.app[CONTEXT]
    body = await supervisor_status(context)
    body["served_by"] = {**identity(context), "jwks": request.app[ISSUER_KEYS].describe(),
                         "oauth": request.app[BACKEND_TOKENS].describe()}
    return web.json_response(body)


def _number(request: web.Request, name: str, default: float | None, low: float, high: float) -> float:
    raw = request.query.get(name)
    if raw is None:
        if default is None:
            raise web.HTTPBadRequest(text=f"missing query parameter '{name}'")
        return default
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"query parameter '{name}' must be a number, got {raw!r}") from None
    if not low <= value <= high:
        raise web.HTTPBadRequest(text=f"query parameter '{name}' must be between {low:g} and {high:g}")
    return value


async def wait(request: web.Request) -> web.Response:
    """Long-poll until this worker holds ``config_version`` (e.g. after a reload): 200, or 504 on timeout."""
    context = request.app[CONTEXT]
    version = int(_number(request, "config_version", None, 0, 2**53))
    timeout = _number(request, "timeout", 10.0, 0, _MAX_WAIT)
    reached = await context.wait_for_config(version, timeout)
    body = {"reached": reached, **identity(context)}
    if not reached:
        body["error"] = f"config version {version} did not arrive within {timeout:g}s"
    return web.json_response(body, status=200 if reached else 504)
