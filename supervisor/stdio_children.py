"""What the stdio host reports about the children of shared stdio backends.

Shown in admin status, followed by discovery and health (a child that exits is a failed probe at once),
and, when the host itself dies, used to end each child's whole process group: a child's own parent-death
signal ends the child, not what it started (an ``npx`` launcher's server, for one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable
from typing import Any

from only1mcp.bus import Envelope, Kind, MessageRouter
from only1mcp.bus.messages import BackendRemoved, ChildState, ChildStatus

__all__ = ["StdioChildren"]

log = logging.getLogger("only1mcp.supervisor")

Listener = Callable[[ChildStatus], None]


class StdioChildren:
    __slots__ = ("_listeners", "_status")

    def __init__(self, listeners: list[Listener]) -> None:
        self._listeners = listeners
        self._status: dict[tuple[str, int], ChildStatus] = {}

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.CHILD_STATUS, self._child_status)
        router.register(Kind.BACKEND_REMOVED, self._removed)

    def _child_status(self, envelope: Envelope) -> None:
        status = envelope.payload
        assert isinstance(status, ChildStatus)
        self._status[(status.backend, status.replica)] = status
        for listener in self._listeners:
            listener(status)

    def _removed(self, envelope: Envelope) -> None:
        assert isinstance(envelope.payload, BackendRemoved)
        for key in [k for k in self._status if k[0] == envelope.payload.backend]:
            del self._status[key]

    def host_gone(self, stopping: bool) -> None:
        """The host died: end what its children left running, and (unless the gateway is stopping) tell the
        listeners they are down until the new host reports."""
        for (backend, replica), status in list(self._status.items()):
            if status.pid:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(status.pid, signal.SIGKILL)  # each child leads its own process group
            if stopping:
                continue
            down = ChildStatus(backend, replica, ChildState.RESTARTING, None, status.restarts,
                               "the stdio host died; it is being restarted", status.sessions)
            self._status[(backend, replica)] = down
            for listener in self._listeners:
                listener(down)

    def describe(self) -> list[dict[str, Any]]:
        return [{"backend": s.backend, "replica": s.replica, "state": s.state.value, "pid": s.pid,
                 "restarts": s.restarts, "last_error": s.last_error, "sessions": s.sessions}
                for _, s in sorted(self._status.items())]
