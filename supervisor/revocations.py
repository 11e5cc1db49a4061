"""Sessions their clients ended (DELETE): published as state until their tokens would expire anyway.

Expiry is kept in a heap, so housekeeping costs O(expired · log n), not a pass over every revocation.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable

from only1mcp.bus import Envelope, Kind, MessageRouter, Namespace, StatePublisher
from only1mcp.bus.messages import SessionRevoke
from only1mcp.bus.state import Revocation

__all__ = ["RevocationList"]


class RevocationList:
    __slots__ = ("_expiry", "_forget", "_publisher")

    def __init__(self, publisher: StatePublisher, forget: Callable[[str], None]) -> None:
        self._publisher = publisher
        self._forget = forget  # what else the supervisor keeps for a session (its mailbox)
        self._expiry: list[tuple[float, str]] = []

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.SESSION_REVOKE, self._revoke)

    def _revoke(self, envelope: Envelope) -> None:
        revoke = envelope.payload
        assert isinstance(revoke, SessionRevoke)
        self._forget(revoke.sid)
        self.revoke(revoke.sid, revoke.expires)

    def revoke(self, sid: str, expires: float) -> None:
        if expires <= time.time():
            return  # expired already: nobody can use it
        self._publisher.set(Namespace.REVOKED, sid, Revocation(expires))
        heapq.heappush(self._expiry, (expires, sid))

    def expire(self, now: float | None = None) -> int:
        """Drop revocations whose sessions have expired anyway; returns how many."""
        now = time.time() if now is None else now
        dropped = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, sid = heapq.heappop(self._expiry)
            self._publisher.set(Namespace.REVOKED, sid, None)
            dropped += 1
        return dropped

    def __len__(self) -> int:
        return len(self._expiry)
