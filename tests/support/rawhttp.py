"""HTTP/1.1 over a plain socket, for tests that control exactly which bytes go on one connection."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

ACCEPT = "application/json, text/event-stream"


@contextlib.asynccontextmanager
async def connect(url: str) -> AsyncIterator[RawConnection]:
    """A raw connection to ``url``'s host and port, closed on the way out."""
    connection = await RawConnection.open(url)
    try:
        yield connection
    finally:
        await connection.close()


class RawResponse:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    def json(self) -> Any:
        return json.loads(self.body)

    def events(self) -> list[Any]:
        """The data of each SSE event in the body."""
        return [json.loads(line[6:]) for line in self.body.decode().splitlines() if line.startswith("data: ")]


class RawConnection:
    """One TCP connection; requests are written as given and responses read back in order."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, url: str) -> RawConnection:
        parts = urlsplit(url)
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        return cls(reader, writer, parts.netloc)

    def post_bytes(self, body: bytes, path: str = "/mcp", session: str | None = None, **headers: str) -> bytes:
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}", f"Accept: {ACCEPT}",
                 "Content-Type: application/json", f"Content-Length: {len(body)}"]
        if session is not None:
            lines.append(f"Mcp-Session-Id: {session}")
        lines += [f"{name}: {value}" for name, value in headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def get_bytes(self, path: str) -> bytes:
        return f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode()

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, timeout: float = 10.0, streams: bool = False) -> RawResponse:
        """The next response; with ``streams``, only the head of one that does not end by itself (a switch of
        protocols, an SSE stream), with an empty body."""
        return await asyncio.wait_for(self._response(streams), timeout)

    async def _response(self, streams: bool = False) -> RawResponse:
        status_line = await self.reader.readuntil(b"\r\n")
        status = int(status_line.split()[1])
        headers: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        if streams and (status == 101 or headers.get("content-type", "").startswith("text/event-stream")):
            return RawResponse(status, headers, b"")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            parts = []
            while (size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)) > 0:
                parts.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            await self.reader.readexactly(2)
            return RawResponse(status, headers, b"".join(parts))
        body = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return RawResponse(status, headers, body)

    async def closed_by_server(self, timeout: float = 10.0) -> bool:
        """True once the server closes the connection (reads EOF)."""
        return await asyncio.wait_for(self.reader.read(1), timeout) == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):  # the server may have closed it first
            await self.writer.wait_closed()


def rpc(request_id: Any, method: str, params: dict[str, Any] | None = None) -> bytes:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    return json.dumps(message).encode()


INITIALIZE = rpc(0, "initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                   "clientInfo": {"name": "raw-http-test", "version": "1"}})


async def open_session(url: str, body: bytes = INITIALIZE, timeout: float = 10.0, **headers: str) -> str:
    """A session opened with ``body`` (an initialize request) on a connection of its own; its id."""
    async with connect(url) as connection:
        await connection.send(connection.post_bytes(body, **headers))
        response = await connection.response(timeout=timeout)
    assert response.status == 200, response.body
    return response.headers["mcp-session-id"]
