"""One client per front door, all with the same question: what came back for these bytes?

POST /mcp on the fast path (Content-Length) and served by aiohttp (a chunked body is handed over), the
legacy SSE stream with its POSTs to /messages, and /ws; and every route as a credential meets it
(``CredentialDoor``: header fields sent byte for byte). Answers are parsed with the standard library,
numbers exact (integers as int, decimals as Decimal), so ids can be compared exactly. On the two
streams a message's answers are collected until a ping sent after it has been answered too: an answer
that comes later than that is seen by the next exchange as one that belongs to no request.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import aiohttp

from .rawhttp import ACCEPT, RawConnection, RawResponse

__all__ = ["CredentialDoor", "HttpDoor", "LegacySseDoor", "Reply", "WebSocketDoor", "exact", "reply_of"]

SENTINEL = "o1-test-sentinel-"


def exact(text: str | bytes) -> Any:
    """JSON with every number exact."""
    return json.loads(text, parse_float=Decimal)


@dataclass
class Reply:
    """What came back: the HTTP status of the POST (None for a WebSocket frame), the JSON-RPC answers
    (messages without a method) and anything else the gateway sent with them."""

    status: int | None
    answers: list[Any] = field(default_factory=list)
    other: list[Any] = field(default_factory=list)  # notifications and requests to the client
    strays: list[Any] = field(default_factory=list)  # answers that arrived for no pending message


def _split(messages: list[Any], reply: Reply) -> None:
    for message in messages:
        (reply.other if isinstance(message, dict) and "method" in message else reply.answers).append(message)


class HttpDoor:
    """POST /mcp, each on a new connection (so the kernel spreads them over the workers)."""

    def __init__(self, url: str, session: str | None = None, chunked: bool = False) -> None:
        self.url = url
        self.session = session
        self.chunked = chunked
        self.name = f"POST /mcp ({'aiohttp' if chunked else 'fast path'}, {'session' if session else 'no session'})"

    async def send(self, body: bytes, expected: int = 1, timeout: float = 20.0) -> Reply:
        connection = await RawConnection.open(self.url)
        try:
            if self.chunked:  # a chunked body is handed to aiohttp by the fast path
                head = ["POST /mcp HTTP/1.1", f"Host: {connection.host}", f"Accept: {ACCEPT}",
                        "Content-Type: application/json", "Transfer-Encoding: chunked"]
                if self.session is not None:
                    head.append(f"Mcp-Session-Id: {self.session}")
                data = ("\r\n".join(head) + "\r\n\r\n").encode() + b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body)
            else:
                data = connection.post_bytes(body, session=self.session)
            await connection.send(data)
            response = await connection.response(timeout)
        finally:
            await connection.close()
        return reply_of(response)


def reply_of(response: RawResponse) -> Reply:
    """The JSON-RPC messages of a POST's response, plain JSON or SSE."""
    reply = Reply(response.status)
    kind = response.headers.get("content-type", "")
    if kind.startswith("text/event-stream"):
        _split([exact(line[6:]) for line in response.body.decode().splitlines() if line.startswith("data: ")],
               reply)
    elif response.body:
        parsed = exact(response.body)
        _split(parsed if isinstance(parsed, list) else [parsed], reply)
    return reply


@dataclass(frozen=True)
class CredentialDoor:
    """A route as seen by a credential: a request written byte for byte with the credential's header fields
    (any bytes, repeated), on a new connection; for a stream (SSE, a WebSocket upgrade) only the head of the
    response is read."""

    method: str
    target: str  # path and query
    headers: tuple[tuple[str, str], ...] = ()
    body: bool = False  # carries a JSON-RPC body
    chunked: bool = False  # the body chunked (POST /mcp: handed from the fast path to aiohttp)

    def head(self, host: str, fields: list[tuple[str, bytes]], body: bytes) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1".encode(), f"Host: {host}".encode()]
        lines += [f"{name}: {value}".encode() for name, value in self.headers]
        lines += [name.encode() + b": " + value for name, value in fields]
        if self.body:
            lines.append(b"Transfer-Encoding: chunked" if self.chunked else b"Content-Length: %d" % len(body))
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def send(self, url: str, fields: list[tuple[str, bytes]], body: bytes = b"",
                   timeout: float = 20.0) -> tuple[bytes, RawResponse]:
        """The request head as sent, and the response."""
        connection = await RawConnection.open(url)
        try:
            head = self.head(connection.host, fields, body)
            data = head
            if self.body:
                data += b"%x\r\n%b\r\n0\r\n\r\n" % (len(body), body) if self.chunked else body
            await connection.send(data)
            return head, await connection.response(timeout, streams=True)
        finally:
            await connection.close()


