"""Session mailboxes: messages for a client's GET stream, numbered and kept for Last-Event-ID replay.

Whatever must reach a client outside a call's own response stream (a resource update, a request from a
backend when the call's stream is gone) is addressed by session: any worker sends it here, it gets the
session's next event number, and it is published to every worker; the worker holding that session's GET
stream writes it. A reconnecting stream asks for the events after its Last-Event-ID.

What is kept is bounded per session (``sessions.event_buffer`` events) and in total
(``sessions.event_buffer_bytes``): past the total, the oldest events of any session are dropped first.
"""

from __future__ import annotations

import time
from collections import deque

from only1mcp.bus import Envelope, Kind, MessageRouter, Sender, Target
from only1mcp.bus.messages import ALL_WORKERS, Replay, ReplayRequest, SessionEvent, SessionSend
from only1mcp.bus.relay import RelayPublisher

__all__ = ["Mailboxes"]


class _Box:
    __slots__ = ("events", "next", "touched")

    def __init__(self) -> None:
        self.events: deque[tuple[int, bytes]] = deque()
        self.next = 1
        self.touched = time.monotonic()


class Mailboxes:
    __slots__ = ("_boxes", "_bytes", "_idle", "_kept", "_order", "_per_session", "_relay", "_sender", "_total",
                 "dropped")

    def __init__(self, relay: RelayPublisher, sender: Sender, per_session: int, total_bytes: int,
                 idle: float) -> None:
        self._relay = relay
        self._sender = sender
        self._per_session = per_session
        self._total = total_bytes
        self._idle = idle
        self._boxes: dict[str, _Box] = {}
        # Every kept event in arrival order, for dropping the oldest first when the total is over.
        self._order: deque[tuple[_Box, int]] = deque()
        self._bytes = 0
        self._kept = 0
        self.dropped = 0

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.SESSION_SEND, self._send)

    def configure(self, per_session: int, total_bytes: int, idle: float) -> None:
        """Apply reloaded limits (the next event enforces them)."""
        self._per_session, self._total, self._idle = per_session, total_bytes, idle

    def _send(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, SessionSend)
        self.send(message.sid, message.message)

    def send(self, sid: str, message: bytes) -> int:
        box = self._boxes.get(sid)
        if box is None:
            box = self._boxes[sid] = _Box()
        number = box.next
        box.next += 1
        box.touched = time.monotonic()
        if self._per_session and len(message) <= self._total:
            box.events.append((number, message))
            self._order.append((box, number))
            self._bytes += len(message)
            self._kept += 1
            while len(box.events) > self._per_session:
                self._forget_oldest_of(box)
            while self._bytes > self._total:
                self._drop_oldest()
            if len(self._order) > 2 * self._kept + 1024:
                self._compact()
        self._relay.publish(Envelope.of(Kind.SESSION_EVENT, self._sender,
                                        SessionEvent(Target(ALL_WORKERS), sid, number, message)))
        return number

    def _forget_oldest_of(self, box: _Box) -> None:
        _, message = box.events.popleft()
        self._bytes -= len(message)
        self._kept -= 1
        self.dropped += 1  # its entry in _order is skipped when it comes up

    def _drop_oldest(self) -> None:
        while self._order:
            box, number = self._order.popleft()
            if box.events and box.events[0][0] == number:
                self._forget_oldest_of(box)
                return

    def replay(self, request: ReplayRequest) -> tuple[Kind, Replay]:
        """Events of ``request.sid`` numbered above ``request.after``."""
        box = self._boxes.get(request.sid)
        events = [(n, m) for n, m in box.events if n > request.after] if box is not None else []
        if box is not None:
            box.touched = time.monotonic()
        return Kind.REPLAY, Replay(request.request_id, tuple(n for n, _ in events), tuple(m for _, m in events))

    def drop(self, sid: str) -> None:
        box = self._boxes.pop(sid, None)
        if box is not None:
            while box.events:
                self._forget_oldest_of(box)

    def expire(self) -> int:
        """Forget mailboxes idle longer than a session can live; returns how many were dropped."""
        cutoff = time.monotonic() - self._idle
        stale = [sid for sid, box in self._boxes.items() if box.touched < cutoff]
        for sid in stale:
            self.drop(sid)
        return len(stale)

    def _compact(self) -> None:
        """Drop entries of _order whose events are gone, so it stays proportional to what is kept. Events
        leave a box only from its oldest end, so an event is kept while its number is not below the
        box's oldest."""
        self._order = deque(e for e in self._order if e[0].events and e[1] >= e[0].events[0][0])

    def __len__(self) -> int:
        return len(self._boxes)

    def describe(self) -> dict[str, int]:
        return {"mailboxes": len(self._boxes), "events": self._kept, "bytes": self._bytes, "dropped": self.dropped}
