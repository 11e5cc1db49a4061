"""Reading a request body that aiohttp carries (a chunked POST, a legacy /messages POST), within the same
size and time limits as the bodies our own server reads."""

from __future__ import annotations

import asyncio

from aiohttp import web

__all__ = ["BodyIncomplete", "BodyTimeout", "BodyTooLarge", "read_body", "send_and_close"]


class BodyTooLarge(Exception):
    """The body grew past the limit."""


class BodyTimeout(Exception):
    """The body was not complete in time."""


class BodyIncomplete(Exception):
    """The connection ended before the body its Content-Length announced."""


async def read_body(request: web.Request, limit: int, timeout: float) -> bytes:
    """The whole body; BodyTooLarge once it is over ``limit`` bytes, BodyTimeout when it is not complete
    within ``timeout`` seconds (a whole-body deadline, so a body sent a byte at a time cannot hold the
    connection), BodyIncomplete when the client stopped short of its Content-Length."""
    length = request.content_length
    if length is not None and length > limit:
        raise BodyTooLarge
    try:
        async with asyncio.timeout(timeout):
            if length is not None:
                return await request.content.readexactly(length) if length else b""
            chunks: list[bytes] = []
            size = 0
            async for chunk in request.content.iter_any():
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge
                chunks.append(chunk)
            return b"".join(chunks)
    except TimeoutError:
        raise BodyTimeout from None
    except asyncio.IncompleteReadError:
        raise BodyIncomplete from None


async def send_and_close(request: web.Request, response: web.StreamResponse) -> web.StreamResponse:
    """Send ``response`` and close the connection at once: a client whose body is still (slowly) coming
    would otherwise hold it while aiohttp reads and discards the rest for up to its lingering time."""
    response.force_close()
    await response.prepare(request)
    await response.write_eof()
    request.protocol.force_close()
    return response