class _Stream:
    """What the two stream doors share: answers routed by id, a sentinel ping after each message."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[Any] = asyncio.Queue()
        self._sentinels = itertools.count(1)

    async def _post(self, body: bytes) -> Reply:
        raise NotImplementedError

    async def send(self, body: bytes, expected: int = 1, timeout: float = 20.0) -> Reply:
        """``expected``: answers the message should get on the stream (a request: 1); waits for them and
        for the answer to a ping sent after it."""
        reply = await self._post(body)
        sentinel = f"{SENTINEL}{next(self._sentinels)}"
        await self._post(json.dumps({"jsonrpc": "2.0", "id": sentinel, "method": "ping"}).encode())
        pinged = False
        deadline = asyncio.get_running_loop().time() + timeout
        while not pinged or len(reply.answers) < expected:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            try:
                message = await asyncio.wait_for(self.received.get(), remaining)
            except TimeoutError:
                break
            if isinstance(message, dict) and "method" in message:
                reply.other.append(message)
            elif isinstance(message, dict) and message.get("id") == sentinel:
                pinged = True
            elif isinstance(message, dict) and str(message.get("id")).startswith(SENTINEL):
                reply.strays.append(message)  # an earlier sentinel answered twice
            else:
                reply.answers.append(message)
        if not pinged:
            reply.strays.append({"missing": f"no answer to the ping {sentinel} within {timeout}s"})
        return reply

    async def call(self, message: dict[str, Any]) -> Any:
        """A well-formed request's one answer."""
        reply = await self.send(json.dumps(message).encode())
        assert len(reply.answers) == 1 and not reply.strays, reply
        return reply.answers[0]


class WebSocketDoor(_Stream):
    """/ws, initialized on open."""

    name = "/ws"

    def __init__(self, http: aiohttp.ClientSession, url: str) -> None:
        super().__init__()
        self._http = http
        self._url = url.replace("http", "ws", 1) + "/ws"
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None

    async def open(self, version: str = "2025-06-18") -> WebSocketDoor:
        self._socket = await self._http.ws_connect(self._url, protocols=("mcp",))
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.initialize(version)
        return self

    async def initialize(self, version: str) -> None:
        answer = await self.call({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "doors", "version": "1"}}})
        assert answer.get("result", {}).get("protocolVersion") == version, answer

    async def _read(self) -> None:
        assert self._socket is not None
        try:
            async for frame in self._socket:
                if frame.type is aiohttp.WSMsgType.TEXT:
                    await self.received.put(exact(frame.data))
        finally:  # seen by the next exchange as an answer that is not JSON-RPC
            self.received.put_nowait({"closed": f"the WebSocket closed ({self._socket.close_code})"})

    async def _post(self, body: bytes) -> Reply:
        assert self._socket is not None
        await self._socket.send_str(body.decode("utf-8", "surrogatepass"))
        return Reply(None)

    @property
    def closed(self) -> bool:
        return self._socket is None or self._socket.closed

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            await self._reader


class LegacySseDoor(_Stream):
    """GET /sse, then POSTs to the endpoint it announces, each on a new connection (so some reach the
    other worker and are relayed); a POST it refuses is answered in the POST's own response."""

    name = "legacy /sse + /messages"

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self._http = http
        self._url = url
        self._headers = headers or {}  # sent with the GET and every POST (a credential, when auth is on)
        self._endpoint: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._reader: asyncio.Task[None] | None = None
        self._response: aiohttp.ClientResponse | None = None

    async def open(self) -> LegacySseDoor:
        # No read deadline on the stream itself (aiohttp's default ends any response after 5 minutes).
        self._response = await self._http.get(self._url + "/sse", headers={"Accept": "text/event-stream",
                                                                           **self._headers},
                                              timeout=aiohttp.ClientTimeout(total=None))
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await asyncio.wait_for(asyncio.shield(self._endpoint), 10)
        answer = await self.call({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2024-11-05", "capabilities": {}, "clientInfo": {"name": "doors", "version": "1"}}})
        assert "result" in answer, answer
        return self

    async def _read(self) -> None:
        assert self._response is not None
        kind, data = "message", []
        try:
            async for raw in self._response.content:
                line = raw.decode().rstrip("\r\n")
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    text, data = "\n".join(data), []
                    if kind == "endpoint":
                        self._endpoint.set_result(text)
                    else:
                        await self.received.put(exact(text))
                    kind = "message"
        finally:  # seen by the next exchange as an answer that is not JSON-RPC
            self.received.put_nowait({"closed": "the SSE stream ended"})

    async def _post(self, body: bytes) -> Reply:
        connection = await RawConnection.open(self._url)
        try:
            await connection.send(connection.post_bytes(body, path=self._endpoint.result(), **self._headers))
            response = await connection.response(20.0)
        finally:
            await connection.close()
        reply = Reply(response.status)
        if response.body:
            _split([exact(response.body)], reply)
        return reply

    @property
    def endpoint(self) -> str:
        """Where the stream said to POST (path and query)."""
        return self._endpoint.result()

    async def close(self) -> None:
        if self._response is not None:
            self._response.close()
        if self._reader is not None:
            self._reader.cancel()
