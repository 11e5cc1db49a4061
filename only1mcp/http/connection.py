"""One client connection of the HTTP server, from accept until it is closed or handed to the fallback.

Requests are parsed with llhttp (httptools). A request the handler claims is read whole (head and a
Content-Length body, in one buffer) and answered; pipelined requests wait for the one before them. Any
other request goes to the fallback with the connection at the end of its head: its bytes so far and all
after them are fed to the fallback's protocol, which keeps the connection. Every head is parsed here
first, so the head limits (size, field count, one Host) apply whoever answers the request.
"""

from __future__ import annotations

import asyncio
import logging
from types import CoroutineType
from typing import TYPE_CHECKING

import httptools

from .request import Request
from .writing import ResponseWriter

if TYPE_CHECKING:
    from .server import HttpServer

__all__ = ["BODY", "BUSY", "HEAD", "IDLE", "HttpConnection"]

log = logging.getLogger("only1mcp.http")

# What a connection is doing; each phase but BUSY has its own time limit (see HttpServer.sweep).
HEAD = 0  # waiting for or receiving a request head: server.header_timeout
BODY = 1  # receiving a request body: server.body_timeout
BUSY = 2  # its request is being answered: the handler's own deadlines apply
IDLE = 3  # between requests: server.keepalive_timeout

_MAX_BACKLOG = 256 * 1024  # bytes read ahead while a request is answered, before reading pauses
_TEXT = {"Content-Type": "text/plain"}


class _Handoff(Exception):
    """Raised from a parser callback: this request goes to the fallback."""


class _Pause(Exception):
    """Raised from a parser callback: a whole request is in; later bytes wait until it is answered."""


