"""The worker's HTTP/1.1 fast path for POST /mcp, in front of aiohttp on the same listening socket.

Why: aiohttp's server side (request and response objects, router, stream reader, writer) was half of a
proxied call's CPU. This protocol parses with llhttp (httptools, the parser aiohttp itself vendors) and
answers the one request that carries the traffic, a legacy-era JSON-RPC POST to /mcp, with the same
FrontDoor code aiohttp uses. Figures are in docs/architecture.md ("The fast path for POST /mcp").

Every other request (another path or method, chunked or Expect bodies, HTTP/1.0, upgrades, a
2026-07-28 message) is handed over to aiohttp together with the connection: the bytes of that request
and everything after it are fed to an aiohttp RequestHandler, which keeps the connection from then on.
Requests on one connection are answered in order; a pipelined request waits for the one before it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus

import httptools
from aiohttp import web
from aiohttp.web_runner import BaseSite, TCPSite

from .exchange import Answer
from .front_door import FrontDoor

__all__ = ["FastHttp", "FastSite"]

log = logging.getLogger("only1mcp.worker")

_MAX_HEAD = 64 * 1024  # request line and headers; aiohttp allows 8 KiB per line and field
_MAX_BACKLOG = 256 * 1024  # bytes read ahead while a request is served, before reading pauses
_SWEEP = 1.0  # seconds between Date refreshes and idle-connection sweeps


class _Handoff(Exception):
    """Raised from a parser callback: this request goes to aiohttp."""


class _Pause(Exception):
    """Raised from a parser callback: a whole request is in; later bytes wait until it is answered."""


class FastHttp:
    """What the connections share: the door, aiohttp's handler factory, the Date header, the connections
    (for idle timeouts and the drain)."""

    __slots__ = ("_sweeper", "aiohttp", "connections", "date", "door", "keepalive", "stopping")

    def __init__(self, door: FrontDoor, aiohttp: web.Server, keepalive: float = 75.0) -> None:
        self.door = door
        self.aiohttp = aiohttp
        self.keepalive = keepalive
        self.connections: set[FastConnection] = set()
        self.stopping = False
        self.date = b""
        self._sweeper: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._sweep()

    def _sweep(self) -> None:
        # One timer for every connection: the Date header and idle timeouts cost nothing per request.
        self.date = formatdate(usegmt=True).encode("ascii")
        loop = asyncio.get_running_loop()
        now = loop.time()
        for connection in [c for c in self.connections if c.idle_since and now - c.idle_since > self.keepalive]:
            connection.close()
        self._sweeper = loop.call_later(_SWEEP, self._sweep)

    def connection(self) -> FastConnection:
        return FastConnection(self)

    async def drain(self, timeout: float) -> None:
        """Close idle connections now; let requests being answered finish (their connections close
        after the answer) for up to ``timeout`` seconds, then close what is left."""
        self.stopping = True
        if self._sweeper is not None:
            self._sweeper.cancel()
        for connection in list(self.connections):
            if connection.idle_since:
                connection.close()
        deadline = time.monotonic() + timeout
        while self.connections and time.monotonic() < deadline:
            busy = [c.done for c in self.connections if c.done is not None]
            if not busy:
                break
            await asyncio.wait(busy, timeout=max(0.0, deadline - time.monotonic()))
        for connection in list(self.connections):
            connection.close()


class FastSite(TCPSite):
    """aiohttp's TCP site, listening with the fast path in front of aiohttp's own handler."""

    __slots__ = ("_drain_timeout", "_fast")

    def __init__(self, runner: web.AppRunner, fast: Callable[[web.Server], FastHttp], host: str, port: int,
                 backlog: int, drain_timeout: float) -> None:
        super().__init__(runner, host, port, reuse_port=True, backlog=backlog)
        assert runner.server is not None
        self._fast = fast(runner.server)
        self._drain_timeout = drain_timeout

    async def start(self) -> None:
        await BaseSite.start(self)
        loop = asyncio.get_running_loop()
        self._fast.start()
        self._server = await loop.create_server(self._fast.connection, self._host, self._port,
                                                backlog=self._backlog, reuse_address=self._reuse_address,
                                                reuse_port=self._reuse_port)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def stop(self) -> None:
        await super().stop()  # stops accepting
        await self._fast.drain(self._drain_timeout)


class _Request:
    """The exchange of one fast-path request (see workers/exchange.py)."""

    __slots__ = ("_connection", "_headers", "keep_alive", "streaming")

    def __init__(self, connection: FastConnection, headers: dict[str, str], keep_alive: bool) -> None:
        self._connection = connection
        self._headers = headers
        self.keep_alive = keep_alive
        self.streaming = False

    def header(self, name: str) -> str | None:
        return self._headers.get(name.lower())

    def alive(self) -> bool:
        return not self._connection.lost

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


class FastConnection(asyncio.Protocol):
    """One client connection, until it is closed or handed over to aiohttp."""

    __slots__ = ("_backlog", "_body", "_can_write", "_chunks", "_fast", "_handed", "_head_done", "_headers",
                 "_parser", "_size", "_task", "_transport", "_url", "done", "idle_since", "lost")

    def __init__(self, fast: FastHttp) -> None:
        self._fast = fast
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpRequestParser(self)
        self._chunks: list[bytes] = []  # the bytes of the request being parsed, from its first byte
        self._size = 0
        self._head_done = False  # the current request's head is parsed (the 431 bound no longer applies)
        self._backlog: list[bytes] = []  # bytes that arrived while a request was being answered
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._url = b""
        self._can_write: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None  # held here: the loop keeps only weak references
        self.done: asyncio.Future[None] | None = None  # set while a request is being answered
        self.idle_since = 0.0
        self.lost = False
        self._handed = False

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._fast.connections.add(self)
        self.idle_since = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fast.connections.discard(self)
        waiter, self._can_write = self._can_write, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        if self._can_write is None:
            self._can_write = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        waiter, self._can_write = self._can_write, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def writable(self) -> None:
        if self._can_write is not None:
            await self._can_write

    def data_received(self, data: bytes) -> None:
        if self.done is not None:
            self._backlog.append(data)
            if sum(map(len, self._backlog)) > _MAX_BACKLOG and self._transport is not None:
                self._transport.pause_reading()
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._size += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Handoff):
                self._hand_over()
            elif isinstance(exc.__context__, _Pause):
                self._parser = httptools.HttpRequestParser(self)  # an aborted parser cannot go on
            else:
                raise
        except httptools.HttpParserError as exc:
            self._reject(400, f"malformed HTTP request: {exc}")
            return
        if self._handed:
            return
        if not self._head_done and self._size > _MAX_HEAD and self.done is None:
            self._reject(431, f"request head over {_MAX_HEAD} bytes")

    # ------------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        self._headers = {}
        self._body = []
        self._head_done = False
        self.idle_since = 0.0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        previous = self._headers.get(key)
        self._headers[key] = text if previous is None else f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        url, self._url = self._url, b""
        headers = self._headers
        parser = self._parser
        self._head_done = True
        length = headers.get("content-length")
        if (url != b"/mcp" or parser.get_method() != b"POST" or parser.get_http_version() != "1.1"
                or parser.should_upgrade() or length is None or not length.isdigit() or "transfer-encoding" in headers
                or "expect" in headers):
            raise _Handoff
        if int(length) > self._fast.door.body_limit():
            raise _Handoff  # aiohttp refuses it (413) without reading the body

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        chunks = self._chunks
        raw = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        skipped = len(raw) - len(raw.lstrip(b"\r\n"))  # llhttp allows empty lines between requests
        head_end = raw.find(b"\r\n\r\n", skipped) + 4
        length = head_end + int(self._headers["content-length"])
        request_bytes, rest = (raw, b"") if length == len(raw) else (raw[:length], raw[length:])
        self._chunks = []
        self._size = 0
        body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        request = _Request(self, self._headers, self._parser.should_keep_alive())
        self.done = asyncio.get_running_loop().create_future()
        self._task = asyncio.get_running_loop().create_task(self._serve(request, body, request_bytes))
        if rest:
            self._backlog.insert(0, rest)
            raise _Pause

    # ------------------------------------------------------------ answering

    async def _serve(self, request: _Request, body: bytes, request_bytes: bytes) -> None:
        door = self._fast.door
        context = door.context
        context.in_flight += 1
        context.requests += 1
        try:
            answer = door.refuse_early(request, len(body), door.body_limit())
            if answer is None:
                message = door.parse(body)
                if isinstance(message, Answer):
                    answer = message
                elif door.is_modern(request, message):  # aiohttp's stateless door serves it
                    self._chunks = [request_bytes]
                    self._finish_request(hand_over=True)
                    return
                else:
                    answer = await door.answer(request, message)
            keep_alive = request.keep_alive and not self._fast.stopping
            if not answer.streamed:
                self.write_head(answer.status, answer.headers, answer.body, keep_alive)
            elif not request.streaming:
                keep_alive = False
            await self.writable()  # read no further requests while the client is not reading answers
            self._finish_request(close=not keep_alive)
        except Exception:
            log.exception("fast path: unexpected failure answering POST /mcp")
            if not request.streaming and not self.lost:
                self.write_head(500, {"Content-Type": "text/plain"}, b"internal error", False)
            self._finish_request(close=True)
        finally:
            context.in_flight -= 1

    def _finish_request(self, close: bool = False, hand_over: bool = False) -> None:
        done, self.done = self.done, None
        if done is not None and not done.done():
            done.set_result(None)
        if self.lost:
            return
        if close:
            self.close()
            return
        backlog, self._backlog = self._backlog, []
        if self._transport is not None:
            self._transport.resume_reading()
        if hand_over:
            self._chunks.extend(backlog)
            self._hand_over()
            return
        self.idle_since = asyncio.get_running_loop().time()
        if backlog:
            self._feed(backlog[0] if len(backlog) == 1 else b"".join(backlog))

    # ------------------------------------------------------------ writing

    def write_head(self, status: int, headers: dict[str, str], body: bytes | None, keep_alive: bool) -> None:
        """The status line and headers, and ``body`` with its length; None starts a chunked body."""
        if self._transport is None or self.lost:
            return
        lines = [b"HTTP/1.1 %d %b\r\n" % (status, _reason(status)), b"Date: ", self._fast.date, b"\r\n"]
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
        self._transport.write(b"".join(lines))

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.lost:
            self._transport.write(data)

    def close(self) -> None:
        self._fast.connections.discard(self)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.close()

    def _reject(self, status: int, reason: str) -> None:
        log.info("refused %d: %s", status, reason)
        self.write_head(status, {"Content-Type": "text/plain"}, reason.encode(), False)
        self.close()

    def _hand_over(self) -> None:
        """Give the connection to aiohttp with the bytes of the current request and all that follow."""
        transport = self._transport
        self._handed = True
        self._fast.connections.discard(self)
        if transport is None or transport.is_closing():
            return
        data = b"".join(self._chunks)
        self._chunks = []
        handler = self._fast.aiohttp()
        transport.set_protocol(handler)
        handler.connection_made(transport)
        if data:
            handler.data_received(data)


_REASONS = {status.value: status.phrase.encode("ascii") for status in HTTPStatus}


def _reason(status: int) -> bytes:
    return _REASONS.get(status, b"Status")
