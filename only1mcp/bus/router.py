"""A table from message kind to handler, filled by each subsystem that cares about a kind.

Used for the supervisor's reports and a worker's relay inbox: a subsystem registers the kinds it handles
at construction, so nothing routes messages by hand and an unknown kind is one logged line.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from only1mcp.observe.scope import adopt, leave

from .codec import Envelope
from .messages import Kind

__all__ = ["Handler", "MessageRouter"]

log = logging.getLogger("only1mcp.bus")

Handler = Callable[[Envelope], None]


class MessageRouter:
    __slots__ = ("_handlers", "_name", "unhandled")

    def __init__(self, name: str) -> None:
        self._name = name
        self._handlers: dict[Kind, Handler] = {}
        self.unhandled = 0

    def register(self, kind: Kind, handler: Handler) -> None:
        if kind in self._handlers:
            raise ValueError(f"{self._name}: {kind.name} already has a handler")
        self._handlers[kind] = handler

    def on(self, *kinds: Kind) -> Callable[[Handler], Handler]:
        """Decorator form of ``register`` for several kinds."""

        def add(handler: Handler) -> Handler:
            for kind in kinds:
                self.register(kind, handler)
            return handler

        return add

    def handles(self, kind: Kind) -> bool:
        return kind in self._handlers

    def dispatch(self, envelope: Envelope) -> None:
        handler = self._handlers.get(envelope.kind)
        if handler is None:
            self.unhandled += 1
            log.warning("%s: no handler for %s from %s pid %d", self._name, envelope.kind.name,
                        envelope.sender.role.name.lower(), envelope.sender.pid)
            return
        # A report a client request caused names that request: the lines its handler writes name it too.
        request_id = getattr(envelope.payload, "request_id", None)
        token = adopt(request_id) if request_id else None
        try:
            handler(envelope)
        except Exception:  # one bad message must not stop every later one; logged once with its kind
            log.exception("%s: handling %s from %s pid %d failed", self._name, envelope.kind.name,
                          envelope.sender.role.name.lower(), envelope.sender.pid)
        finally:
            if token is not None:
                leave(token)

    def describe(self) -> dict[str, Any]:
        return {"handled": sorted(kind.name for kind in self._handlers), "unhandled": self.unhandled}
