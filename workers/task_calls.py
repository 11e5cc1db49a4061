"""The task requests of 2025-11-25, passed through: tasks/get, tasks/result and tasks/cancel go to the backend
and replica named in the task id; tasks/list merges every backend's list, each session seeing its own tasks
only (ids and ownership: workers/tasks.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from only1mcp.catalog.view import CatalogView
from only1mcp.sessions import SessionInfo

from . import tasks
from .calls import Channel
from .gateway import Gateway
from .params import text_param

__all__ = ["Forward", "Handler", "TaskCalls"]

log = logging.getLogger("only1mcp.worker")

Handler = Callable[[SessionInfo, Any, dict[str, Any], Channel | None], Awaitable[Any]]


class Forward(Protocol):
    """How the dispatcher sends one request to one backend (``Dispatcher._forward``)."""

    def __call__(self, session: SessionInfo, request_id: Any, backend: str, method: str, params: dict[str, Any],
                 channel: Channel | None, *, replica: int | None = None) -> Awaitable[Any]: ...


class TaskCalls:
    """The tasks/* handlers of one dispatcher."""

    __slots__ = ("_forward", "_gateway", "_view")

    def __init__(self, gateway: Gateway, forward: Forward, view: Callable[[], CatalogView]) -> None:
        self._gateway = gateway
        self._forward = forward
        self._view = view

    def handlers(self) -> dict[str, Handler]:
        return {"tasks/get": self._call("tasks/get"), "tasks/result": self._call("tasks/result"),
                "tasks/cancel": self._call("tasks/cancel"), "tasks/list": self._list}

    def tagger(self) -> tasks.Tagger:
        sealer = self._gateway.sealer
        assert sealer is not None  # no session, and so no task, exists before the gateway has its secrets
        return sealer.tag

    def _call(self, method: str) -> Handler:
        """tasks/get, tasks/result and tasks/cancel: to the backend named in the task id."""

        async def handle(session: SessionInfo, request_id: Any, params: dict[str, Any],
                         channel: Channel | None) -> Any:
            tag = self.tagger()
            backend, replica, original = tasks.route(text_param(params, "taskId", method), session.sid, tag)
            router = self._gateway.routers.get(backend)
            if router is None or replica >= router.count:
                raise tasks.unknown_task(params["taskId"])
            result = await self._forward(session, request_id, backend, method, {**params, "taskId": original},
                                         channel, replica=replica)
            return tasks.expose_result(backend, replica, result, session.sid, tag)

        return handle

    async def _list(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                    channel: Channel | None) -> Any:
        routers = self._gateway.routers
        targets = [(name, replica) for name, status in self._view().backends.items()
                   if (status.get("capabilities") or {}).get("tasks", {}).get("list") is not None
                   and name in routers for replica in range(routers[name].count)]
        results = await asyncio.gather(*(self._forward(session, request_id, name, "tasks/list", {}, None,
                                                       replica=replica) for name, replica in targets),
                                       return_exceptions=True)
        merged: list[dict[str, Any]] = []
        tag = self.tagger()
        for (name, replica), outcome in zip(targets, results, strict=True):
            if isinstance(outcome, BaseException):
                log.info("tasks/list on backend '%s' replica %d failed: %s", name, replica, outcome)
                continue
            # The backend lists every task of the session the gateway shares among clients: only those this
            # session created are shown (every worker hears of each task's creation: TASK_OWNED)
            owners = self._gateway.task_owners
            merged += [tasks.expose_task(name, replica, t, session.sid, tag) for t in (outcome or {}).get("tasks", [])
                       if isinstance(t, dict) and owners.get((name, f"{replica}:{t.get('taskId')}")) == session.sid]
        return {"tasks": merged}
