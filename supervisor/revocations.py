"""Sessions their clients ended (DELETE): published as state until their tokens would expire anyway, and,
with a configured session secret, recorded on disk so they stay ended across restarts and hosts.

Expiry is kept in a heap, so housekeeping costs O(expired · log n), not a pass over every revocation.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Callable, Iterable

from only1mcp.bus import Envelope, Kind, MessageRouter, Namespace, StatePublisher
from only1mcp.bus.messages import SessionRevoke
from only1mcp.bus.state import Revocation

from .revocation_log import RevocationLog

__all__ = ["RevocationList"]

log = logging.getLogger("only1mcp.supervisor")

_FOLLOW = 1.0  # seconds between looks at the log for what other hosts appended


class RevocationList:
    __slots__ = ("_expiry", "_forget", "_known", "_log", "_publisher")

    def __init__(self, publisher: StatePublisher, forget: Callable[[str], None],
                 record: RevocationLog | None = None) -> None:
        self._publisher = publisher
        self._forget = forget  # what else the supervisor keeps for a session (its mailbox)
        self._log = record
        self._expiry: list[tuple[float, str]] = []
        self._known: dict[str, float] = {}

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.SESSION_REVOKE, self._revoke)

    def load(self) -> int:
        """Publish what the log holds (at start); returns how many are still in force."""
        if self._log is None:
            return 0
        self._log.prune()
        self._take(self._log.read_new())
        if self._known:
            log.info("%d session(s) ended by their clients stay ended (from the revocation log)", len(self._known))
        return len(self._known)

    async def follow(self) -> None:
        """Pick up what other hosts sharing the log append."""
        while self._log is not None:
            await asyncio.sleep(_FOLLOW)
            self._take(self._log.read_new())

    def _take(self, entries: Iterable[tuple[str, float]]) -> None:
        for sid, expires in entries:
            if sid not in self._known:
                self._publish(sid, expires)

    def _revoke(self, envelope: Envelope) -> None:
        revoke = envelope.payload
        assert isinstance(revoke, SessionRevoke)
        self._forget(revoke.sid)
        self.revoke(revoke.sid, revoke.expires)

    def revoke(self, sid: str, expires: float) -> None:
        if expires <= time.time() or sid in self._known:
            return  # expired already (nobody can use it), or known
        self._publish(sid, expires)
        if self._log is not None:
            try:
                self._log.append(sid, expires)
            except OSError as exc:  # still in force here and on every worker; only the restart loses it
                log.error("cannot record a revocation in %s: %s; it holds until this gateway stops",
                          self._log, exc)

    def _publish(self, sid: str, expires: float) -> None:
        if expires <= time.time():
            return
        self._known[sid] = expires
        self._publisher.set(Namespace.REVOKED, sid, Revocation(expires))
        heapq.heappush(self._expiry, (expires, sid))

    def expire(self, now: float | None = None) -> int:
        """Drop revocations whose sessions have expired anyway; returns how many."""
        now = time.time() if now is None else now
        dropped = 0
        while self._expiry and self._expiry[0][0] <= now:
            _, sid = heapq.heappop(self._expiry)
            self._known.pop(sid, None)
            self._publisher.set(Namespace.REVOKED, sid, None)
            dropped += 1
        if self._log is not None and dropped:
            self._log.prune(now)
        return dropped

    def __len__(self) -> int:
        return len(self._known)

    @property
    def ttl(self) -> float | None:
        return self._log.ttl if self._log is not None else None

    @ttl.setter
    def ttl(self, ttl: float | None) -> None:
        if self._log is not None and ttl is not None:
            self._log.ttl = ttl  # a reloaded sessions.ttl: how long a day's file must be kept
