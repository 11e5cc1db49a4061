"""A client's call in flight: where its related messages go, and requests relayed to its client."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from only1mcp.backends.base import BackendUnavailable, SessionExpired
from only1mcp.backends.session import BackendSession
from only1mcp.background import Background
from only1mcp.http.sse import encode_event
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.constants import SSE_HEADERS
from only1mcp.protocol.jsonrpc import Code
from only1mcp.sessions import SessionInfo

from .exchange import Answer, Exchange

__all__ = ["Channel", "ClientCall", "Outstanding", "ReplyChannel", "SinkChannel"]

log = logging.getLogger("only1mcp.worker")



class Channel(Protocol):
    """Where messages related to one client call go while it runs."""

    broken: bool

    def push(self, message: dict[str, Any]) -> None: ...


class SinkChannel:
    """For transports with one duplex stream per client (WebSocket, legacy SSE): related messages go
    straight to the client's stream, like everything else."""

    __slots__ = ("_sink", "broken")

    def __init__(self, sink: Callable[[dict[str, Any]], None]) -> None:
        self._sink = sink
        self.broken = False

    def push(self, message: dict[str, Any]) -> None:
        self._sink(message)


class ReplyChannel:
    """The answer to one POST: plain JSON, unless something related (progress, a log line, a request to
    the client) arrives before the result, in which case the response becomes an SSE stream."""

    __slots__ = ("_exchange", "_headers", "_pending", "_started", "_status", "_writer", "broken")

    def __init__(self, exchange: Exchange, headers: dict[str, str]) -> None:
        self._exchange = exchange
        self._headers = headers
        self._status = 200
        self._started = False
        self._pending: list[bytes] = []
        self._writer: asyncio.Task[None] | None = None
        self.broken = False

    def alive(self) -> bool:
        """Whether the client is still connected (a 2026-07-28 client cancels by disconnecting)."""
        return not self.broken and self._exchange.alive()

    @property
    def streaming(self) -> bool:
        return self._started or self._writer is not None

    def push(self, message: dict[str, Any]) -> None:
        """Queue a related message (called from backend callbacks, so it must not block)."""
        if self.broken:
            return
        self._pending.append(dumps(message))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            if not self._started:
                self._started = True
                await self._exchange.open_stream({**SSE_HEADERS, **self._headers})
            while self._pending:
                await self._exchange.write(encode_event(self._pending.pop(0)))
        except (ConnectionError, RuntimeError) as exc:
            # A dropped connection is not a cancellation: the call goes on, its output has nowhere to go.
            log.debug("client stream closed while writing: %s", exc)
            self.broken = True
            self._pending.clear()

    def rate_limited(self, retry_after: int) -> None:
        """A rate limit refused the call: its answer, if still a JSON body, goes as 429 with Retry-After."""
        self._status = 429
        self._headers = {**self._headers, "Retry-After": str(retry_after)}

    async def finish(self, final: bytes, status: int | None = None) -> Answer:
        """Send the final message: as the JSON body (with ``status``, else 200 or what ``rate_limited``
        set), or as the last event of the stream (whose 200 was sent when it started)."""
        while self._writer is not None and not self._writer.done():
            await self._writer
        if not self._started:
            return Answer(status or self._status, final, {"Content-Type": "application/json", **self._headers})
        if not self.broken:
            try:
                await self._exchange.write(encode_event(final))
                await self._exchange.close_stream()
            except (ConnectionError, RuntimeError) as exc:
                log.debug("client stream closed before the result: %s", exc)
        return Answer(200, streamed=True)


class ClientCall:
    """What a backend callback needs to know about the client call it relates to."""

    __slots__ = ("channel", "client_id", "deadline", "method", "session")

    def __init__(self, session: SessionInfo, client_id: Any, method: str, channel: Channel | None,
                 deadline: float) -> None:
        self.session = session
        self.client_id = client_id
        self.method = method
        self.channel = channel
        self.deadline = deadline  # event-loop time the call gives up


class _Entry:
    __slots__ = ("backend_id", "session", "sid", "timer")

    def __init__(self, session: BackendSession, backend_id: Any, sid: str, timer: asyncio.TimerHandle) -> None:
        self.session = session
        self.backend_id = backend_id
        self.sid = sid
        self.timer = timer


class Outstanding:
    """Requests this worker relayed to clients (sampling, elicitation, roots), by proxy-minted id.

    The id names this worker (``o1.<slot>.<pid>.<n>``) so a client's answer posted to any worker can be
    routed back here, and from here to the backend request that is waiting for it. An entry lives until the
    client answers or the call it belongs to reaches its deadline; then the backend is told the client did
    not answer, so a client that never answers costs nothing after its calls end.
    """

    __slots__ = ("_counter", "_entries", "_prefix", "_tasks", "expired")

    def __init__(self, slot: int, pid: int, tasks: Background) -> None:
        self._prefix = f"o1.{slot}.{pid}."
        self._counter = itertools.count(1)
        self._entries: dict[str, _Entry] = {}
        self._tasks = tasks
        self.expired = 0

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, backend_session: BackendSession, backend_id: Any, sid: str, deadline: float) -> str:
        proxy_id = f"{self._prefix}{next(self._counter)}"
        timer = asyncio.get_running_loop().call_at(deadline, self._expire, proxy_id)
        self._entries[proxy_id] = _Entry(backend_session, backend_id, sid, timer)
        return proxy_id

    def pop(self, proxy_id: Any) -> _Entry | None:
        entry = self._entries.pop(proxy_id, None) if isinstance(proxy_id, str) else None
        if entry is not None:
            entry.timer.cancel()
        return entry

    def find(self, backend_session: BackendSession, backend_id: Any) -> str | None:
        for proxy_id, entry in self._entries.items():
            if entry.session is backend_session and entry.backend_id == backend_id:
                return proxy_id
        return None

    def _expire(self, proxy_id: str) -> None:
        entry = self._entries.pop(proxy_id, None)
        if entry is None:
            return
        self.expired += 1
        error = {"code": int(Code.REQUEST_TIMEOUT), "message": "the client did not answer before its call's deadline"}
        self._tasks.spawn(_answer_quietly(entry.session, entry.backend_id, error), "client-request-expired")

    def mine(self, proxy_id: Any) -> bool:
        return isinstance(proxy_id, str) and proxy_id.startswith(self._prefix)

    def clear(self) -> None:
        for entry in self._entries.values():
            entry.timer.cancel()
        self._entries.clear()

    @staticmethod
    def owner(proxy_id: Any) -> tuple[int, int] | None:
        """(slot, pid) named by a proxy-minted id, or None when it is not one of ours."""
        if not isinstance(proxy_id, str) or not proxy_id.startswith("o1."):
            return None
        parts = proxy_id.split(".")
        if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        return int(parts[1]), int(parts[2])


async def _answer_quietly(session: BackendSession, backend_id: Any, error: dict[str, Any]) -> None:
    """Tell a backend its request will not be answered; a backend that is gone meanwhile needs nothing."""
    if session.closed:
        return
    try:
        await session.respond(backend_id, error=error)
    except (BackendUnavailable, SessionExpired, OSError) as exc:
        log.debug("could not tell backend '%s' a client request expired: %s", session.name, exc)
