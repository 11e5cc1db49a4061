"""A small keep-alive HTTP/1.1 client for the data path: asyncio.Protocol plus the llhttp parser.

Measured on the 2-core box against aiohttp's ClientSession for one proxied tools/call: see
docs/architecture.md ("Our own keep-alive HTTP/1.1 upstream"). It does only what backends need: requests
with a body, responses read whole (JSON) or as they arrive (SSE), chunked transfer, TLS, and a per-host
pool of idle connections reused LIFO. A request that finds its reused connection closed by the server
before any byte of the answer is retried once on a new connection, as browsers and aiohttp do.

Servers are not trusted: a response head is bounded (64 KiB), a body by the limit its request sets
(response.py), a streamed body is read no faster than it is consumed, and a body not read to its end
closes its connection instead of being drained.
"""

from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httptools

from .response import HttpResponse, ResponseTooLarge

__all__ = ["ConnectError", "Http1Pool", "HttpResponse", "NotConnected", "ResponseTooLarge", "Target", "render_headers"]

_MAX_HEAD = 64 * 1024  # a response's status line and headers


class ConnectError(OSError):
    """The connection could not be made (``sent`` False), or broke before an answer (``sent`` True)."""

    sent = True


class NotConnected(ConnectError):
    sent = False


def render_headers(headers: dict[str, str]) -> bytes:
    """A header block ("Name: value\\r\\n" lines) to render once and send with many requests."""
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n"):
            raise ValueError(f"header {name!r} contains a line break")
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


class Target:
    """A parsed URL: where to connect and what to put in the request line."""

    __slots__ = ("host", "host_header", "key", "path", "port", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        default = (self.tls and self.port == 443) or (not self.tls and self.port == 80)
        shown = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = shown if default else f"{shown}:{self.port}"
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.key = (self.host, self.port, self.tls)


class _Connection(asyncio.Protocol):
    __slots__ = ("_head_size", "_headers", "_in_head", "_parser", "_pool", "_response", "_transport", "closed",
                 "got_bytes", "key", "ready")

    def __init__(self, pool: Http1Pool, key: tuple[str, int, bool]) -> None:
        self._pool = pool
        self.key = key
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._response: HttpResponse | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_size = 0
        self._in_head = False  # between sending a request and the end of its response's head
        self.ready: asyncio.Future[HttpResponse] | None = None
        self.closed = False
        self.got_bytes = False

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self.abort(ConnectError(f"invalid HTTP response: {exc}"))
            return
        if self._in_head:
            self._head_size += len(data)
            if self._head_size > _MAX_HEAD:
                self.abort(ConnectError(f"invalid HTTP response: its head is over {_MAX_HEAD} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._pool.forget(self)
        self._fail(ConnectError(f"connection closed by the server{': ' + str(exc) if exc else ''}"))
        self._parser = None  # type: ignore[assignment]  # it and this protocol reference each other

    # -- llhttp callbacks
    def on_message_begin(self) -> None:
        self._headers = []

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        response = self._response
        if response is None:
            return
        response.status = self._parser.get_status_code()
        response.headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in self._headers}
        response.keep_alive = self._parser.should_keep_alive()
        if self.ready is not None and not self.ready.done():
            self.ready.set_result(response)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response.feed(body)

    def on_message_complete(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.finish()

    # -- used by the pool and by responses
    def send(self, data: bytes, limit: int | None) -> HttpResponse:
        assert self._transport is not None
        self._response = HttpResponse(self, limit)
        self.ready = asyncio.get_running_loop().create_future()
        self.got_bytes = False
        self._head_size = 0
        self._in_head = True
        self._transport.write(data)
        return self._response

    def _fail(self, error: BaseException) -> None:
        if self.ready is not None and not self.ready.done():
            self.ready.set_exception(error)
        response, self._response = self._response, None
        if response is not None:
            response.finish(error)

    def abort(self, error: BaseException) -> None:
        """Fail the exchange in progress with ``error`` and drop the connection."""
        self._fail(error)
        self.close()

    def pause_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self.closed:
            self._transport.resume_reading()

    def idle(self) -> None:
        if self.closed:
            return
        self.ready = None
        self._pool.put(self)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._pool.forget(self)
            if self._transport is not None:
                self._transport.abort()  # nothing of ours is left to send; never wait on a hostile peer


class Http1Pool:
    """Idle keep-alive connections per (host, port, tls), reused last-in first-out."""

    __slots__ = ("_connect_timeout", "_idle", "_ssl", "closed")

    def __init__(self, connect_timeout: float = 10.0, ssl_context: ssl.SSLContext | None = None) -> None:
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context
        self._idle: dict[tuple[str, int, bool], list[_Connection]] = {}
        self.closed = False

    def put(self, conn: _Connection) -> None:
        self._idle.setdefault(conn.key, []).append(conn)

    def forget(self, conn: _Connection) -> None:
        idle = self._idle.get(conn.key)
        if idle and conn in idle:
            idle.remove(conn)

    async def _connect(self, target: Target, timeout: float) -> _Connection:
        loop = asyncio.get_running_loop()
        context: ssl.SSLContext | None = None
        if target.tls:
            context = self._ssl or ssl.create_default_context()
            self._ssl = context
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                lambda: _Connection(self, target.key), target.host, target.port, ssl=context,
                server_hostname=target.host if target.tls else None), timeout)
        except TimeoutError:
            raise NotConnected(f"timed out connecting to {target.host_header} after {timeout:g}s") from None
        except OSError as exc:
            raise NotConnected(f"cannot connect to {target.host_header}: {exc.strerror or exc}") from None
        return conn

    async def request(self, method: str, target: Target, headers: bytes, body: bytes = b"",
                      connect_timeout: float | None = None, limit: int | None = None) -> HttpResponse:
        """Send one request; returns when the status line and headers are in.

        ``headers`` is the pre-rendered header block ("Name: value\\r\\n" lines) a transport builds once;
        ``limit`` bounds the response body (None: unbounded, for a long-lived stream).
        """
        head = (f"{method} {target.path} HTTP/1.1\r\nHost: {target.host_header}\r\n"
                f"Content-Length: {len(body)}\r\n").encode() + headers + b"\r\n"
        data = head + body
        for _ in range(2):
            idle = self._idle.get(target.key)
            conn = None
            while idle:
                candidate = idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
            reused = conn is not None
            if conn is None:
                conn = await self._connect(target, connect_timeout or self._connect_timeout)
            response = conn.send(data, limit)
            assert conn.ready is not None
            try:
                return await conn.ready
            except ConnectError:
                if not (reused and not conn.got_bytes):
                    raise
                # the server closed an idle connection just as we reused it: once more, on a fresh one
            except BaseException:
                response.release()
                raise
        raise ConnectError(f"connection to {target.host_header} kept closing")  # unreachable in practice

    def close(self) -> None:
        self.closed = True
        for idle in list(self._idle.values()):
            for conn in list(idle):
                conn.close()
        self._idle.clear()
