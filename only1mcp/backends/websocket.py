"""WebSocket backend transport: one JSON-RPC message per text frame, subprotocol `mcp`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
from aiohttp import WebSocketError, WSCloseCode

from only1mcp.protocol.codec import JSONDecodeError, dumps, loads_from
from only1mcp.redact import mask_url

from .base import BackendUnavailable, Message
from .credentials import Bearer, Credentials

__all__ = ["WebSocketTransport"]

log = logging.getLogger("only1mcp.backend")


class WebSocketTransport:
    """Like the legacy SSE transport, nothing relates a message to a request: requests the backend makes go
    to its most recent call; progress is matched by token. With ``credentials`` the upgrade carries the
    gateway's token (the socket is then the session); an upgrade refused with 401 gets one fresh token and
    one more try."""

    __slots__ = ("_bearer", "_headers", "_http", "_max_message", "_name", "_reader", "_socket", "closed",
                 "connect_timeout", "on_close", "on_failure", "on_message", "shown_url", "url")

    def __init__(self, name: str, url: str, headers: dict[str, str], connect_timeout: float, max_message: int,
                 credentials: Credentials | None = None) -> None:
        self._name = name
        self._bearer = Bearer(credentials, f"backend '{name}'") if credentials is not None else None
        self._max_message = max_message
        self.url = url
        self.shown_url = mask_url(url)  # for messages: no credential from the URL in logs or errors
        self._headers = dict(headers)
        self.connect_timeout = connect_timeout
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = False
        self.on_message: Any = None
        self.on_failure: Any = None  # unused: every answer comes as a message on the one socket
        self.on_close: Any = None

    async def open(self) -> None:
        bearer = self._bearer
        if bearer is not None and bearer.stale():
            self._headers["Authorization"] = await bearer.header()
        self._http = aiohttp.ClientSession()
        try:
            self._socket = await self._upgrade(self._http, bearer)
        except BaseException:
            await self._http.close()
            raise
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _upgrade(self, http: aiohttp.ClientSession, bearer: Bearer | None) -> aiohttp.ClientWebSocketResponse:
        """The upgrade; once more with a fresh token when the backend refuses the first with 401."""
        for attempt in (1, 2):
            try:
                return await http.ws_connect(
                    self.url, protocols=("mcp",), headers=self._headers, heartbeat=30,
                    timeout=aiohttp.ClientWSTimeout(ws_close=5), max_msg_size=self._max_message)
            except aiohttp.WSServerHandshakeError as exc:
                if exc.status != 401 or bearer is None:
                    raise self._unreachable(exc) from None
                if attempt == 2:
                    raise bearer.refused_again() from None
                self._headers["Authorization"] = await bearer.after_refusal()
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                raise self._unreachable(exc) from None
        raise AssertionError("the loop returns or raises")

    def _unreachable(self, exc: BaseException) -> BackendUnavailable:
        return BackendUnavailable(f"cannot reach backend '{self._name}' at {self.shown_url}: {exc}", sent=False)

    async def _read(self) -> None:
        assert self._socket is not None
        error: BaseException | None = None
        try:
            async for frame in self._socket:
                if frame.type is aiohttp.WSMsgType.TEXT:
                    try:
                        data = loads_from(frame.data, f"backend '{self._name}'")
                    except JSONDecodeError:
                        log.warning("backend '%s': skipped a WebSocket frame that is not JSON", self._name)
                        continue
                    for item in data if isinstance(data, list) else [data]:
                        if isinstance(item, dict):
                            self.on_message(item, None)
                elif frame.type is aiohttp.WSMsgType.ERROR:
                    # a protocol error (a message too big, say) comes in the frame, not in exception()
                    error = frame.data if isinstance(frame.data, BaseException) else self._socket.exception()
                    if isinstance(error, WebSocketError) and error.code == WSCloseCode.MESSAGE_TOO_BIG:
                        error = BackendUnavailable(f"backend '{self._name}' sent a WebSocket message over "
                                                   f"{self._max_message} bytes (raise backends[].max_event_bytes "
                                                   "if such messages are expected)")
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

    def abandon(self, request_id: Any) -> None:
        """Nothing to stop: every answer comes on the one socket."""

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
