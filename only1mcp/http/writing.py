"""The writing side of a server connection: response heads and bodies out, the client's backpressure in."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, Protocol

__all__ = ["ResponseWriter", "response_head"]

_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


class _Owner(Protocol):
    """What a connection's writing side needs of its server."""

    date: bytes
    clock: Callable[[], float]

    def forget(self, connection: Any) -> None: ...


def response_head(status: int, headers: dict[str, str], body: bytes | None, keep_alive: bool, date: bytes) -> bytes:
    """Status line, Date, ``headers``, the framing (Content-Length of ``body``, or chunked when it is None)
    and Connection: close unless ``keep_alive``; followed by ``body``."""
    lines = [b"HTTP/1.1 %d %b\r\n" % (status, _REASONS.get(status, b"Status")), b"Date: ", date, b"\r\n"]
    for name, value in headers.items():
        lines.append(f"{name}: {value}\r\n".encode("latin-1"))
    if body is None:
        lines.append(b"Transfer-Encoding: chunked\r\n")
    else:
        lines.append(b"Content-Length: %d\r\n" % len(body))
    if not keep_alive:
        lines.append(b"Connection: close\r\n")
    lines.append(b"\r\n")
    if body:
        lines.append(body)
    return b"".join(lines)


class ResponseWriter(asyncio.Protocol):
    """Writes to the transport; ``writable`` waits while the client is not reading, and ``stalled`` says
    since when (0: it reads), for the server's send_timeout."""

    __slots__ = ("_can_write", "_server", "_transport", "lost", "stalled")

    def __init__(self, server: _Owner) -> None:
        self._server = server
        self._transport: asyncio.Transport | None = None
        self._can_write: asyncio.Future[None] | None = None
        self.stalled = 0.0
        self.lost = False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._server.forget(self)
        self.stalled = 0.0
        self._wake_writer()

    def pause_writing(self) -> None:
        self.stalled = self._server.clock()
        if self._can_write is None:
            self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self.stalled = 0.0
        self._wake_writer()

    def _wake_writer(self) -> None:
        waiter, self._can_write = self._can_write, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def writable(self) -> None:
        if self._can_write is not None:
            await self._can_write

    def write_head(self, status: int, headers: dict[str, str], body: bytes | None, keep_alive: bool) -> None:
        """The status line and headers, and ``body`` with its length; None starts a chunked body."""
        if self._transport is not None and not self.lost:
            self._transport.write(response_head(status, headers, body, keep_alive, self._server.date))

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.lost:
            self._transport.write(data)

    def close(self, abort: bool = False) -> None:
        """Close once what is written has gone out; ``abort``: at once, dropping it."""
        self._server.forget(self)
        transport = self._transport
        if transport is None:
            return
        if abort:
            transport.abort()
        elif not transport.is_closing():
            transport.close()
