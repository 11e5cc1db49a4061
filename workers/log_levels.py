"""The level each client session asked for with ``logging/setLevel``, as this worker knows it.

Backends are shared by every client, so a backend logs at the most verbose level any client asked for; the
gateway then passes each session only the log messages its own level allows. Every worker holds the same
(each setLevel is relayed to all), so whichever worker relays a call's log messages filters them alike. A
worker started later knows only the levels set after it started: until a session sets its level again,
it is passed what its backends send, as before any setLevel.
"""

from __future__ import annotations

from typing import Any

from only1mcp.protocol.jsonrpc import Code, JsonRpcError
from only1mcp.protocol.modern import LOG_LEVELS as LEVELS

__all__ = ["LEVELS", "SessionLogLevels", "checked_level"]

_RANK = {level: rank for rank, level in enumerate(LEVELS)}
# Sessions remembered per worker; past it the one set longest ago is forgotten (it gets everything again).
_MAX_SESSIONS = 10_000


def checked_level(level: str) -> str:
    """``level`` when MCP defines it; -32602 naming the ones it does otherwise."""
    if level not in _RANK:
        raise JsonRpcError(Code.INVALID_PARAMS, f"logging/setLevel: unknown level '{level}'; use one of "
                           f"{', '.join(LEVELS)}")
    return level


class SessionLogLevels:
    """Session id -> the least severe level it wants, most recently set last."""

    __slots__ = ("_levels",)

    def __init__(self) -> None:
        self._levels: dict[str, int] = {}

    def set(self, sid: str, level: str) -> None:
        rank = _RANK.get(level)
        if rank is None:
            return  # checked where the client sent it; a relayed one is trusted as that worker's
        self._levels.pop(sid, None)
        if len(self._levels) >= _MAX_SESSIONS:
            del self._levels[next(iter(self._levels))]
        self._levels[sid] = rank

    def allows(self, sid: str, level: Any) -> bool:
        """Whether a log message of ``level`` goes to session ``sid`` (a level MCP does not define is passed
        on rather than hidden)."""
        wanted = self._levels.get(sid)
        return wanted is None or _RANK.get(level, len(LEVELS)) >= wanted
