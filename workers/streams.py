"""Clients' GET streams held by this worker: session mailbox events, list changes, keep-alives."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from only1mcp.http.sse import encode_event
from only1mcp.protocol.codec import dumps, loads
from only1mcp.protocol.constants import SSE_HEADERS

from .sse_pump import pump

__all__ = ["SessionStreams"]

log = logging.getLogger("only1mcp.worker")

Replay = Callable[[str, int], Awaitable[list[tuple[int, bytes]]]]


class _Stream:
    __slots__ = ("closed", "last", "queue")

    def __init__(self, last: int) -> None:
        self.queue: asyncio.Queue[tuple[int | None, bytes] | None] = asyncio.Queue()
        self.last = last
        self.closed = False


class SessionStreams:
    """At most one GET stream per session in this worker (a newer one replaces the older): each mailbox
    event is published to every worker, and one stream per session keeps it from being written twice here.
    """

    __slots__ = ("_replay", "_sinks", "_streams")

    def __init__(self, replay: Replay) -> None:
        self._replay = replay
        self._streams: dict[str, _Stream] = {}
        # Sessions whose client holds a duplex stream here (WebSocket, legacy SSE): messages go to it directly.
        self._sinks: dict[str, Callable[[Any], None]] = {}

    def attach(self, sid: str, sink: Callable[[Any], None]) -> None:
        self._sinks[sid] = sink

    def detach(self, sid: str) -> None:
        self._sinks.pop(sid, None)

    def sink(self, sid: str) -> Callable[[Any], None] | None:
        """The duplex stream of a session held here, if any: messages for it need no mailbox."""
        return self._sinks.get(sid)

    def __len__(self) -> int:
        return len(self._streams)

    @property
    def duplex(self) -> int:
        """Sessions whose client holds a duplex stream here (WebSocket, legacy SSE, subscriptions/listen)."""
        return len(self._sinks)

    async def serve(self, request: web.Request, sid: str, last_event_id: str | None,
                    headers: dict[str, str]) -> web.StreamResponse:
        after = int(last_event_id) if last_event_id and last_event_id.isdigit() else 0
        previous = self._streams.get(sid)
        if previous is not None:
            self._end(previous)
        stream = _Stream(after)
        self._streams[sid] = stream
        response = web.StreamResponse(headers={**SSE_HEADERS, **headers})
        try:
            await response.prepare(request)
            if last_event_id:
                for number, message in await self._replay(sid, after):
                    stream.queue.put_nowait((number, message))
            await self._pump(response, stream)
        except (ConnectionError, RuntimeError) as exc:
            log.debug("GET stream of a session closed: %s", exc)
        finally:
            if self._streams.get(sid) is stream:
                del self._streams[sid]
        return response

    async def _pump(self, response: web.StreamResponse, stream: _Stream) -> None:
        def render(item: tuple[int | None, bytes]) -> bytes | None:
            number, data = item
            if number is not None:
                if number <= stream.last:
                    return None  # already written (a replay and a live event can overlap)
                stream.last = number
            return encode_event(data, str(number) if number is not None else None)

        await pump(stream.queue, response.write, render)

    def deliver(self, sid: str, number: int, message: bytes) -> bool:
        """A numbered mailbox event (JSON) for the session's stream, if this worker holds it."""
        sink = self._sinks.get(sid)
        if sink is not None:
            sink(loads(message))
            return True
        stream = self._streams.get(sid)
        if stream is None:
            return False
        stream.queue.put_nowait((number, message))
        return True

    def broadcast(self, message: dict[str, Any]) -> None:
        """To every stream held here (list changes): not replayable, so no event id."""
        data = dumps(message)
        for stream in self._streams.values():
            stream.queue.put_nowait((None, data))
        for sink in list(self._sinks.values()):
            sink(message)

    def end(self, sid: str) -> None:
        stream = self._streams.pop(sid, None)
        if stream is not None:
            self._end(stream)

    @staticmethod
    def _end(stream: _Stream) -> None:
        stream.closed = True
        with contextlib.suppress(asyncio.QueueFull):
            stream.queue.put_nowait(None)

    def close_all(self) -> None:
        for stream in list(self._streams.values()):
            self._end(stream)
        self._streams.clear()
