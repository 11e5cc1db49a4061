"""Session mailboxes: messages for a client's GET stream, numbered and kept for Last-Event-ID replay.

Whatever must reach a client outside a call's own response stream (a resource update, a request from a
backend when the call's stream is gone) is addressed by session: any worker sends it here, it gets the
session's next event number, and it is published to every worker; the worker holding that session's GET
stream writes it. A reconnecting stream asks for the events after its Last-Event-ID.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from only1mcp.bus import Envelope, Kind
from only1mcp.bus.relay import BROADCAST, RelayPublisher

__all__ = ["Mailboxes"]


class _Box:
    __slots__ = ("events", "next", "touched")

    def __init__(self, size: int) -> None:
        self.events: deque[tuple[int, Any]] = deque(maxlen=size)
        self.next = 1
        self.touched = time.monotonic()


class Mailboxes:
    __slots__ = ("_boxes", "_idle", "_relay", "_size")

    def __init__(self, relay: RelayPublisher, size: int, idle: float) -> None:
        self._relay = relay
        self._size = size
        self._idle = idle
        self._boxes: dict[str, _Box] = {}

    def send(self, sid: str, message: Any) -> int:
        box = self._boxes.get(sid)
        if box is None:
            box = self._boxes[sid] = _Box(self._size)
        number = box.next
        box.next += 1
        box.touched = time.monotonic()
        if self._size:
            box.events.append((number, message))
        self._relay.publish(BROADCAST, Envelope(Kind.SESSION_EVENT, number, sid, message))
        return number

    def replay(self, request: Any) -> list[list[Any]]:
        """Events of ``request['sid']`` numbered above ``request['after']``."""
        box = self._boxes.get(str(request.get("sid"))) if isinstance(request, dict) else None
        if box is None:
            return []
        after = int(request.get("after") or 0)
        box.touched = time.monotonic()
        return [[number, message] for number, message in box.events if number > after]

    def drop(self, sid: str) -> None:
        self._boxes.pop(sid, None)

    def expire(self) -> int:
        """Forget mailboxes idle longer than a session can live; returns how many were dropped."""
        cutoff = time.monotonic() - self._idle
        stale = [sid for sid, box in self._boxes.items() if box.touched < cutoff]
        for sid in stale:
            del self._boxes[sid]
        return len(stale)

    def __len__(self) -> int:
        return len(self._boxes)
