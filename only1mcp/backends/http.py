"""Streamable HTTP backend transport: POST per message, JSON or SSE replies, a GET stream for the rest."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from only1mcp.protocol.codec import JSONDecodeError, TooDeep, dumps, loads
from only1mcp.protocol.sse import SseDecoder
from only1mcp.redact import mask_url

from .base import BackendUnavailable, Message, SessionExpired
from .http1 import ConnectError, Http1Pool, HttpResponse, Target

__all__ = ["HttpTransport"]

log = logging.getLogger("only1mcp.backend")

_RECONNECT_MAX = 30.0


def _render(headers: dict[str, str]) -> bytes:
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n"):
            raise ValueError(f"header {name!r} contains a line break")
    return "".join(f"{name}: {value}\r\n" for name, value in headers.items()).encode("latin-1")


class HttpTransport:
    """One backend replica over Streamable HTTP, on the worker's shared keep-alive pool.

    The backend's ``Mcp-Session-Id`` is kept here (one per session object, i.e. per worker and capability
    profile). A 404 — or a 400 that says the session is unknown, as some servers answer — raises
    SessionExpired so the session re-initializes and retries once.
    """

    __slots__ = ("_block", "_connect_timeout", "_get_task", "_headers", "_name", "_pool", "_protocol_version",
                 "_session_id", "_streams", "_target", "closed", "on_close", "on_message", "shown_url", "url")

    def __init__(self, name: str, url: str, headers: dict[str, str], pool: Http1Pool,
                 connect_timeout: float) -> None:
        self._name = name
        self.url = url
        self.shown_url = mask_url(url)  # for messages: no credential from the URL in logs or errors
        self._target = Target(url)
        self._headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                         **headers}
        self._pool = pool
        self._connect_timeout = connect_timeout
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._block = _render(self._headers)
        self._get_task: asyncio.Task[None] | None = None
        self._streams: set[asyncio.Task[None]] = set()
        self.closed = False
        self.on_message: Any = None
        self.on_close: Any = None

    async def open(self) -> None:
        """Nothing to open: connections come from the shared pool per request."""

    def _rerender(self) -> None:
        extra: dict[str, str] = {}
        if self._session_id is not None:
            extra["Mcp-Session-Id"] = self._session_id
        if self._protocol_version is not None:
            extra["MCP-Protocol-Version"] = self._protocol_version
        self._block = _render({**self._headers, **extra})

    async def _request(self, method: str, body: bytes = b"", block: bytes | None = None) -> HttpResponse:
        try:
            return await self._pool.request(method, self._target, block or self._block, body, self._connect_timeout)
        except ConnectError as exc:
            raise self._unreachable(exc) from None

    def _unreachable(self, exc: ConnectError) -> BackendUnavailable:
        return BackendUnavailable(f"cannot reach backend '{self._name}' at {self.shown_url}: {exc}", exc.sent)

    async def send(self, message: Message, caller: str | None = None) -> None:
        if self.closed:
            raise BackendUnavailable(f"backend '{self._name}' transport is closed")
        try:  # the pool directly, not _request(): one coroutine less on every call
            response = await self._pool.request("POST", self._target, self._block, dumps(message),
                                                self._connect_timeout)
        except ConnectError as exc:
            raise self._unreachable(exc) from None
        try:
            await self._handle(response, message)
        except ConnectError as exc:
            response.release()
            raise BackendUnavailable(f"backend '{self._name}' broke the connection: {exc}") from None
        except BaseException:
            response.release()
            raise

    async def _handle(self, response: HttpResponse, message: Message) -> None:
        status = response.status
        if status == 202:
            await response.read()
            response.release()
            return
        if status >= 400:
            text = (await response.read()).decode("utf-8", "replace")[:300]
            response.release()
            if self._session_id is not None and message.get("method") != "initialize" and (
                status == 404 or (status == 400 and "session" in text.lower())
            ):
                raise SessionExpired(text)
            raise BackendUnavailable(f"backend '{self._name}' answered HTTP {status} to {message.get('method')}: "
                                     f"{text.strip() or 'no details'}")
        if message.get("method") == "initialize":
            session_id = response.headers.get("mcp-session-id")
            if session_id:
                self._session_id = session_id
                self._rerender()
        content_type = response.headers.get("content-type", "")
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
        except TooDeep as exc:
            data = exc.replies(f"backend '{self._name}'")
            log.warning("backend '%s': sent a message %s; %s", self._name, exc,
                        "dropped it" if data is None else "its call fails with an error saying so")
        except JSONDecodeError:
            raise BackendUnavailable(f"backend '{self._name}' sent invalid JSON ({content_type or 'no type'})") \
                from None
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                self.on_message(item, related)

    async def _consume(self, response: HttpResponse, related: Any) -> str | None:
        """Feed every event of an SSE response to on_message; returns the last event id seen."""
        decoder = SseDecoder()
        try:
            async for chunk in response.chunks():
                for event in decoder.feed(chunk):
                    if event.event != "message" or not event.data:
                        continue
                    try:
                        data = loads(event.data)
                    except TooDeep as exc:
                        data = exc.replies(f"backend '{self._name}'")
                        log.warning("backend '%s': sent a message %s; %s", self._name, exc,
                                    "dropped it" if data is None else "its call fails with an error saying so")
                    except JSONDecodeError:
                        log.warning("backend '%s': skipped an SSE event that is not JSON", self._name)
                        continue
                    for item in data if isinstance(data, list) else [data]:
                        if isinstance(item, dict):
                            self.on_message(item, related)
        except ConnectError as exc:
            log.info("backend '%s': SSE stream ended early: %s", self._name, exc)
        finally:
            response.release()
        return decoder.last_event_id

    def initialized(self, result: dict[str, Any], protocol_version: str) -> None:
        self._protocol_version = protocol_version
        self._rerender()
        if self._get_task is None and self._session_id is not None:
            self._get_task = asyncio.get_running_loop().create_task(self._listen())

    def reset(self) -> None:
        self._session_id = None
        self._protocol_version = None
        self._rerender()
        if self._get_task is not None:
            self._get_task.cancel()
            self._get_task = None

    async def _listen(self) -> None:
        """The GET stream for messages not tied to a request; reconnects with backoff."""
        delay = 0.5
        last_event_id: str | None = None
        while not self.closed:
            headers = {**self._headers, "Accept": "text/event-stream"}
            headers.pop("Content-Type", None)
            if self._session_id:
                headers["Mcp-Session-Id"] = self._session_id
            if self._protocol_version:
                headers["MCP-Protocol-Version"] = self._protocol_version
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                response = await self._request("GET", block=_render(headers))
            except BackendUnavailable as exc:
                log.debug("backend '%s': GET stream failed: %s", self._name, exc)
            else:
                if response.status == 200 and response.headers.get("content-type", "").startswith(
                        "text/event-stream"):
                    delay = 0.5
                    last_event_id = await self._consume(response, None) or last_event_id
                else:
                    response.release()
                    if response.status in (400, 404, 405):
                        return  # no GET stream offered, or the session is gone (the next call re-initializes)
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
        if self._session_id is not None and not self._pool.closed:
            with contextlib.suppress(BackendUnavailable, ConnectError):
                response = await asyncio.wait_for(self._request("DELETE"), 2)
                response.release()
        if self.on_close is not None:
            self.on_close(None)
