"""A response of the keep-alive HTTP/1.1 client, bounded: its body is read whole up to a limit, streamed
with backpressure, or only its start is read (an error body)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Protocol

__all__ = ["HttpResponse", "ResponseTooLarge"]

_HIGH_WATER = 1024 * 1024  # bytes of a streamed body held unread before its connection stops reading
_LOW_WATER = 256 * 1024  # and reads again once the consumer is back under this
_UNBOUNDED = sys.maxsize


class ResponseTooLarge(Exception):
    """A response body went over the limit of its request; its connection is closed, not drained."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit} bytes")
        self.limit = limit


class _Carrier(Protocol):
    """The connection a response arrives on."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self, error: BaseException) -> None: ...

    def idle(self) -> None: ...

    def close(self) -> None: ...


class HttpResponse:
    """Status and headers as soon as they arrive; the body read whole, chunk by chunk, or only its start.

    ``limit`` bounds the whole body (None: no bound, for a long-lived stream): past it the response fails
    with ResponseTooLarge and its connection is closed.
    """

    __slots__ = ("_buffered", "_chunks", "_conn", "_done", "_error", "_paused", "_received", "_waiter", "headers",
                 "keep_alive", "limit", "status")

    def __init__(self, conn: _Carrier, limit: int | None) -> None:
        self._conn: _Carrier | None = conn
        self.limit = _UNBOUNDED if limit is None else limit
        self.status = 0
        self.headers: dict[str, str] = {}
        self.keep_alive = False
        self._chunks: list[bytes] = []
        self._received = 0
        self._buffered = -1  # bytes of a streamed body not yet taken by the consumer; -1: not streamed
        self._paused = False
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def feed(self, chunk: bytes) -> None:
        """Called by the connection with each piece of the body."""
        self._received += len(chunk)
        if self._received > self.limit and self._conn is not None:
            self._conn.abort(ResponseTooLarge(self.limit))
            return
        self._chunks.append(chunk)
        if self._buffered >= 0:
            self._buffered += len(chunk)
            if self._buffered > _HIGH_WATER and not self._paused and self._conn is not None:
                self._paused = True
                self._conn.pause_reading()
        if self._waiter is not None:
            self._wake()

    def finish(self, error: BaseException | None = None) -> None:
        """Called by the connection when the body is complete, or with why it never will be."""
        self._done = True
        self._error = error
        self._wake()

    async def _wait(self) -> None:
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    async def read(self) -> bytes:
        """The whole body (raises ResponseTooLarge past the limit, or why the connection broke)."""
        while not self._done:
            await self._wait()
        if self._error is not None:
            raise self._error
        body = b"".join(self._chunks)
        self._chunks.clear()
        return body

    async def read_prefix(self, size: int) -> bytes:
        """At most the first ``size`` bytes of the body, without waiting for the rest or failing: for the
        message of an error answer, whatever its length. Release the response afterwards."""
        while not self._done and self._received < size:
            await self._wait()
        return b"".join(self._chunks)[:size]

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives; the connection stops reading while much of it is left unread."""
        self._buffered = sum(map(len, self._chunks))
        while True:
            while self._chunks:
                chunk = self._chunks.pop(0)  # a short list: the high-water mark bounds it
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _LOW_WATER and self._conn is not None:
                    self._paused = False
                    self._conn.resume_reading()
                yield chunk
            if self._done:
                if self._error is not None:
                    raise self._error
                return
            await self._wait()

    @property
    def unread(self) -> int:
        """Bytes of the body received and not yet taken by the consumer."""
        return sum(map(len, self._chunks))

    @property
    def complete(self) -> bool:
        """The whole body arrived (so the connection can carry another request)."""
        return self._done and self._error is None

    def release(self) -> None:
        """Give the connection back for reuse if the exchange finished cleanly, else close it (a body not
        read to its end is never drained: a hostile server could send forever)."""
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._done and self._error is None and self.keep_alive:
            if self._paused:
                conn.resume_reading()
            conn.idle()
        else:
            conn.close()
