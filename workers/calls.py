"""A client's call in flight: where its related messages go, and requests relayed to its client."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from typing import Any, Protocol

from only1mcp.http.sse import encode_event
from only1mcp.protocol.codec import dumps
from only1mcp.sessions import SessionInfo

from .exchange import Answer, Exchange

__all__ = ["SSE_HEADERS", "Channel", "ClientCall", "Outstanding", "ReplyChannel", "SinkChannel"]

log = logging.getLogger("only1mcp.worker")

SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-transform",
               "X-Accel-Buffering": "no"}


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

    __slots__ = ("_exchange", "_headers", "_pending", "_started", "_writer", "broken")

    def __init__(self, exchange: Exchange, headers: dict[str, str]) -> None:
        self._exchange = exchange
        self._headers = headers
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

    async def finish(self, final: bytes, status: int = 200) -> Answer:
        """Send the final message: as the JSON body (with ``status``), or as the last event of the stream
        (whose 200 was sent when it started)."""
        while self._writer is not None and not self._writer.done():
            await self._writer
        if not self._started:
            return Answer(status, final, {"Content-Type": "application/json", **self._headers})
        if not self.broken:
            try:
                await self._exchange.write(encode_event(final))
                await self._exchange.close_stream()
            except (ConnectionError, RuntimeError) as exc:
                log.debug("client stream closed before the result: %s", exc)
        return Answer(200, streamed=True)


class ClientCall:
    """What a backend callback needs to know about the client call it relates to."""

    __slots__ = ("channel", "client_id", "method", "session")

    def __init__(self, session: SessionInfo, client_id: Any, method: str, channel: Channel | None) -> None:
        self.session = session
        self.client_id = client_id
        self.method = method
        self.channel = channel


class Outstanding:
    """Requests this worker relayed to clients (sampling, elicitation, roots), by proxy-minted id.

    The id names this worker (``o1.<slot>.<pid>.<n>``) so a client's answer posted to any worker can be
    routed back here, and from here to the backend request that is waiting for it.
    """

    __slots__ = ("_counter", "_entries", "_prefix")

    def __init__(self, slot: int, pid: int) -> None:
        self._prefix = f"o1.{slot}.{pid}."
        self._counter = itertools.count(1)
        self._entries: dict[str, tuple[Any, Any, str]] = {}

    def add(self, backend_session: Any, backend_id: Any, sid: str) -> str:
        proxy_id = f"{self._prefix}{next(self._counter)}"
        self._entries[proxy_id] = (backend_session, backend_id, sid)
        return proxy_id

    def pop(self, proxy_id: Any) -> tuple[Any, Any, str] | None:
        return self._entries.pop(proxy_id, None) if isinstance(proxy_id, str) else None

    def find(self, backend_session: Any, backend_id: Any) -> str | None:
        for proxy_id, (session, request_id, _) in self._entries.items():
            if session is backend_session and request_id == backend_id:
                return proxy_id
        return None

    def mine(self, proxy_id: Any) -> bool:
        return isinstance(proxy_id, str) and proxy_id.startswith(self._prefix)

    @staticmethod
    def owner(proxy_id: Any) -> tuple[int, int] | None:
        """(slot, pid) named by a proxy-minted id, or None when it is not one of ours."""
        if not isinstance(proxy_id, str) or not proxy_id.startswith("o1."):
            return None
        parts = proxy_id.split(".")
        if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()):
            return None
        return int(parts[1]), int(parts[2])