class _Refused(Exception):
    """Raised from a parser callback: the request breaks a limit; answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class HttpConnection(ResponseWriter):
    """One client connection; ``phase`` and ``since`` tell the server's sweep which time limit runs."""

    __slots__ = ("_backlog", "_backlog_size", "_buffer", "_fields", "_handed", "_head_end", "_headers", "_length",
                 "_limits", "_parser", "_peer", "_task", "_url", "done", "phase", "since")

    _server: HttpServer

    def __init__(self, server: HttpServer) -> None:
        super().__init__(server)
        self._parser = httptools.HttpRequestParser(self)
        # The bytes of the request being parsed, from its first byte: the only copy of its body.
        self._buffer: bytes | bytearray = b""
        self._backlog: list[bytes] = []  # bytes that arrived while a request was being answered
        self._backlog_size = 0
        self._headers: dict[str, str] = {}
        self._fields = 0
        self._limits = server.limits  # those in force when the current request began
        self._url = b""
        self._head_end = 0
        self._length = 0
        self._task: asyncio.Task[None] | None = None  # held here: the loop keeps only weak references
        self._handed = False
        self._peer: str | None = None
        self.done: asyncio.Future[None] | None = None  # set while a request is being answered
        self.phase = HEAD
        self.since = 0.0

    def peer(self) -> str:
        """The client's IP address ('' when unknown), read from the socket once per connection."""
        if self._peer is None:
            name = self._transport.get_extra_info("peername") if self._transport is not None else None
            self._peer = str(name[0]) if isinstance(name, tuple) and name else ""
        return self._peer

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        server = self._server
        self.since = server.clock()
        if not server.admit(self):
            self.write_head(503, {**_TEXT, "Retry-After": "1"}, b"this worker holds as many connections as it "
                            b"may (server.max_connections); retry shortly", False)
            self._handed = True  # nothing more is read from it
            self._transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._release()

    def data_received(self, data: bytes) -> None:
        if self._handed:
            return
        if self.done is not None:
            self._backlog.append(data)
            self._backlog_size += len(data)
            if self._backlog_size > _MAX_BACKLOG and self._transport is not None:
                self._transport.pause_reading()
            return
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        if self._buffer:
            self._grow(data)
        else:
            self._buffer = data  # the usual case, a whole request in one read: no copy
        signal: BaseException | None = None
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            signal = exc.__context__
            if not isinstance(signal, (_Handoff, _Pause, _Refused)):
                raise
        except httptools.HttpParserError as exc:
            signal = _Refused(400, f"malformed HTTP request: {exc}")
        # Acted on outside the except blocks: an exception raised in there (by the fallback, say) would
        # otherwise carry ours as its context and be logged as a chain of three.
        if signal is None:
            phase = self.phase
            if phase == BUSY:  # the usual case: a whole request in this read
                return
            if phase != BODY and len(self._buffer) > self._limits.max_header_size:
                self._refuse(431, f"request head over {self._limits.max_header_size} bytes (server.max_header_size)")
            elif not self.since:  # a head or body began in this read and is not complete: its clock starts
                self.since = self._server.clock()
        else:
            self._signalled(signal)

    def _grow(self, data: bytes) -> None:
        """A request in several reads: its bytes in one growing buffer."""
        buffer = self._buffer
        if isinstance(buffer, bytearray):
            buffer += data
        else:
            grown = bytearray(buffer)
            grown += data
            self._buffer = grown

    def _signalled(self, signal: BaseException) -> None:
        """What a parser callback raised to stop the parser: pause, hand over, or refuse."""
        if isinstance(signal, _Pause):
            self._parser = httptools.HttpRequestParser(self)  # an aborted parser cannot go on
        elif isinstance(signal, _Handoff):
            data, self._buffer = bytes(self._buffer), b""
            self._hand_over(data)
        else:
            self._refuse(signal.status, signal.reason)  # type: ignore[attr-defined]

    # ------------------------------------------------------------ llhttp callbacks

    def on_message_begin(self) -> None:
        self._headers = {}
        self._fields = 0
        self._limits = self._server.limits
        if self.phase != HEAD:  # after a request: the head's time starts now; a new connection's at accept
            self.phase = HEAD
            self.since = 0.0  # set at the end of this read if the head is still incomplete (see _feed)

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields += 1
        if self._fields > self._limits.max_header_count:
            raise _Refused(431, f"more than {self._limits.max_header_count} header fields (server.max_header_count)")
        key = name.decode("latin-1").lower()
        # As aiohttp reads them (the doors see one text whichever server read the request): without the
        # whitespace after the value (RFC 9110 5.5; llhttp strips only the one before it), and as UTF-8, a
        # byte that is not kept as a surrogate escape. A credential of non-ASCII text, or followed by a space,
        # then matches on every door.
        text = value.rstrip(b" \t").decode("utf-8", "surrogateescape")
        headers = self._headers
        previous = headers.get(key)
        if previous is None:
            headers[key] = text
        elif key == "host":  # joined, two Hosts could pass a check that one of them would fail
            raise _Refused(400, "more than one Host header")
        else:
            headers[key] = f"{previous}, {text}"

    def on_headers_complete(self) -> None:
        url, self._url = self._url, b""
        buffer = self._buffer
        start = 0
        while buffer[start] in (10, 13):  # llhttp skips empty lines before a request
            start += 1
        head_end = buffer.find(b"\r\n\r\n", start) + 4
        limits = self._limits
        if head_end - start > limits.max_header_size:
            raise _Refused(431, f"request head over {limits.max_header_size} bytes (server.max_header_size)")
        headers = self._headers
        parser = self._parser
        length = headers.get("content-length")
        if (length is None or not length.isdigit() or (parser.get_method(), url) not in self._server.handler.routes
                or parser.get_http_version() != "1.1" or parser.should_upgrade() or "transfer-encoding" in headers
                or "expect" in headers or int(length) > limits.max_body_size):
            raise _Handoff  # the fallback refuses a body over the limit without reading it
        self._head_end = head_end
        self._length = int(length)
        self.phase = BODY
        self.since = 0.0  # set at the end of this read if the body is still incomplete (see _feed)

    def on_message_complete(self) -> None:
        buffer = self._buffer
        start = self._head_end
        end = start + self._length
        # A large body arrived in several reads into a bytearray: hand out a view of it, not a copy.
        body = buffer[start:end] if isinstance(buffer, bytes) else memoryview(buffer)[start:end]
        rest = buffer[end:] if end < len(buffer) else b""
        self._buffer = b""
        self.phase = BUSY
        request = Request(self, self._headers, self._parser.should_keep_alive())
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self._task = loop.create_task(self._serve(request, body, buffer, end))
        if rest:
            self._backlog.insert(0, bytes(rest))
            self._backlog_size += len(rest)
            raise _Pause

    # ------------------------------------------------------------ answering

    async def _serve(self, request: Request, body: bytes | memoryview, buffer: bytes | bytearray, end: int) -> None:
        server = self._server
        handler = server.handler
        try:
            reply = handler.answer(request, body)
            if type(reply) is CoroutineType:
                reply = await reply
            if reply is None:  # the fallback serves it after all
                self._finish(hand_over=bytes(buffer[:end]))
                return
            keep_alive = request.keep_alive and not server.stopping
            if not reply.streamed:  # type: ignore[union-attr]
                self.write_head(reply.status, reply.headers, reply.body, keep_alive)  # type: ignore[union-attr]
            elif not request.streaming:
                keep_alive = False
            await self.writable()  # read no further requests while the client is not reading answers
            self._finish(close=not keep_alive)
        except Exception:
            log.exception("unexpected failure answering a request; it got 500 and its connection was closed")
            if not request.streaming and not self.lost:
                self.write_head(500, _TEXT, b"internal error", False)
            self._finish(close=True)
        finally:
            handler.finished()

    def _finish(self, close: bool = False, hand_over: bytes | None = None) -> None:
        done, self.done = self.done, None
        if done is not None and not done.done():
            done.set_result(None)
        if self.lost:
            return
        if close:
            self.close()
            return
        backlog, self._backlog = self._backlog, []
        self._backlog_size = 0
        if self._transport is not None:
            self._transport.resume_reading()
        if hand_over is not None:
            self._hand_over(b"".join([hand_over, *backlog]))
            return
        self.phase = IDLE
        self.since = self._server.clock()
        if backlog:
            self._feed(backlog[0] if len(backlog) == 1 else b"".join(backlog))

    def time_out(self, what: str) -> None:
        """Close a connection that outstayed its phase's limit (``what`` names it); a client in the middle
        of sending a request is told so (408), one that sent nothing or stopped reading is not."""
        if self.stalled:
            self.close(abort=True)  # its unread answers would keep a closing connection open
        elif self.phase == BODY or (self.phase == HEAD and self._buffer):
            self.write_head(408, _TEXT, f"request not received in time ({what})".encode(), False)
            self.close()
        else:
            self.close()

    def _refuse(self, status: int, reason: str) -> None:
        log.info("refused %d: %s", status, reason)
        self.write_head(status, _TEXT, reason.encode(), False)
        self._handed = True  # read nothing more: the connection is closing
        self.close()

    def _release(self) -> None:
        """Drop the parser and the request's bytes. The parser and this protocol reference each other: a
        cycle that only a full GC pass frees, and workers run those rarely (2,400 short connections left a
        worker 12 MB larger; half-sent bodies, megabytes each, stayed until a second wave doubled them)."""
        self._parser = None  # type: ignore[assignment]  # nothing parses for a closed or handed-over connection
        self._buffer = b""
        self._backlog = []

    def _hand_over(self, data: bytes) -> None:
        """Give the connection to the fallback with ``data``: the bytes of the current request and after."""
        transport = self._transport
        self._handed = True
        self._server.forget(self)
        self._release()
        if transport is None or transport.is_closing():
            return
        protocol = self._server.fallback.protocol()
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if data:
            protocol.data_received(data)

