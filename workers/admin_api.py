"""The admin API's read endpoints and actions (``/api/v1/admin/…``), its OpenAPI document and the status page.

Reads combine the supervisor's status (over the bus) with this worker's state; actions are applied by the
supervisor (``ADMIN_ACTION``) and answered once this worker holds the state that carries them, so a read
that follows on any connection sees the effect here, and on every other worker within the state's
propagation time (milliseconds).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from importlib import resources
from typing import Any

from aiohttp import web

from only1mcp.admin.masking import masked_settings
from only1mcp.admin.views import backends_view, catalog_view, reloads_view, workers_view
from only1mcp.bus import Kind
from only1mcp.bus.messages import AdminAction, AdminResult, AdminVerb
from only1mcp.config.models import Settings

from .admin import identity, supervisor_status
from .context import WorkerContext
from .keys import CONTEXT

__all__ = ["AdminApi", "openapi_document", "status_page"]

log = logging.getLogger("only1mcp.worker")

_ACTION_TIMEOUT = 5.0
_RELOAD_TIMEOUT = 60.0  # a reload waits for discovery of added backends
_VERBS = {verb.value: verb for verb in AdminVerb if verb is not AdminVerb.RELOAD}

Traffic = Callable[[], dict[str, dict[str, Any]]]  # backend -> requests, errors, latency (only1mcp.admin.traffic)


def _asset(name: str) -> bytes:
    return resources.files("only1mcp.admin").joinpath(name).read_bytes()


def openapi_document() -> web.Response:
    """The OpenAPI document of the admin API (only1mcp/admin/openapi.json)."""
    return web.Response(body=_asset("openapi.json"), content_type="application/json")


def status_page() -> web.Response:
    """The status page: one static file; it reads the admin API from the browser."""
    return web.Response(body=_asset("ui.html"), content_type="text/html", charset="utf-8",
                        headers={"Cache-Control": "no-cache"})


class AdminApi:
    """The handlers; ``traffic`` reads the request counters and latency of every process, ``settings`` is the
    worker's current validated config (None before the first)."""

    __slots__ = ("_settings", "_traffic")

    def __init__(self, traffic: Traffic, settings: Callable[[], Settings | None]) -> None:
        self._traffic = traffic
        self._settings = settings

    # ------------------------------------------------------------ reads

    async def backends(self, request: web.Request) -> web.Response:
        context = request.app[CONTEXT]
        status = await supervisor_status(context)
        traffic = self._traffic()
        return web.json_response({"backends": backends_view(status, context.state, traffic),
                                  "gateway": traffic.get("", {}), "served_by": identity(context)})

    async def workers(self, request: web.Request) -> web.Response:
        context = request.app[CONTEXT]
        status = await supervisor_status(context)
        return web.json_response({**workers_view(status), "served_by": identity(context)})

    async def catalog(self, request: web.Request) -> web.Response:
        context = request.app[CONTEXT]
        return web.json_response({**catalog_view(context.state), "served_by": identity(context)})

    async def config(self, request: web.Request) -> web.Response:
        context = request.app[CONTEXT]
        config = context.state.config
        settings = self._settings()
        return web.json_response({
            "version": context.state.config_version,
            "source": config.source if config is not None else "",
            "digest": config.digest if config is not None else "",
            "settings": masked_settings(settings) if settings is not None else {},
            "served_by": identity(context),
        })

    async def reloads(self, request: web.Request) -> web.Response:
        context = request.app[CONTEXT]
        status = await supervisor_status(context)
        return web.json_response({**reloads_view(status), "served_by": identity(context)})

    # ------------------------------------------------------------ actions

    async def reload(self, request: web.Request) -> web.Response:
        return await _act(request.app[CONTEXT], AdminVerb.RELOAD, "", -1, _RELOAD_TIMEOUT)

    async def backend_action(self, request: web.Request) -> web.Response:
        name, action = request.match_info["name"], request.match_info["action"]
        verb = _VERBS.get(action)
        if verb is None:
            raise _json_error(web.HTTPNotFound, f"unknown action '{action}'; the actions on a backend are "
                              f"{', '.join(sorted(_VERBS))}")
        replica = _replica(request) if verb is AdminVerb.RESET else -1
        return await _act(request.app[CONTEXT], verb, name, replica, _ACTION_TIMEOUT)


def _replica(request: web.Request) -> int:
    raw = request.query.get("replica")
    if raw is None:
        return -1
    if not raw.isdigit():
        raise _json_error(web.HTTPBadRequest, f"query parameter 'replica' must be a replica number (0, 1, …), got "
                          f"{raw!r}; leave it out to reset every replica")
    return int(raw)


def _json_error(kind: type[web.HTTPException], message: str) -> web.HTTPException:
    log.info("admin: refused %d: %s", kind.status_code, message)
    return kind(text=json.dumps({"error": message}), content_type="application/json")


async def _act(context: WorkerContext, verb: AdminVerb, backend: str, replica: int, timeout: float) -> web.Response:
    try:
        reply = await context.replica.request(
            Kind.ADMIN_ACTION, lambda rid: AdminAction(rid, verb, backend, replica), timeout=timeout)
    except TimeoutError:
        log.warning("admin %s: the supervisor did not answer within %.0fs", verb.value, timeout)
        return web.json_response({"error": f"the supervisor did not answer within {timeout:.0f}s; the action may "
                                           "still be applied: check GET /api/v1/admin/backends or reloads"},
                                 status=503)
    result = reply.payload
    assert isinstance(result, AdminResult)
    # Answer once this worker routes by the new state: what the caller does next sees the effect.
    await context.wait_for(lambda: context.state.seq >= result.seq, _ACTION_TIMEOUT)
    body = {"action": verb.value, **result.detail, "seq": result.seq, "served_by": identity(context)}
    if result.status >= 400:
        log.info("admin %s %s: refused %d: %s", verb.value, backend, result.status, result.detail.get("error"))
    return web.json_response(body, status=result.status)
