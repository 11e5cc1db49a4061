"""The fields of an audit line that take some computing: its time, the session's hash, the request's target.

A line is one JSON object followed by a newline, encoded with the data path's codec (ids exactly as the
client wrote them). Field by field, see docs/architecture.md ("The audit trail").
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

from only1mcp.protocol.codec import dumps

__all__ = ["Clock", "SessionHashes", "encode", "session_hash", "target_of"]

# Where each method names what it acts on: the params member (or ref member) holding the name or URI.
_TARGET_KEYS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri", "resources/subscribe": "uri",
                "resources/unsubscribe": "uri", "tasks/get": "taskId", "tasks/result": "taskId",
                "tasks/cancel": "taskId"}


_MILLIS = [f".{ms:03d}Z" for ms in range(1000)]
_HASHES_KEPT = 4096  # sessions whose hash is remembered: a session's calls come one after another


class Clock:
    """RFC 3339 UTC times with milliseconds. The part up to the seconds is formatted once per second (strftime
    costs more than the rest of the line), the milliseconds come from a table."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def stamp(self, now: float) -> str:
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return self._prefix + _MILLIS[int((now - second) * 1000)]


class SessionHashes:
    """``of(sid)``: what identifies a session in the trail. Never the id itself: the id is sealed into the
    client's Mcp-Session-Id, and a line must not let its reader act as the session. 128 bits of SHA-256
    keep sessions apart; the hashes of recent sessions are remembered (a lookup instead of a hash per line)."""

    __slots__ = ("_known",)

    def __init__(self) -> None:
        self._known: dict[str, str] = {}

    def of(self, sid: str) -> str:
        hashed = self._known.get(sid)
        if hashed is None:
            hashed = session_hash(sid)
            if len(self._known) >= _HASHES_KEPT:
                self._known.clear()
            self._known[sid] = hashed
        return hashed


def session_hash(sid: str) -> str:
    """The hash of one session id (see ``SessionHashes``)."""
    return hashlib.sha256(sid.encode()).hexdigest()[:32]


def target_of(method: str, params: Any) -> Any:
    """The tool, prompt, resource URI or task a request acts on; None for methods that act on none."""
    if not isinstance(params, dict):
        return None
    key = _TARGET_KEYS.get(method)
    if key is not None:
        return params.get(key)
    if method == "completion/complete":
        ref = params.get("ref")
        if isinstance(ref, dict):
            return ref.get("name", ref.get("uri"))
    return None


def encode(record: dict[str, Any]) -> bytes:
    """One line: the record as JSON and a newline (written with one write call)."""
    return dumps(record) + b"\n"
