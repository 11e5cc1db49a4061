"""Streamable HTTP backend transport: POST per message, JSON or SSE replies, a GET stream for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp

from only1mcp.protocol.codec import JSONDecodeError, dumps, loads
from only1mcp.protocol.sse import SseDecoder

from .base import BackendUnavailable, Message, SessionExpired

__all__ = ["HttpTransport"]

log = logging.getLogger("only1mcp.backend")

_ACCEPT = "application/json, text/event-stream"
_RECONNECT_MAX = 30.0


class HttpTransport:
    """One backend replica over Streamable HTTP, on a shared keep-alive connection pool.

    The backend's ``Mcp-Session-Id`` is kept here (one per session object, i.e. per worker and capability
    profile). A 404 — or a 400 that says the session is unknown, as some servers answer — raises
    SessionExpired so the session re-initializes and retries once.
    """

    __slots__ = ("_get_task", "_headers", "_http", "_name", "_protocol_version", "_session_id", "_streams",
                 "closed", "on_close", "on_message", "timeout", "url")

    def __init__(self, name: str, url: str, headers: dict[str, str], http: aiohttp.ClientSession,
                 connect_timeout: float) -> None:
        self._name = name
        self.url = url
        self._headers = {"Accept": _ACCEPT, "Content-Type": "application/json", **headers}
        self._http = http
        self.timeout = aiohttp.ClientTimeout(total=None, connect=connect_timeout, sock_connect=connect_timeout)
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._get_task: asyncio.Task[None] | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self.closed = False
        self.on_message: Any = None
        self.on_close: Any = None

    async def open(self) -> None:
        """Nothing to open: connections are made per request from the shared pool."""

    def _request_headers(self) -> dict[str, str]:
        headers = dict(self._headers)
        if self._session_id is not None:
            headers["Mcp-Session-Id"] = self._session_id
        if self._protocol_version is not None:
            headers["MCP-Protocol-Version"] = self._protocol_version
        return headers

    async def send(self, message: Message) -> None:
        if self.closed:
            raise BackendUnavailable(f"backend '{self._name}' transport is closed")
        try:
            response = await self._http.post(self.url, data=dumps(message), headers=self._request_headers(),
                                             timeout=self.timeout)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise BackendUnavailable(f"cannot reach backend '{self._name}' at {self.url}: {_reason(exc)}") from None
        try:
            await self._handle(response, message)
        except BaseException:
            response.release()
            raise

    async def _handle(self, response: aiohttp.ClientResponse, message: Message) -> None:
        status = response.status
        if status == 202:
            response.release()
            return
        if status >= 400:
            text = (await response.text(errors="replace"))[:300]
            response.release()
            if self._session_id is not None and message.get("method") != "initialize" and (
                status == 404 or (status == 400 and "session" in text.lower())
            ):
                raise SessionExpired(text)
            raise BackendUnavailable(f"backend '{self._name}' answered HTTP {status} to {message.get('method')}: "
                                     f"{text.strip() or response.reason}")
        session_id = response.headers.get("Mcp-Session-Id")
        if session_id and message.get("method") == "initialize":
            self._session_id = session_id
        content_type = response.headers.get("Content-Type", "")
        related = message.get("id")
        if content_type.startswith("text/event-stream"):
            task = asyncio.get_running_loop().create_task(self._consume(response, related))
            self._streams.add(task)
            task.add_done_callback(self._streams.discard)
            return
        body = await response.read()
        response.release()
        if not body:
            return
        try:
            data = loads(body)
        except JSONDecodeError:
            raise BackendUnavailable(f"backend '{self._name}' sent invalid JSON ({content_type or 'no type'})") \
                from None
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                self.on_message(item, related)

    async def _consume(self, response: aiohttp.ClientResponse, related: Any) -> str | None:
        """Feed every event of an SSE response to on_message; returns the last event id seen."""
        decoder = SseDecoder()
        try:
            async for chunk in response.content.iter_any():
                for event in decoder.feed(chunk):
                    if event.event != "message" or not event.data:
                        continue
                    try:
                        data = loads(event.data)
                    except JSONDecodeError:
                        log.warning("backend '%s': skipped an SSE event that is not JSON", self._name)
                        continue
                    for item in data if isinstance(data, list) else [data]:
                        if isinstance(item, dict):
                            self.on_message(item, related)
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.info("backend '%s': SSE stream ended early: %s", self._name, _reason(exc))
        finally:
            response.release()
        return decoder.last_event_id

    def initialized(self, result: dict[str, Any], protocol_version: str) -> None:
        self._protocol_version = protocol_version
        if self._get_task is None and self._session_id is not None:
            self._get_task = asyncio.get_running_loop().create_task(self._listen())

    def reset(self) -> None:
        self._session_id = None
        self._protocol_version = None
        if self._get_task is not None:
            self._get_task.cancel()
            self._get_task = None

    async def _listen(self) -> None:
        """The GET stream for messages not tied to a request; reconnects with backoff."""
        delay = 0.5
        last_event_id: str | None = None
        while not self.closed:
            headers = self._request_headers()
            headers["Accept"] = "text/event-stream"
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                response = await self._http.get(self.url, headers=headers, timeout=self.timeout)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.debug("backend '%s': GET stream failed: %s", self._name, _reason(exc))
            else:
                if response.status == 405:
                    response.release()
                    return  # the server offers no GET stream; nothing to listen to
                if response.status == 200 and response.headers.get("Content-Type", "").startswith(
                        "text/event-stream"):
                    delay = 0.5
                    last_event_id = await self._consume(response, None) or last_event_id
                else:
                    response.release()
                    if response.status in (400, 404):
                        return  # session gone; the next call re-initializes and reopens it
            await asyncio.sleep(delay)
            delay = min(_RECONNECT_MAX, delay * 2)

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._get_task is not None:
            self._get_task.cancel()
        for task in list(self._streams):
            task.cancel()
        if self._session_id is not None and not self._http.closed:
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                response = await self._http.delete(self.url, headers=self._request_headers(),
                                                   timeout=aiohttp.ClientTimeout(total=2))
                response.release()
        if self.on_close is not None:
            self.on_close(None)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out connecting"
    text = str(exc)
    return text or type(exc).__name__
