"""Tools each lazy session's searches found (``proxy.lazy.expose_found``), as this worker knows them."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["FoundTools"]

# Sessions remembered per worker; past it the one found longest ago is forgotten (its list shrinks back to
# the meta-tools, and a search adds to it again).
_MAX_SESSIONS = 10_000


class FoundTools:
    """Session id -> the names its searches returned, in the order found. Every worker holds the same
    (searches are relayed to all), so a session's list is the same whichever worker answers it."""

    __slots__ = ("_sessions",)

    def __init__(self) -> None:
        self._sessions: dict[str, dict[str, None]] = {}

    def add(self, sid: str, names: Iterable[str]) -> bool:
        """Remember ``names`` for ``sid``; True when one of them is new to that session."""
        known = self._sessions.pop(sid, None)
        if known is None:
            known = {}
            if len(self._sessions) >= _MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
        self._sessions[sid] = known  # most recent last
        before = len(known)
        known.update(dict.fromkeys(names))
        return len(known) > before

    def of(self, sid: str) -> list[str]:
        return list(self._sessions.get(sid, ()))
