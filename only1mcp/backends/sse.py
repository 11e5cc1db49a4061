"""Legacy HTTP+SSE backend transport (protocol 2024-11-05): one GET stream, POSTs to the endpoint it names.

Everything the backend sends arrives on the one stream, so nothing ties a message to the request that
caused it: progress is matched by token and requests the backend makes go to its most recent call (as
for stdio). If the stream ends the transport closes; the session is then started again on next use.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import urljoin

from only1mcp.http.client import ConnectError, Http1Pool, HttpResponse, Target, render_headers
from only1mcp.http.sse import EventTooLarge, SseDecoder, SseEvent
from only1mcp.protocol.codec import JSONDecodeError, dumps, loads_from
from only1mcp.redact import mask_secrets, mask_url

from .base import BackendUnavailable, Message
from .credentials import Bearer, Credentials
from .http import Limits

__all__ = ["SseTransport"]

log = logging.getLogger("only1mcp.backend")

_POST_ANSWER = 4096  # bytes read of the answer to a POST (202 "Accepted", or an error's message)


class SseTransport:
    __slots__ = ("_bearer", "_endpoint", "_get_block", "_headers", "_limits", "_name", "_pool", "_post_block",
                 "_reader", "_ready", "_stream", "_target", "closed", "connect_timeout", "on_close", "on_failure",
                 "on_message", "shown_url", "url")

    def __init__(self, name: str, url: str, headers: dict[str, str], pool: Http1Pool, connect_timeout: float,
                 limits: Limits, credentials: Credentials | None = None) -> None:
        self._name = name
        self._limits = limits
        self.url = url
        self.shown_url = mask_url(url)  # for messages: no credential from the URL in logs or errors
        self._target = Target(url)
        self._headers = dict(headers)
        # With oauth: the GET and every POST carry the gateway's token; a 401 gets one fresh token, one more try.
        self._bearer = Bearer(credentials, f"backend '{name}'") if credentials is not None else None
        self._pool = pool
        self.connect_timeout = connect_timeout
        self._get_block = self._post_block = b""
        self._render()
        self._endpoint: Target | None = None
        self._ready: asyncio.Future[Target] | None = None
        self._stream: HttpResponse | None = None
        self._reader: asyncio.Task[None] | None = None
        self.closed = False
        self.on_message: Any = None
        self.on_failure: Any = None  # unused: every answer comes on the one stream
        self.on_close: Any = None

    def _render(self) -> None:
        self._get_block = render_headers({**self._headers, "Accept": "text/event-stream"})
        self._post_block = render_headers({**self._headers, "Content-Type": "application/json",
                                           "Accept": "application/json, text/event-stream"})

    async def _authorized(self, refused: bool = False) -> None:
        """Headers with the current token (a fresh one after a 401), when the backend has oauth."""
        bearer = self._bearer
        if bearer is None or not (refused or bearer.stale()):
            return
        self._headers["Authorization"] = await (bearer.after_refusal() if refused else bearer.header())
        self._render()

    async def open(self) -> None:
        """GET the stream and wait for its `endpoint` event."""
        response = await self._open_stream()
        if response.status != 200 or not response.headers.get("content-type", "").startswith("text/event-stream"):
            text = (await response.read_prefix(_POST_ANSWER)).decode("utf-8", "replace")[:200]
            response.release()
            raise BackendUnavailable(f"backend '{self._name}' answered HTTP {response.status} to its SSE GET: "
                                     f"{mask_secrets(text, self.secrets())}", sent=False)
        self._stream = response
        self._ready = asyncio.get_running_loop().create_future()
        self._reader = asyncio.get_running_loop().create_task(self._read(response))
        try:
            self._endpoint = await asyncio.wait_for(asyncio.shield(self._ready), self.connect_timeout)
        except TimeoutError:
            await self.close()
            raise BackendUnavailable(f"backend '{self._name}' sent no endpoint event within "
                                     f"{self.connect_timeout:g}s", sent=False) from None

    async def _open_stream(self) -> HttpResponse:
        await self._authorized()
        response = await self._request("GET", self._target, self._get_block, b"")
        if response.status == 401 and self._bearer is not None:
            response.release()
            await self._authorized(refused=True)
            response = await self._request("GET", self._target, self._get_block, b"")
            if response.status == 401:
                response.release()
                raise self._bearer.refused_again()
        return response

    async def _request(self, method: str, target: Target, block: bytes, body: bytes) -> HttpResponse:
        try:
            return await self._pool.request(method, target, block, body, self.connect_timeout)
        except ConnectError as exc:
            raise BackendUnavailable(f"cannot reach backend '{self._name}' at {self.shown_url}: {exc}",
                                     exc.sent) from None

    def secrets(self) -> list[str]:
        """Header values sent to the backend (configured ones, the token): never shown."""
        return list(self._headers.values())

    async def _read(self, response: HttpResponse) -> None:
        decoder = SseDecoder(self._limits.event)
        error: BaseException | None = None
        try:
            async for chunk in response.chunks():
                for event in decoder.feed(chunk):
                    self._event(event)
        except ConnectError as exc:
            error = exc
        except EventTooLarge as exc:
            error = BackendUnavailable(f"backend '{self._name}' sent an SSE event or line over {exc.limit} bytes "
                                       f"(raise {self._limits.event_setting} if such events are expected)")
        finally:
            response.release()
            if self._ready is not None and not self._ready.done():
                self._ready.set_exception(BackendUnavailable(f"backend '{self._name}' closed its SSE stream",
                                                             sent=False))
            if not self.closed:
                self.closed = True
                log.log(logging.WARNING if isinstance(error, BackendUnavailable) else logging.INFO,
                        "backend '%s': SSE stream ended%s", self._name, f": {error}" if error else "")
                if self.on_close is not None:
                    self.on_close(error)

    def _event(self, event: SseEvent) -> None:
        """One event of the stream: the endpoint to POST to, or message(s) for on_message."""
        if event.event == "endpoint":
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(Target(urljoin(self.url, event.data.strip())))
            return
        if event.event != "message" or not event.data:
            return
        try:
            data = loads_from(event.data, f"backend '{self._name}'")
        except JSONDecodeError:
            log.warning("backend '%s': skipped an SSE event that is not JSON", self._name)
            return
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                self.on_message(item, None)

    async def send(self, message: Message, caller: str | None = None) -> None:
        if self.closed or self._endpoint is None:
            raise BackendUnavailable(f"backend '{self._name}' is not connected", sent=False)
        await self._authorized()
        data = dumps(message)
        status, body = await self._post(self._endpoint, data)
        if status == 401 and self._bearer is not None:
            await self._authorized(refused=True)
            status, body = await self._post(self._endpoint, data)
            if status == 401:
                raise self._bearer.refused_again()
        if status >= 400:
            text = mask_secrets(body[:200].decode("utf-8", "replace"), self.secrets())
            raise BackendUnavailable(f"backend '{self._name}' answered HTTP {status} to "
                                     f"{message.get('method', 'a response')}: {text}")

    async def _post(self, endpoint: Target, data: bytes) -> tuple[int, bytes]:
        response = await self._request("POST", endpoint, self._post_block, data)
        try:
            body = await response.read_prefix(_POST_ANSWER)  # answers come on the stream; this is "Accepted"
        finally:
            response.release()
        return response.status, body

    def initialized(self, result: dict[str, Any], protocol_version: str) -> None:
        """Nothing to do: the stream is already open."""

    def reset(self) -> None:
        """Legacy SSE sessions end with their stream; there is nothing to reset."""

    def abandon(self, request_id: Any) -> None:
        """Nothing to stop: every answer comes on the one stream, read as long as the session lasts."""

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            if self._reader is not None:
                self._reader.cancel()
            if self.on_close is not None:
                self.on_close(None)
