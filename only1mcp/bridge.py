"""``only1mcp stdio``: MCP on stdin/stdout, forwarded to a running gateway's Streamable HTTP endpoint.

For clients that only launch stdio servers (Claude Desktop, Cursor, …): one config entry gives them the
whole gateway. Every line from stdin is POSTed (concurrently, so a long call holds nothing up) with the
same Streamable HTTP client the gateway uses towards its backends (only1mcp/backends/http.py); JSON or
SSE answers, the GET stream's messages and requests the gateway relays from backends are written to
stdout as lines. If the gateway forgets the session (it restarted), the bridge initializes again with
the client's original parameters and retries once, so the client does not notice.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from typing import Any

from only1mcp.backends.base import BackendError, SessionExpired
from only1mcp.backends.http import HttpTransport, Limits
from only1mcp.http.client import Http1Pool
from only1mcp.protocol import modern
from only1mcp.protocol.codec import JSONDecodeError, dumps, loads
from only1mcp.protocol.jsonrpc import Code
from only1mcp.protocol.versions import LATEST

__all__ = ["StdioBridge"]

log = logging.getLogger("only1mcp.bridge")

_LINE_LIMIT = 64 * 1024 * 1024  # one message from the client; the gateway's answers are bounded the same
_CONNECT_TIMEOUT = 10.0
_LIMITS = Limits(_LINE_LIMIT, _LINE_LIMIT, "the stdio bridge's 64 MiB answer limit",
                 "the stdio bridge's 64 MiB message limit")


class StdioBridge:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self._headers = headers
        self._transport: HttpTransport | None = None
        self._version: str | None = None
        self._initialize: dict[str, Any] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewing = asyncio.Lock()
        self._renewals = itertools.count(1)
        self._generation = 0  # sessions started again since the client's initialize
        self._quiet: set[str] = set()  # ids of the bridge's own initialize requests: not for the client
        self._modern: dict[str | int, asyncio.Task[None]] = {}  # 2026-07-28 requests not yet answered, by id
        self._cancelled: set[str | int] = set()  # of those, the ones the client cancelled

    def _out(self, message: Any) -> None:
        sys.stdout.buffer.write(dumps(message) + b"\n")
        sys.stdout.buffer.flush()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        pool = Http1Pool(_CONNECT_TIMEOUT)
        transport = HttpTransport("gateway", self.url, self._headers, pool, _CONNECT_TIMEOUT, _LIMITS,
                                  label=f"the Only1MCP gateway at {self.url}")
        transport.on_message = self._on_message
        transport.on_failure = self._on_failure
        transport.on_close = lambda _exc: None  # closed by this bridge only
        self._transport = transport
        try:
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    message = loads(line)
                except JSONDecodeError as exc:
                    self._out({"jsonrpc": "2.0", "id": None, "error": {"code": int(Code.PARSE_ERROR),
                                                                       "message": f"not valid JSON: {exc}"}})
                    continue
                task = loop.create_task(self._forward(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            await transport.settled()  # SSE answers still coming for the client's last requests
        finally:
            await transport.close()  # ends the gateway session (DELETE)
            pool.close()
        return 0

    # ------------------------------------------------------------ from the gateway

    def _on_message(self, message: dict[str, Any], related: Any) -> None:
        request_id = message.get("id")
        if "method" not in message and isinstance(request_id, (str, int)):
            self._modern.pop(request_id, None)  # answered: a cancel from now on is too late
        if self._note_initialize(message) or request_id in self._quiet:
            return
        self._out(message)

    def _on_failure(self, request_id: Any, error: BackendError) -> None:
        if isinstance(request_id, (str, int)):
            self._modern.pop(request_id, None)
        self._out({"jsonrpc": "2.0", "id": request_id, "error": {"code": error.code, "message": error.message}})

    def _note_initialize(self, message: dict[str, Any]) -> bool:
        """The answer to an initialize: note the version and start the GET stream. True when it answers
        the bridge's own initialize (after the gateway forgot the session), which the client never sees."""
        result = message.get("result")
        request_id = message.get("id")
        ours = request_id in self._quiet
        client = isinstance(self._initialize, dict) and request_id == self._initialize.get("id")
        if isinstance(result, dict) and (ours or client) and "method" not in message:
            self._version = str(result.get("protocolVersion") or self._version or LATEST)
            assert self._transport is not None
            self._transport.initialized(result, self._version)
        if ours:
            self._quiet.discard(request_id)
        return ours

    # ------------------------------------------------------------ to the gateway

    async def _forward(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("method") == "initialize":
            self._initialize = message
        if self._cancel_modern(message):
            return
        mirrored = modern.http_headers(message) if isinstance(message, dict) else {}
        modern_id = message.get("id") if mirrored else None
        if isinstance(modern_id, (str, int)):
            task = asyncio.current_task()
            assert task is not None
            self._modern[modern_id] = task
        generation = self._generation
        try:
            try:
                await self._send(message, mirrored)
            except SessionExpired:
                await self._renew(generation)
                await self._send(message, mirrored)
        except (BackendError, SessionExpired) as exc:
            self._failed(message, modern_id, exc)
        except asyncio.CancelledError:
            if modern_id not in self._cancelled:
                raise
            log.debug("request %r cancelled by the client", modern_id)  # the client expects no answer
        finally:
            if modern_id is not None:
                self._cancelled.discard(modern_id)

    def _failed(self, message: Any, modern_id: Any, exc: BackendError | SessionExpired) -> None:
        """The gateway could not take ``message``: said once in the log, and to the client if it asked."""
        code, text = (exc.code, exc.message) if isinstance(exc, BackendError) else (
            int(Code.BACKEND_UNAVAILABLE), f"the Only1MCP gateway at {self.url} refused a new session: {exc}")
        log.error("%s", text)
        if isinstance(modern_id, (str, int)):
            self._modern.pop(modern_id, None)
        if isinstance(message, dict) and "id" in message and "method" in message:
            self._out({"jsonrpc": "2.0", "id": message["id"], "error": {"code": code, "message": text}})

    async def _send(self, message: Any, mirrored: dict[str, str]) -> None:
        assert self._transport is not None
        # 2026-07-28: no session; the headers repeat the envelope
        await self._transport.send(message, headers=mirrored or None)

    def _cancel_modern(self, message: Any) -> bool:
        """A 2026-07-28 client cancels with notifications/cancelled on stdio, but over HTTP by closing the
        request's response stream: abort that POST, or stop reading its SSE answer. True when the message
        was such a cancel."""
        if not (isinstance(message, dict) and message.get("method") == "notifications/cancelled"):
            return False
        request_id = (message.get("params") or {}).get("requestId")
        task = self._modern.pop(request_id, None) if isinstance(request_id, (str, int)) else None
        if task is None:
            return False
        assert self._transport is not None
        if not task.done():  # the POST itself is still waiting
            self._cancelled.add(request_id)
            task.cancel()
        self._transport.abandon(request_id)  # or its SSE answer is being read
        return True

    async def _renew(self, generation: int) -> None:
        """The gateway no longer knows the session: initialize again, quietly, with the same parameters."""
        async with self._renewing:
            if self._generation != generation:
                return  # another request already did
            assert self._initialize is not None and self._transport is not None
            log.info("gateway session expired; initializing a new one")
            self._transport.reset()
            request_id = f"only1mcp-bridge-renew-{next(self._renewals)}"
            self._quiet.add(request_id)
            await self._transport.send({**self._initialize, "id": request_id})
            await self._transport.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
            self._generation += 1
