"""only1mcp.http's server on a real loopback socket in the test process, with a trivial handler in front of a
real aiohttp server as the fallback (for tests/unit/test_http_server*.py).

aiohttp names itself in a ``Server`` header and our server sends none, so a test can tell who answered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from aiohttp import web

from only1mcp.http.aiohttp_bridge import AiohttpFallback, runner_options
from only1mcp.http.limits import HttpLimits
from only1mcp.http.request import Request
from only1mcp.http.server import HttpServer

__all__ = ["SHORT", "Client", "EchoHandler", "connect", "held", "ours", "post", "serve"]

SHORT = HttpLimits(header_timeout=0.3, body_timeout=0.3, keepalive_timeout=0.3, send_timeout=0.3)


class Reply:
    def __init__(self, status: int, body: bytes = b"", streamed: bool = False) -> None:
        self.status = status
        self.body = body
        self.headers = {"Content-Type": "text/plain"}
        self.streamed = streamed


class EchoHandler:
    """Answers POST /echo (and /stream, /slow, /pass, /big, /hold) with the body it got."""

    routes = frozenset((b"POST", target) for target in (b"/echo", b"/stream", b"/slow", b"/pass", b"/big", b"/hold"))

    def __init__(self, limits: HttpLimits | None = None) -> None:
        self.current = limits or HttpLimits(max_body_size=1 << 20)
        self.bodies: list[bytes | memoryview] = []
        self.release = asyncio.Event()
        self.in_flight = 0

    def limits(self) -> HttpLimits:
        return self.current

    def answer(self, request: Request, body: bytes | memoryview) -> Reply | Coroutine[Any, Any, Reply | None]:
        self.in_flight += 1
        self.bodies.append(body)
        if request.header("x-target") == "/echo":
            return Reply(200, bytes(body))  # at once, as the worker's door answers a refusal
        return self._answer(request, body)

    def finished(self) -> None:
        self.in_flight -= 1

    async def _answer(self, request: Request, body: bytes | memoryview) -> Reply | None:
        target = request.header("x-target")
        if target == "/pass":
            return None
        if target == "/slow":
            await asyncio.sleep(0.2)
        if target == "/hold":
            await self.release.wait()
        if target == "/big":
            return Reply(200, b"x" * (8 << 20))
        if target == "/stream":
            await request.open_stream({"Content-Type": "text/event-stream"})
            await request.write(b"data: one\n\n")
            await request.write(b"data: " + bytes(body) + b"\n\n")
            await request.close_stream()
            return Reply(200, streamed=True)
        return Reply(200, bytes(body))


async def _fallback_answer(request: web.Request) -> web.Response:
    body = await request.read()
    return web.Response(text=f"aiohttp {request.method} {request.path} {body.decode()}")


@contextlib.asynccontextmanager
async def serve(handler: EchoHandler, budget: int | None = None) -> AsyncIterator[tuple[HttpServer, int]]:
    aiohttp_server = web.Server(_fallback_answer, **runner_options(handler.limits()))
    server = HttpServer(handler, AiohttpFallback(aiohttp_server), budget=budget or 1000)
    server.start()
    listener = await asyncio.get_running_loop().create_server(server.connection, "127.0.0.1", 0)
    try:
        yield server, listener.sockets[0].getsockname()[1]
    finally:
        listener.close()
        await server.drain(1.0)
        await aiohttp_server.shutdown(1.0)


def post(target: str, body: bytes = b"", close: bool = False, **headers: str) -> bytes:
    lines = [f"POST {target} HTTP/1.1", "Host: test", f"Content-Length: {len(body)}", f"X-Target: {target}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Client:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        async def read() -> tuple[int, dict[str, str], bytes]:
            status = int((await self.reader.readuntil(b"\r\n")).split()[1])
            headers: dict[str, str] = {}
            while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            if headers.get("transfer-encoding") == "chunked":
                parts = []
                while (size := int((await self.reader.readuntil(b"\r\n")).strip(), 16)) > 0:
                    parts.append(await self.reader.readexactly(size))
                    await self.reader.readexactly(2)
                await self.reader.readexactly(2)
                return status, headers, b"".join(parts)
            return status, headers, await self.reader.readexactly(int(headers.get("content-length", "0")))

        return await asyncio.wait_for(read(), 10)

    async def closed(self, timeout: float = 10.0) -> bool:
        """True once the server closed the connection (whatever it sent before is skipped)."""
        async def until_eof() -> bool:
            try:
                while await self.reader.read(65536):
                    pass
            except ConnectionResetError:
                pass
            return True

        return await asyncio.wait_for(until_eof(), timeout)


@contextlib.asynccontextmanager
async def connect(port: int) -> AsyncIterator[Client]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield Client(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def ours(headers: dict[str, str]) -> bool:
    return "server" not in headers



async def held(handler: EchoHandler, n: int) -> bool:
    """At least ``n`` requests reached the handler."""
    return len(handler.bodies) >= n
