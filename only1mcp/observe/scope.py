"""The request being served, as the log sees it: its id, its session, its backend, its trace.

A ``RequestScope`` is made by the door a request comes in at and set in a context variable; asyncio copies
the context into every task a request starts, so every line logged while serving it (in the dispatcher, a
backend session, a task spawned for it) finds the scope without it being passed along. The formatter reads
the scope only when a line is written: a request that logs nothing pays for one object and one ``set``.

This module holds the one context variable (logging's per-request state); everything else receives it
through ``current`` and ``enter``.
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spans import Span

__all__ = ["RequestScope", "adopt", "current", "enter", "leave", "process_prefix", "request_id", "scope_class"]

_SCOPE: ContextVar[RequestScope | None] = ContextVar("only1mcp_request", default=None)


def process_prefix() -> str:
    """What makes this process's request ids its own: 6 random hex digits, drawn once per scope source."""
    return os.urandom(3).hex()


class RequestScope:
    """One request (or one message of a WebSocket or legacy SSE stream). ``rid`` is the request id: the
    client's ``X-Request-Id`` when it sent a usable one, else ``<process prefix>-<number>`` formatted only
    when read. ``sid`` is the session id (logged as its hash, never itself), ``backend`` the backend last
    called for it, ``span`` its trace span when it is traced, ``method`` its JSON-RPC method once known (set
    only for a request whose end is wanted), ``error`` the JSON-RPC error code it was answered with.

    Every field has its default on the class, and ``RequestLog`` makes a subclass per process holding its
    prefix: a request sets only what it has (its number, on the usual path). Measured: a slotted class
    whose ``__init__`` set all ten fields cost 2.5 times as much to make, on every request.
    """

    _prefix = ""
    number = 0
    given: str | None = None
    span: Span | None = None
    started = 0.0  # perf_counter() when its end is wanted (traced, or its access line drawn); else 0
    drawn = False  # its access line is written
    sid: str | None = None
    backend: str | None = None
    method: str | None = None
    error: int | None = None

    @property
    def rid(self) -> str:
        given = self.given
        return given if given is not None else f"{self._prefix}-{self.number:x}"


def scope_class(prefix: str) -> type[RequestScope]:
    """The scopes of one process's requests: ids under ``prefix``."""
    return type("ProcessScope", (RequestScope,), {"_prefix": prefix})


# The variable's own methods, not functions around them: one Python call less on every request.
# enter(scope): make ``scope`` the current request of this task (and of the tasks it starts from now on).
enter = _SCOPE.set
# current(): the request the running code serves, or None outside any request.
current = _SCOPE.get


def request_id() -> str:
    """The current request's id ('' outside any request): what a report to the supervisor carries."""
    scope = _SCOPE.get()
    return scope.rid if scope is not None else ""


def adopt(rid: str) -> Any:
    """Make a request id received from another process (a report over the bus) the current one while its
    handler runs; returns the token to ``leave`` with."""
    scope = RequestScope()
    scope.given = rid
    return _SCOPE.set(scope)


def leave(token: Any) -> None:
    _SCOPE.reset(token)
