"""Operators' actions from the admin API, applied here and published as state so every worker sees them.

A worker forwards ``ADMIN_ACTION`` on the supervisor's ROUTER; the answer (``ADMIN_RESULT``) comes once the
action is applied and names the state seq that carries it. Drain and restart orders are the
``OPERATOR`` namespace (one entry per backend, written only here); a breaker reset goes through the health
manager, which publishes the backend's routes; a reload is the same reload as SIGHUP's.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from only1mcp.bus import Kind, Namespace, StatePublisher
from only1mcp.bus.messages import AdminAction, AdminResult, AdminVerb
from only1mcp.bus.state import BackendControl
from only1mcp.config.models import Settings

from .config_store import ConfigStore
from .health import HealthManager

__all__ = ["AdminActions"]

log = logging.getLogger("only1mcp.supervisor")

_NO_ORDERS = BackendControl(drained=False, restarts=0)


class AdminActions:
    """Applies one admin action at a time and says how it went, with the HTTP status the worker answers."""

    __slots__ = ("_config", "_health", "_orders", "_publisher", "_reload", "_settings")

    def __init__(self, publisher: StatePublisher, health: HealthManager, config: ConfigStore,
                 reload: Callable[[str], Awaitable[bool]], settings: Callable[[], Settings]) -> None:
        self._publisher = publisher
        self._health = health
        self._config = config
        self._reload = reload
        self._settings = settings
        self._orders: dict[str, BackendControl] = {}

    async def handle(self, request: Any) -> tuple[Kind, AdminResult]:
        """The ROUTER request handler for ``ADMIN_ACTION``."""
        assert isinstance(request, AdminAction)
        if request.verb is AdminVerb.RELOAD:
            status, detail = await self._reload_config()
        else:
            status, detail = self._backend_action(request)
        return Kind.ADMIN_RESULT, AdminResult(request.request_id, status, self._publisher.seq, detail)

    def configure(self, settings: Settings) -> None:
        """After a reload: a removed backend's orders go with it (added again, it starts without them)."""
        names = {b.name for b in settings.enabled_backends()}
        for name in [n for n in self._orders if n not in names]:
            del self._orders[name]
            self._publisher.set(Namespace.OPERATOR, name, None)

    def describe(self) -> dict[str, dict[str, Any]]:
        return {name: {"drained": o.drained, "restarts": o.restarts} for name, o in self._orders.items()}

    # ------------------------------------------------------------ actions

    async def _reload_config(self) -> tuple[int, dict[str, Any]]:
        before = self._config.version
        if not await self._reload("admin API"):
            return 422, {"error": f"the config is invalid; still serving version {before}: "
                                  f"{self._config.last_error}", "version": before}
        return 200, {"version": self._config.version, "changed": self._config.version != before,
                     "needs_restart": [pending.path for pending in self._config.pending_restart]}

    def _backend_action(self, request: AdminAction) -> tuple[int, dict[str, Any]]:
        backend = next((b for b in self._settings().enabled_backends() if b.name == request.backend), None)
        if backend is None:
            known = ", ".join(sorted(b.name for b in self._settings().enabled_backends())) or "none"
            return 404, {"error": f"no enabled backend named '{request.backend}' (backends: {known})"}
        orders = self._orders.get(backend.name, _NO_ORDERS)
        verb = request.verb
        if verb in (AdminVerb.DRAIN, AdminVerb.UNDRAIN):
            drained = verb is AdminVerb.DRAIN
            self._order(backend.name, BackendControl(drained, orders.restarts))
            log.warning("admin: backend '%s' %s", backend.name,
                        "drained: no new calls go to it" if drained else "undrained: it takes calls again")
            return 200, {"backend": backend.name, "drained": drained}
        if verb is AdminVerb.RESET:
            return self._reset(backend.name, request.replica)
        if backend.transport != "stdio":
            return 409, {"error": f"backend '{backend.name}' is reached over {backend.transport}: the gateway runs "
                                  "no process of it to restart (only stdio backends have children)"}
        self._order(backend.name, BackendControl(orders.drained, orders.restarts + 1))
        log.warning("admin: restarting the children of stdio backend '%s'", backend.name)
        return 200, {"backend": backend.name, "restarts": orders.restarts + 1}

    def _reset(self, name: str, replica: int) -> tuple[int, dict[str, Any]]:
        count = self._health.replica_count(name)
        if replica >= count:
            return 404, {"error": f"backend '{name}' has {count} replica(s), numbered from 0; there is no replica "
                                  f"{replica}"}
        reset = self._health.reset(name, replica)
        return 200, {"backend": name, "replicas": reset, "breaker": "closed"}

    def _order(self, name: str, orders: BackendControl) -> None:
        if orders == _NO_ORDERS:
            self._orders.pop(name, None)
            self._publisher.set(Namespace.OPERATOR, name, None)
        else:
            self._orders[name] = orders
            self._publisher.set(Namespace.OPERATOR, name, orders)
