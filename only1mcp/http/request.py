"""One request answered by the HTTP server itself: its headers, and a response that may become a stream."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import HttpConnection

__all__ = ["Request"]


class Request:
    """The request's headers (names lower-cased), and the writing side of its response: a streamed body
    goes out with chunked transfer encoding."""

    __slots__ = ("_connection", "headers", "keep_alive", "streaming")

    def __init__(self, connection: HttpConnection, headers: dict[str, str], keep_alive: bool) -> None:
        self._connection = connection
        self.headers = headers  # names lower-cased
        self.keep_alive = keep_alive
        self.streaming = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def alive(self) -> bool:
        return not self._connection.lost

    def peer(self) -> str:
        return self._connection.peer()

    async def open_stream(self, headers: dict[str, str]) -> None:
        self.streaming = True
        self._connection.write_head(200, headers, None, self.keep_alive)

    async def write(self, data: bytes) -> None:
        await self._send(b"%x\r\n%b\r\n" % (len(data), data))

    async def close_stream(self) -> None:
        await self._send(b"0\r\n\r\n")

    async def _send(self, chunk: bytes) -> None:
        """One piece of the chunked body; waits while the client is slow to read."""
        connection = self._connection
        if connection.lost:
            raise ConnectionResetError("the client closed the connection")
        connection.write(chunk)
        await connection.writable()
