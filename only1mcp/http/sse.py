"""Server-Sent Events: encoding for the front door, incremental decoding for backends and the stdio bridge."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["EventTooLarge", "SseDecoder", "SseEvent", "encode_event"]

_LINE_END = re.compile(rb"\r\n|\r|\n")


def encode_event(data: bytes, event_id: str | None = None, event: str | None = None) -> bytes:
    """One event; ``data`` must not contain newlines (compact JSON never does)."""
    head = b""
    if event_id is not None:
        head += b"id: " + event_id.encode() + b"\n"
    if event is not None:
        head += b"event: " + event.encode() + b"\n"
    return head + b"data: " + data + b"\n\n"


@dataclass(slots=True)
class SseEvent:
    data: str
    event: str = "message"
    id: str | None = None
    retry: int | None = None


class EventTooLarge(Exception):
    """One event, or one line not yet ended, grew past the decoder's limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"an SSE event over {limit} bytes")
        self.limit = limit


class SseDecoder:
    """Feed bytes as they arrive; get complete events back (per the WHATWG event-stream rules).

    Linear in what it is fed, however it is split: the unfinished tail is kept in one buffer that grows in
    place, and a line end is searched for only in bytes not searched before. ``max_event`` bounds one
    event's data and any line not yet ended (EventTooLarge past it).
    """

    __slots__ = ("_buffer", "_data", "_event", "_id", "_limit", "_retry", "_scanned", "_size", "last_event_id")

    def __init__(self, max_event: int | None = None) -> None:
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the buffer known to hold no line end (a final CR may start a CRLF)
        self._limit = max_event
        self._data: list[str] = []
        self._size = 0  # bytes of the current event's data
        self._event = ""
        self._id: str | None = None
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def feed(self, chunk: bytes) -> list[SseEvent]:
        buffer = self._buffer
        buffer += chunk
        events: list[SseEvent] = []
        start = 0  # where the line being looked at begins
        position = self._scanned
        size = len(buffer)
        while True:
            found = _LINE_END.search(buffer, position)
            if found is None:
                position = size
                break
            end = found.start()
            if found.end() == size and found.end() - end == 1 and buffer[end] == 0x0D:
                position = end  # a CR at the very end may be half of a CRLF: look at it again next time
                break
            event = self._line(buffer[start:end].decode("utf-8", "replace"), end - start)
            if event is not None:
                events.append(event)
            start = position = found.end()
        if start:
            del buffer[:start]  # O(1): a bytearray drops its head by moving its start
            position -= start
        self._scanned = position
        if self._limit is not None and len(buffer) > self._limit:
            raise EventTooLarge(self._limit)
        return events

    def _line(self, line: str, size: int) -> SseEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
            self._size += size
            if self._limit is not None and self._size > self._limit:
                raise EventTooLarge(self._limit)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self._id = value
            self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> SseEvent | None:
        if not self._data:
            self._event = ""
            return None
        event = SseEvent("\n".join(self._data), self._event or "message", self._id, self._retry)
        self._data, self._event, self._retry, self._size = [], "", None, 0
        return event
