"""Streamable HTTP backend transport: POST per message, JSON or SSE replies, a GET stream for the rest."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from only1mcp.http.client import ConnectError, Http1Pool, HttpResponse, ResponseTooLarge, Target, render_headers
from only1mcp.http.sse import EventTooLarge, SseDecoder
from only1mcp.protocol.codec import JSONDecodeError, TooDeep, deep_replies, dumps, loads, loads_from
from only1mcp.redact import mask_secrets, mask_url

from .base import BackendUnavailable, Message, ReplyTooLarge, SessionExpired
from .credentials import Bearer, Credentials

__all__ = ["HttpTransport", "Limits"]

log = logging.getLogger("only1mcp.backend")

_RECONNECT_MAX = 30.0
_ERROR_PREFIX = 4096  # bytes of an error answer read for its message; the rest is never read
_PLAIN_HEADERS = frozenset({"Accept", "Content-Type"})  # ours; every other header value may be a secret


class Limits:
    """How large one answer and one event may be, and the settings that say so (for error messages)."""

    __slots__ = ("event", "event_setting", "response", "response_setting")

    def __init__(self, response: int, event: int, response_setting: str = "backends[].max_response_bytes",
                 event_setting: str = "backends[].max_event_bytes") -> None:
        self.response = response
        self.event = event
        self.response_setting = response_setting
        self.event_setting = event_setting


class HttpTransport:
    """One backend replica over Streamable HTTP, on the worker's shared keep-alive pool.

    The backend's ``Mcp-Session-Id`` is kept here (one per session object, i.e. per worker and capability
    profile). A 404 — or a 400 that says the session is unknown, as some servers answer — raises
    SessionExpired so the session re-initializes and retries once. A 4xx whose body is a JSON-RPC error
    for the request is the backend's answer to it. An SSE answer is read by a task of its own until its
    final response, then left (a server may keep it open); ``abandon`` ends it earlier.

    With ``credentials`` (a backend with ``oauth``) every request carries the gateway's current access token;
    a 401 gets one fresh token and one more try.
    """

    __slots__ = ("_bearer", "_block", "_connect_timeout", "_get_task", "_headers", "_label", "_limits", "_pool",
                 "_protocol_version", "_session_id", "_streams", "_target", "closed", "on_close", "on_failure",
                 "on_message", "shown_url", "url")

    def __init__(self, name: str, url: str, headers: dict[str, str], pool: Http1Pool, connect_timeout: float,
                 limits: Limits, label: str | None = None, credentials: Credentials | None = None) -> None:
        self._label = label or f"backend '{name}'"
        self._bearer = Bearer(credentials, self._label) if credentials is not None else None
        self.url = url
        self.shown_url = mask_url(url)  # for messages: no credential from the URL in logs or errors
        self._target = Target(url)
        self._headers = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json",
                         **headers}
        self._pool = pool
        self._connect_timeout = connect_timeout
        self._limits = limits
        self._session_id: str | None = None
        self._protocol_version: str | None = None
        self._block = render_headers(self._headers)
        self._get_task: asyncio.Task[None] | None = None
        self._streams: dict[Any, asyncio.Task[None]] = {}  # SSE answers being read, by request id
        self.closed = False
        self.on_message: Any = None
        self.on_failure: Any = None
        self.on_close: Any = None

    async def open(self) -> None:
        """Nothing to open: connections come from the shared pool per request."""

    def _rerender(self) -> None:
        self._block = render_headers({**self._headers, **self._session_headers()})

    def _authorize(self, value: str) -> None:
        self._headers["Authorization"] = value
        self._rerender()

    def _session_headers(self) -> dict[str, str]:
        extra: dict[str, str] = {}
        if self._session_id is not None:
            extra["Mcp-Session-Id"] = self._session_id
        if self._protocol_version is not None:
            extra["MCP-Protocol-Version"] = self._protocol_version
        return extra

    def _unreachable(self, exc: ConnectError) -> BackendUnavailable:
        return BackendUnavailable(f"cannot reach {self._label} at {self.shown_url}: {exc}", exc.sent)

    def _too_large(self, method: Any, exc: ResponseTooLarge | EventTooLarge) -> ReplyTooLarge:
        """The error for an answer over a limit, logged here once (it is not a backend failure that the
        dispatcher would log)."""
        if isinstance(exc, EventTooLarge):
            what, setting = f"an SSE event or line over {exc.limit} bytes", self._limits.event_setting
        else:
            what, setting = f"more than {exc.limit} bytes", self._limits.response_setting
        error = ReplyTooLarge(f"{self._label} sent {what} in its answer to {method or 'a request'}; the call failed "
                              f"and its connection was closed (raise {setting} if such answers are expected)")
        log.warning("%s", error.message)
        return error

    trace_header = True  # BackendSession passes a traced request's context as header lines (``trace``)

    async def send(self, message: Message, caller: str | None = None,
                   headers: dict[str, str] | None = None, trace: bytes | None = None) -> None:
        """POST one message. ``headers``: extra headers for this request only, sent without the session's
        (a 2026-07-28 request mirrors its envelope in them). ``trace``: header lines (``traceparent``,
        ``tracestate``) added to this request's. ``caller`` is for links to the stdio host."""
        if self.closed:
            raise BackendUnavailable(f"{self._label} transport is closed")
        bearer = self._bearer
        if bearer is not None and bearer.stale():
            self._authorize(await bearer.header())
        body = dumps(message)
        try:  # the pool directly: one coroutine less on every call
            block = self._block if headers is None else render_headers({**self._headers, **headers})
            if trace is not None:
                block += trace
            response = await self._pool.request("POST", self._target, block, body, self._connect_timeout,
                                                self._limits.response)
            if bearer is not None and response.status == 401:
                response = await self._with_fresh_token(bearer, response, body, headers, trace)
        except ConnectError as exc:
            raise self._unreachable(exc) from None
        try:
            await self._handle(response, message)
        except ConnectError as exc:
            response.release()
            raise BackendUnavailable(f"{self._label} broke the connection: {exc}") from None
        except ResponseTooLarge as exc:
            response.release()
            raise self._too_large(message.get("method"), exc) from None
        except BaseException:
            response.release()
            raise

    def _block_with(self, headers: dict[str, str] | None, trace: bytes | None) -> bytes:
        block = self._block if headers is None else render_headers({**self._headers, **headers})
        return block if trace is None else block + trace

    async def _with_fresh_token(self, bearer: Bearer, refused: HttpResponse, body: bytes,
                                headers: dict[str, str] | None, trace: bytes | None) -> HttpResponse:
        """The backend refused the token: the same request once more with a fresh one; a second 401 fails it."""
        refused.release()
        self._authorize(await bearer.after_refusal())
        response = await self._pool.request("POST", self._target, self._block_with(headers, trace), body,
                                            self._connect_timeout, self._limits.response)
        if response.status == 401:
            response.release()
            raise bearer.refused_again()  # logged by whoever made the call, with the call
        return response

    async def _handle(self, response: HttpResponse, message: Message) -> None:
        status = response.status
        if status == 202:
            await response.read()
            response.release()
            return
        related = message.get("id")
        if status >= 400:
            await self._refused(response, message, related)
            return
        if message.get("method") == "initialize":
            self._take_session(response.headers.get("mcp-session-id"))
        content_type = response.headers.get("content-type", "")
        if content_type.startswith("text/event-stream"):
            task = asyncio.get_running_loop().create_task(self._answer_stream(response, message))
            self._streams[related] = task
            task.add_done_callback(lambda done: self._forget_stream(related, done))
            return
        body = await response.read()
        response.release()
        if not body:
            return
        try:
            data = loads(body)
        except TooDeep as exc:  # written out, not loads_from: one call less for every JSON answer
            data = deep_replies(exc, self._label)
        except JSONDecodeError:
            raise BackendUnavailable(f"{self._label} sent invalid JSON ({content_type or 'no type'})") from None
        for item in data if isinstance(data, list) else [data]:
            if isinstance(item, dict):
                self.on_message(item, related)

    def _take_session(self, session_id: str | None) -> None:
        """The session initialize opened (if the backend keeps sessions): sent with every later request."""
        if session_id:
            self._session_id = session_id
            self._rerender()

    async def _refused(self, response: HttpResponse, message: Message, related: Any) -> None:
        """An HTTP error status: an expired session, a JSON-RPC error worth relaying to the caller (4xx),
        or the backend unavailable for this call."""
        status = response.status
        text = (await response.read_prefix(_ERROR_PREFIX)).decode("utf-8", "replace")
        response.release()
        text = mask_secrets(text, self.secrets())  # quoted to the client and the log: no echoed credential
        if self._session_id is not None and message.get("method") != "initialize" and (
            status == 404 or (status == 400 and "session" in text.lower())
        ):
            raise SessionExpired(text[:300])
        answer = _rpc_error(text, related) if status < 500 else None
        if answer is None:
            raise BackendUnavailable(f"{self._label} answered HTTP {status} to {message.get('method')}: "
                                     f"{text.strip()[:300] or 'no details'}")
        self.on_message(answer, related)

    def secrets(self) -> list[str]:
        """The values this transport sends that must never be shown (configured headers, the token)."""
        return [value for name, value in self._headers.items() if name not in _PLAIN_HEADERS]

    def _forget_stream(self, related: Any, task: asyncio.Task[None]) -> None:
        if self._streams.get(related) is task:
            del self._streams[related]

    async def _answer_stream(self, response: HttpResponse, message: Message) -> None:
        """The SSE answer to one request: read until its final response (or a limit, or the end)."""
        related = message.get("id")
        try:
            await self._consume(response, related)
        except (ResponseTooLarge, EventTooLarge) as exc:
            self.on_failure(related, self._too_large(message.get("method"), exc))
        except ConnectError as exc:
            # The connection broke before the answer (the replica went away): fail the call now rather than
            # at its deadline. A stream the backend ends by itself is left alone: it may send the answer
            # on its GET stream instead, as a resumable server can.
            log.info("%s: SSE stream ended early: %s", self._label, exc)
            self.on_failure(related, BackendUnavailable(f"{self._label} at {self.shown_url} broke off its "
                                                        f"answer to {message.get('method') or 'a request'}: {exc}"))
        finally:
            response.release()  # the connection is reused only if the stream ended by itself

    async def _consume(self, response: HttpResponse, related: Any) -> str | None:
        """Feed every event of an SSE response to on_message until the response to ``related`` went by
        (None: until the stream ends); returns the last event id seen."""
        decoder = SseDecoder(self._limits.event)
        async for chunk in response.chunks():
            answered = False
            for event in decoder.feed(chunk):
                if event.event != "message" or not event.data:
                    continue
                try:
                    data = loads_from(event.data, self._label)
                except JSONDecodeError:
                    log.warning("%s: skipped an SSE event that is not JSON", self._label)
                    continue
                for item in data if isinstance(data, list) else [data]:
                    if isinstance(item, dict):
                        self.on_message(item, related)
                        answered = answered or (related is not None and "method" not in item
                                                and item.get("id") == related)
            if answered:
                break
        return decoder.last_event_id

    async def settled(self) -> None:
        """Until every SSE answer being read has ended."""
        while self._streams:
            await asyncio.wait(list(self._streams.values()))

    def abandon(self, request_id: Any) -> None:
        task = self._streams.pop(request_id, None)
        if task is not None:
            task.cancel()

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
        refused = False
        while not self.closed:
            if self._bearer is not None and not await self._listen_token(self._bearer, refused):
                await asyncio.sleep(delay)
                delay = min(_RECONNECT_MAX, delay * 2)
                continue
            headers = {**self._headers, "Accept": "text/event-stream", **self._session_headers()}
            headers.pop("Content-Type", None)
            if last_event_id:
                headers["Last-Event-ID"] = last_event_id
            try:
                response = await self._pool.request("GET", self._target, render_headers(headers), b"",
                                                    self._connect_timeout)
            except ConnectError as exc:
                log.debug("%s: GET stream failed: %s", self._label, exc)
            else:
                refused = response.status == 401
                try:
                    if response.status == 200 and response.headers.get("content-type", "").startswith(
                            "text/event-stream"):
                        delay = 0.5
                        last_event_id = await self._consume(response, None) or last_event_id
                    elif response.status in (400, 404, 405):
                        return  # no GET stream offered, or the session is gone (the next call re-initializes)
                except EventTooLarge as exc:
                    log.warning("%s: its GET stream sent an event or line over %d bytes; reconnecting (raise %s "
                                "if such events are expected)", self._label, exc.limit, self._limits.event_setting)
                except ConnectError as exc:
                    log.info("%s: GET stream ended: %s", self._label, exc)
                finally:
                    response.release()
            await asyncio.sleep(delay)
            delay = min(_RECONNECT_MAX, delay * 2)

    async def _listen_token(self, bearer: Bearer, refused: bool) -> bool:
        """The token for the next GET (a fresh one after a 401); False when there is none for now."""
        try:
            if refused:
                self._authorize(await bearer.after_refusal())
            elif bearer.stale():
                self._authorize(await bearer.header())
        except BackendUnavailable as exc:
            log.info("%s: GET stream waits for an access token: %s", self._label, exc.message)
            return False
        return True

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._get_task is not None:
            self._get_task.cancel()
        for task in list(self._streams.values()):
            task.cancel()
        if self._session_id is not None and not self._pool.closed:
            try:  # ending the backend's session is a courtesy: it expires by itself otherwise
                response = await asyncio.wait_for(
                    self._pool.request("DELETE", self._target, self._block, b"", self._connect_timeout, 0), 2)
                response.release()
            except (ConnectError, TimeoutError) as exc:
                log.debug("%s: could not end its session with DELETE: %s", self._label, exc or "timed out")
        if self.on_close is not None:
            self.on_close(None)


def _rpc_error(text: str, request_id: Any) -> Message | None:
    """A JSON-RPC error answering ``request_id`` in an error body, if that is what it is."""
    if request_id is None:
        return None
    try:
        data = loads(text)
    except JSONDecodeError:
        return None
    if isinstance(data, dict) and isinstance(data.get("error"), dict) and data.get("id") == request_id:
        return data
    return None
