"""``only1mcp stdio``: MCP on stdin/stdout, forwarded to a running gateway's Streamable HTTP endpoint.

For clients that only launch stdio servers (Claude Desktop, Cursor, …): one config entry gives them the
whole gateway. Every line from stdin is POSTed (concurrently, so a long call holds nothing up); JSON or
SSE answers, the GET stream's messages and requests the gateway relays from backends are written to
stdout as lines. If the gateway forgets the session (it restarted), the bridge initializes again with
the client's original parameters and retries once, so the client does not notice.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import aiohttp

from only1mcp.http.sse import SseDecoder
from only1mcp.protocol import modern
from only1mcp.protocol.codec import JSONDecodeError, dumps, loads

__all__ = ["StdioBridge"]

log = logging.getLogger("only1mcp.bridge")

_ACCEPT = "application/json, text/event-stream"
_LINE_LIMIT = 64 * 1024 * 1024


class StdioBridge:
    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.url = url
        self._headers = headers
        self._session_id: str | None = None
        self._version: str | None = None
        self._initialize: dict[str, Any] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._listener: asyncio.Task[None] | None = None
        self._renewing: asyncio.Lock = asyncio.Lock()
        self._modern: dict[str | int, asyncio.Task[None]] = {}  # 2026-07-28 requests in flight, by id
        self._cancelled: set[str | int] = set()  # of those, the ones the client cancelled

    def _out(self, message: Any) -> None:
        sys.stdout.buffer.write(dumps(message) + b"\n")
        sys.stdout.buffer.flush()

    def _request_headers(self, accept: str = _ACCEPT) -> dict[str, str]:
        headers = {**self._headers, "Accept": accept, "Content-Type": "application/json"}
        if self._session_id:
            headers["Mcp-Session-Id"] = self._session_id
        if self._version:
            headers["MCP-Protocol-Version"] = self._version
        return headers

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=_LINE_LIMIT)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=10)) as http:
            self._http = http
            while line := await reader.readline():
                if not line.strip():
                    continue
                try:
                    message = loads(line)
                except JSONDecodeError as exc:
                    self._out({"jsonrpc": "2.0", "id": None, "error": {"code": -32700,
                                                                       "message": f"not valid JSON: {exc}"}})
                    continue
                task = loop.create_task(self._forward(message))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            if self._listener is not None:
                self._listener.cancel()
            if self._session_id:
                async with http.delete(self.url, headers=self._request_headers()):
                    pass
        return 0

    def _cancel_modern(self, message: Any) -> bool:
        """A 2026-07-28 client cancels with notifications/cancelled on stdio, but over HTTP by closing the
        request's response stream: abort that POST. True when the message was such a cancel."""
        if not (isinstance(message, dict) and message.get("method") == "notifications/cancelled"):
            return False
        request_id = (message.get("params") or {}).get("requestId")
        task = self._modern.get(request_id) if isinstance(request_id, str | int) else None
        if task is None:
            return False
        self._cancelled.add(request_id)
        task.cancel()
        return True

    async def _forward(self, message: Any) -> None:
        if isinstance(message, dict) and message.get("method") == "initialize":
            self._initialize = message
        if self._cancel_modern(message):
            return
        modern_id = message.get("id") if isinstance(message, dict) and modern.http_headers(message) else None
        if isinstance(modern_id, str | int):
            task = asyncio.current_task()
            assert task is not None
            self._modern[modern_id] = task
        try:
            status = await self._post(message)
            if status == 404 and self._session_id and self._initialize is not None:
                await self._renew()
                status = await self._post(message)
            if isinstance(message, dict) and message.get("method") == "notifications/initialized" \
                    and self._listener is None and self._session_id:
                self._listener = asyncio.get_running_loop().create_task(self._listen())
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.error("gateway at %s unreachable: %s", self.url, exc)
            if isinstance(message, dict) and "id" in message and "method" in message:
                self._out({"jsonrpc": "2.0", "id": message["id"], "error": {
                    "code": -32003, "message": f"the Only1MCP gateway at {self.url} is unreachable: {exc}"}})
        except asyncio.CancelledError:
            if modern_id not in self._cancelled:
                raise
            log.debug("request %r cancelled by the client", modern_id)  # the client expects no answer
        finally:
            if modern_id is not None:
                self._modern.pop(modern_id, None)
                self._cancelled.discard(modern_id)

    async def _post(self, message: Any, echo: bool = True) -> int:
        assert self._http is not None
        mirrored = modern.http_headers(message) if isinstance(message, dict) else {}
        if mirrored:  # 2026-07-28: no session; the headers repeat the envelope
            headers = {**self._headers, "Accept": _ACCEPT, "Content-Type": "application/json", **mirrored}
        else:
            headers = self._request_headers()
        async with self._http.post(self.url, data=dumps(message), headers=headers) as response:
            if isinstance(message, dict) and message.get("method") == "initialize" and response.status == 200:
                self._session_id = response.headers.get("Mcp-Session-Id") or self._session_id
            if response.status == 404 and self._session_id:
                return 404
            kind = response.headers.get("Content-Type", "")
            if kind.startswith("text/event-stream"):
                await self._relay_stream(response, echo)
                return response.status
            body = await response.read()
            if not body:
                return response.status
            data = loads(body)
            for item in data if isinstance(data, list) else [data]:
                self._note_version(item)
                if echo:
                    self._out(item)
            return response.status

    def _note_version(self, item: Any) -> None:
        if isinstance(item, dict) and isinstance(item.get("result"), dict) and \
                isinstance(self._initialize, dict) and item.get("id") == self._initialize.get("id"):
            self._version = item["result"].get("protocolVersion") or self._version

    async def _relay_stream(self, response: aiohttp.ClientResponse, echo: bool = True) -> str | None:
        decoder = SseDecoder()
        async for chunk in response.content.iter_any():
            for event in decoder.feed(chunk):
                if event.event == "message" and event.data:
                    item = loads(event.data)
                    self._note_version(item)
                    if echo:
                        self._out(item)
        return decoder.last_event_id

    async def _renew(self) -> None:
        """The gateway no longer knows the session: initialize again, quietly, with the same parameters."""
        async with self._renewing:
            log.info("gateway session expired; initializing a new one")
            self._session_id = None
            assert self._initialize is not None
            await self._post(self._initialize, echo=False)
            await self._post({"jsonrpc": "2.0", "method": "notifications/initialized"}, echo=False)

    async def _listen(self) -> None:
        """The GET stream: messages the gateway sends outside any call, resumed with Last-Event-ID."""
        assert self._http is not None
        last: str | None = None
        delay = 0.5
        while True:
            headers = self._request_headers(accept="text/event-stream")
            if last:
                headers["Last-Event-ID"] = last
            try:
                async with self._http.get(self.url, headers=headers) as response:
                    if response.status == 405:
                        return
                    if response.status == 200:
                        delay = 0.5
                        last = await self._relay_stream(response) or last
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.info("GET stream interrupted: %s", exc)
            await asyncio.sleep(delay)
            delay = min(30.0, delay * 2)
