"""WebSocket backend transport: one JSON-RPC message per text frame, subprotocol `mcp`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp

from only1mcp.protocol.codec import JSONDecodeError, TooDeep, dumps, loads
from only1mcp.redact import mask_url

from .base import BackendUnavailable, Message

__all__ = ["WebSocketTransport"]

log = logging.getLogger("only1mcp.backend")


class WebSocketTransport:
    """Like the legacy SSE transport, nothing relates a message to a request: requests the backend makes go
    to its most recent call; progress is matched by token."""

    __slots__ = ("_headers", "_http", "_name", "_reader", "_socket", "closed", "connect_timeout", "on_close",
                 "on_message", "shown_url", "url")

    def __init__(self, name: str, url: str, headers: dict[str, str], connect_timeout: float) -> None:
        self._name = name
        self.url = url
        self.shown_url = mask_url(url)  # for messages: no credential from the URL in logs or errors
        self._headers = headers
        self.connect_timeout = connect_timeout
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = False
        self.on_message: Any = None
        self.on_close: Any = None

    async def open(self) -> None:
        self._http = aiohttp.ClientSession()
        try:
            self._socket = await self._http.ws_connect(
                self.url, protocols=("mcp",), headers=self._headers, heartbeat=30,
                timeout=aiohttp.ClientWSTimeout(ws_close=5), max_msg_size=64 * 1024 * 1024)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            await self._http.close()
            raise BackendUnavailable(f"cannot reach backend '{self._name}' at {self.shown_url}: {exc}",
                                     sent=False) from None
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self._socket is not None
        error: BaseException | None = None
        try:
            async for frame in self._socket:
                if frame.type is aiohttp.WSMsgType.TEXT:
                    try:
                        data = loads(frame.data)
                    except TooDeep as exc:
                        data = exc.replies(f"backend '{self._name}'")
                        log.warning("backend '%s': sent a message %s; %s", self._name, exc,
                                    "dropped it" if data is None else "its call fails with an error saying so")
                    except JSONDecodeError:
                        log.warning("backend '%s': skipped a WebSocket frame that is not JSON", self._name)
                        continue
                    for item in data if isinstance(data, list) else [data]:
                        if isinstance(item, dict):
                            self.on_message(item, None)
                elif frame.type is aiohttp.WSMsgType.ERROR:
                    error = self._socket.exception()
                    break
        finally:
            if not self.closed:
                self.closed = True
                log.info("backend '%s': WebSocket closed%s", self._name, f": {error}" if error else "")
                if self.on_close is not None:
                    self.on_close(error)

    async def send(self, message: Message, caller: str | None = None) -> None:
        if self.closed or self._socket is None:
            raise BackendUnavailable(f"backend '{self._name}' is not connected", sent=False)
        try:
            await self._socket.send_str(dumps(message).decode())
        except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
            raise BackendUnavailable(f"backend '{self._name}' WebSocket broke: {exc}") from None

    def initialized(self, result: dict[str, Any], protocol_version: str) -> None:
        """Nothing to do: the socket is the session."""

    def reset(self) -> None:
        """A WebSocket session ends with its socket."""

    async def close(self) -> None:
        already = self.closed
        self.closed = True
        if self._reader is not None:
            self._reader.cancel()
        if self._socket is not None:
            await self._socket.close()
        if self._http is not None:
            await self._http.close()
        if not already and self.on_close is not None:
            self.on_close(None)
