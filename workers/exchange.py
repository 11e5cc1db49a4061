"""One HTTP request/response as the MCP doors see it, whichever HTTP server carries it.

POST /mcp is served either by the worker's own HTTP/1.1 fast path (workers/fast_http.py) or by aiohttp;
the doors decide what to answer through this small interface and never touch either server's types.
"""

from __future__ import annotations

from typing import Protocol

from aiohttp import web

__all__ = ["AiohttpExchange", "Answer", "Exchange", "media_type", "web_response"]


class Answer:
    """What a door answers: a whole response, or (``streamed``) the end of an SSE stream already sent."""

    __slots__ = ("body", "headers", "status", "streamed")

    def __init__(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                 streamed: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = headers or {}
        self.streamed = streamed


class Exchange(Protocol):
    """The request's headers, and a response that may become a stream of events."""

    def header(self, name: str) -> str | None:
        """A request header by name, any case; None when absent."""

    def alive(self) -> bool:
        """Whether the client is still connected."""

    def peer(self) -> str:
        """The client's IP address ('' when unknown)."""

    async def open_stream(self, headers: dict[str, str]) -> None:
        """Send status 200 with ``headers``; the body follows in ``write`` calls."""

    async def write(self, data: bytes) -> None:
        """Send part of the streamed body (waits while the client is slow to read)."""

    async def close_stream(self) -> None:
        """End the streamed body."""


def web_response(answer: Answer) -> web.Response:
    """aiohttp's response for a whole (not streamed) Answer."""
    return web.Response(status=answer.status, body=answer.body or None, headers=answer.headers)


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type value, without parameters, lower case ('' when absent)."""
    if not content_type:
        return ""
    return content_type.partition(";")[0].strip().lower()


class AiohttpExchange:
    """An exchange carried by aiohttp: ``respond`` turns the door's Answer into aiohttp's response."""

    __slots__ = ("_request", "_response")

    def __init__(self, request: web.Request) -> None:
        self._request = request
        self._response: web.StreamResponse | None = None

    def header(self, name: str) -> str | None:
        # A field sent more than once reads as one value joined by commas (RFC 9110 5.3), as on the fast
        # path: a door never sees only the first of two credentials.
        values = self._request.headers.getall(name, None)
        if values is None:
            return None
        return values[0] if len(values) == 1 else ", ".join(values)

    def alive(self) -> bool:
        transport = self._request.transport
        return transport is not None and not transport.is_closing()

    def peer(self) -> str:
        return self._request.remote or ""

    async def open_stream(self, headers: dict[str, str]) -> None:
        response = web.StreamResponse(headers=headers)
        await response.prepare(self._request)
        self._response = response

    async def write(self, data: bytes) -> None:
        assert self._response is not None
        await self._response.write(data)

    async def close_stream(self) -> None:
        assert self._response is not None
        await self._response.write_eof()

    def respond(self, answer: Answer) -> web.StreamResponse:
        if answer.streamed and self._response is not None:
            return self._response
        return web_response(answer)
