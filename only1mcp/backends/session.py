"""An MCP client session to one backend replica, shared by many callers.

Callers' ids and progress tokens are replaced by the session's own, so any number of clients share one
backend session; responses and progress are mapped back to the caller that asked.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from only1mcp import __version__
from only1mcp.background import watched
from only1mcp.observe.spans import Span
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.versions import LATEST

from .base import (
    BackendError,
    BackendRpcError,
    BackendTimeout,
    BackendUnavailable,
    Message,
    SessionExpired,
    Transport,
)

__all__ = ["BackendSession", "Pending"]

log = logging.getLogger("only1mcp.backend")

CLIENT_INFO = {"name": "only1mcp", "version": __version__}
RelatedSink = Callable[[Message], None]
_UNTRACED: dict[str, Any] = {}  # send()'s keywords for a request without trace context (never changed)


class Pending:
    """One request in flight to the backend."""

    __slots__ = ("client_token", "context", "expired", "future", "method", "on_related", "started")

    def __init__(self, method: str, on_related: RelatedSink | None, context: Any, client_token: Any) -> None:
        self.future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.method = method
        self.on_related = on_related
        self.context = context
        self.client_token = client_token
        self.started = time.monotonic()
        self.expired = False


class BackendSession:
    """``call()`` sends a request and waits for its result; everything related to it (progress, logs,
    requests the backend makes of the client) goes to that call's ``on_related``. Messages that belong to
    no call go to ``on_request`` / ``on_notification``."""

    __slots__ = (
        "_counter",
        "_idle",
        "_init_lock",
        "_pending",
        "_prefix",
        "_progress",
        "_reinitialized",
        "_trace_header",
        "capabilities",
        "client_capabilities",
        "client_info",
        "closed",
        "instructions",
        "name",
        "on_closed",
        "on_notification",
        "on_request",
        "protocol_version",
        "replica",
        "server_info",
        "startup_timeout",
        "transport",
    )

    def __init__(
        self,
        transport: Transport,
        name: str,
        client_capabilities: dict[str, Any],
        on_request: Callable[[Message, Pending | None, str | None], None] | None = None,
        on_notification: Callable[[Message, Pending | None, str | None], None] | None = None,
        startup_timeout: float = 30.0,
        client_info: dict[str, Any] | None = None,
    ) -> None:
        self.transport = transport
        self.name = name
        self.client_capabilities = client_capabilities
        self.on_request = on_request
        self.on_notification = on_notification
        self.on_closed: Callable[[BaseException | None], None] | None = None
        self.startup_timeout = startup_timeout
        self.client_info = client_info or CLIENT_INFO
        self.replica = 0  # which replica of its backend this session talks to (set by its owner)
        self._counter = itertools.count(1)
        # Sessions that share one peer (links to the stdio host) number their requests under a prefix of
        # their own, so the host passes ids through unchanged.
        self._prefix = f"{secrets.token_hex(4)}." if getattr(transport, "shared_peer", False) else ""
        # An HTTP transport also sends a traced request's context as headers, where HTTP tooling looks.
        self._trace_header = bool(getattr(transport, "trace_header", False))
        self._pending: dict[int | str, Pending] = {}
        self._progress: dict[str, Pending] = {}
        self._init_lock = asyncio.Lock()
        self._idle = asyncio.Event()
        self._idle.set()
        self._reinitialized = 0
        self.capabilities: dict[str, Any] = {}
        self.server_info: dict[str, Any] = {}
        self.instructions: str | None = None
        self.protocol_version = LATEST
        self.closed = False
        transport.on_message = self._on_message
        transport.on_failure = self._on_failure
        transport.on_close = self._on_transport_closed

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def pending_calls(self) -> list[Pending]:
        return list(self._pending.values())

    async def drained(self) -> None:
        """Until no call is in flight (used before closing a session that config replaced)."""
        await self._idle.wait()

    def cancel_call(self, context: Any) -> bool:
        """Cancel the call made with ``context``: its caller gets CancelledError, the backend a
        notifications/cancelled. False when no such call is in flight."""
        for pending in self._pending.values():
            if pending.context is context and not pending.future.done():
                pending.future.cancel()
                return True
        return False

    async def start(self) -> dict[str, Any]:
        """Open the transport and initialize; returns the backend's initialize result."""
        await self.transport.open()
        return await self._initialize()

    async def _initialize(self) -> dict[str, Any]:
        params = {"protocolVersion": LATEST, "capabilities": self.client_capabilities,
                  "clientInfo": self.client_info}
        result = await self.call("initialize", params, self.startup_timeout, limit="its timeouts.startup",
                                 retry=False)
        if not isinstance(result, dict):
            raise BackendUnavailable(f"backend '{self.name}' sent an invalid initialize result")
        self.capabilities = result.get("capabilities") or {}
        self.server_info = result.get("serverInfo") or {}
        self.instructions = result.get("instructions")
        self.protocol_version = str(result.get("protocolVersion") or LATEST)
        await self.transport.send(jsonrpc.notification("notifications/initialized"))
        self.transport.initialized(result, self.protocol_version)
        return result

    async def call(
        self,
        method: str,
        params: dict[str, Any] | None,
        timeout: float,
        on_related: RelatedSink | None = None,
        context: Any = None,
        limit: str = "its timeouts.call",
        retry: bool = True,
        caller: str | None = None,
        trace: Span | None = None,
    ) -> Any:
        """Send a request; returns its result or raises a BackendError naming this backend (and, on a
        timeout, ``limit``: which setting set it). ``retry``: re-initialize and resend once when the
        backend says the session expired. ``caller``: the client session the request is made for (a link
        to the stdio host passes it on, to keep each client's traffic its own). ``trace``: the client
        request's span, the parent the backend is told of (in ``_meta``; over HTTP in headers too)."""
        if self.closed:
            raise BackendUnavailable(f"backend '{self.name}' is not connected")
        request_id: int | str = next(self._counter)
        if self._prefix:
            request_id = f"{self._prefix}{request_id}"
        client_token = None
        if trace is not None or (params and "_meta" in params):  # the one test on the usual path
            params, client_token = _own_meta(params, request_id, trace)
        pending = Pending(method, on_related, context, client_token)
        self._pending[request_id] = pending
        self._idle.clear()
        if client_token is not None:
            self._progress[f"o1p{request_id}"] = pending
        message = jsonrpc.request(request_id, method, params)
        # Keywords for send(): none on the usual path (a coroutine around send() cost ~1,500 instructions a call)
        traced = _UNTRACED if trace is None or not self._trace_header else {"trace": trace.header_lines()}
        generation = self._reinitialized
        # One deadline for the whole exchange (an HTTP transport may wait for the answer inside send()).
        # A bare timer that cancels this task costs a fraction of asyncio.timeout() (measured ~8% of a
        # proxied call's CPU); the flag tells its cancellation from any other.
        task = asyncio.current_task()
        deadline = asyncio.get_running_loop().call_later(timeout, self._expire, pending, task)
        try:
            try:
                await self.transport.send(message, caller, **traced)
            except SessionExpired:
                if not retry:
                    raise BackendUnavailable(f"backend '{self.name}' rejected the session during "
                                             "initialize") from None
                await self._reinitialize(generation)
                await self.transport.send(message, caller, **traced)
            return await pending.future
        except asyncio.CancelledError:
            self._cancelled(request_id, pending, task, method, timeout, limit)
            raise
        finally:
            deadline.cancel()
            self._pending.pop(request_id, None)
            if not self._pending:
                self._idle.set()
            if client_token is not None:
                self._progress.pop(f"o1p{request_id}", None)

    def _cancelled(self, request_id: int | str, pending: Pending, task: asyncio.Task[Any] | None, method: str,
                   timeout: float, limit: str) -> None:
        """A call was cancelled: by its deadline (then it raises BackendTimeout instead) or by its caller.
        Either way the backend is told, and the transport stops reading the call's answer."""
        self.transport.abandon(request_id)  # its answer's stream must not outlive the call
        if pending.expired and task is not None and task.uncancel() == 0:
            self._cancel_remote(request_id, f"timed out after {timeout:g}s")
            raise BackendTimeout(f"backend '{self.name}' did not answer {method} within {timeout:g}s "
                                 f"({limit})") from None
        if not pending.future.done() or pending.future.cancelled():
            self._cancel_remote(request_id, "cancelled by the client")

    @staticmethod
    def _expire(pending: Pending, task: asyncio.Task[Any] | None) -> None:
        if not pending.future.done() and task is not None:
            pending.expired = True
            task.cancel()

    async def _reinitialize(self, generation: int) -> None:
        async with self._init_lock:
            if self._reinitialized != generation:
                return  # another caller already did it
            log.info("backend '%s': session expired; initializing a new one", self.name)
            self.transport.reset()
            await self._initialize()
            self._reinitialized += 1

    def _cancel_remote(self, request_id: int | str, reason: str) -> None:
        if self.closed:
            return
        message = jsonrpc.notification("notifications/cancelled", {"requestId": request_id, "reason": reason})
        watched(asyncio.get_running_loop().create_task(self._send_quietly(message)))

    async def _send_quietly(self, message: Message) -> None:
        try:
            await self.transport.send(message)
        except (BackendUnavailable, SessionExpired, OSError) as exc:
            log.debug("backend '%s': could not send %s: %s", self.name, message.get("method"), exc)

    async def notify(self, method: str, params: dict[str, Any] | None = None) -> None:
        await self.transport.send(jsonrpc.notification(method, params))

    async def respond(self, request_id: Any, result: Any = None, error: dict[str, Any] | None = None) -> None:
        """Answer a request the backend made of us (sampling, elicitation, roots, ping)."""
        message = ({"jsonrpc": "2.0", "id": request_id, "error": error} if error is not None
                   else jsonrpc.response(request_id, result))
        await self.transport.send(message)

    def _on_message(self, message: Message, related_id: Any, caller: str | None = None) -> None:
        if "method" not in message:
            pending = self._pending.get(message.get("id"))  # type: ignore[arg-type]
            if pending is None or pending.future.done():
                log.debug("backend '%s': dropped a reply for unknown or finished request %r", self.name,
                          message.get("id"))
                return
            if "error" in message:
                pending.future.set_exception(BackendRpcError(message["error"] or {}))
            else:
                pending.future.set_result(message.get("result"))
            return
        related = self._pending.get(related_id) if related_id is not None else None
        if "id" in message:
            if message.get("method") == "ping":
                watched(asyncio.get_running_loop().create_task(self._answer_ping(message["id"])))
            elif self.on_request is not None:
                self.on_request(message, related, caller)
            return
        if message.get("method") == "notifications/progress":
            params = message.get("params") or {}
            pending = self._progress.get(str(params.get("progressToken")))
            if pending is not None and pending.on_related is not None:
                pending.on_related({**message, "params": {**params, "progressToken": pending.client_token}})
            return
        if self.on_notification is not None:
            self.on_notification(message, related, caller)

    def _on_failure(self, request_id: Any, error: BackendError) -> None:
        pending = self._pending.get(request_id)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(error)

    async def _answer_ping(self, request_id: Any) -> None:
        try:
            await self.respond(request_id, {})
        except (BackendUnavailable, SessionExpired, OSError) as exc:
            log.debug("backend '%s': ping answer failed: %s", self.name, exc)

    def _on_transport_closed(self, exc: BaseException | None) -> None:
        self.closed = True
        reason = f": {exc}" if exc else ""
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_exception(BackendUnavailable(
                    f"backend '{self.name}' closed the connection during {pending.method}{reason}"))
        if self.on_closed is not None:
            self.on_closed(exc)

    async def close(self) -> None:
        self.closed = True
        await self.transport.close()


def _own_meta(params: dict[str, Any] | None, request_id: int | str,
              trace: Span | None) -> tuple[dict[str, Any] | None, Any]:
    """``params`` with the caller's progress token replaced by one of ours (tokens must be unique across the
    requests of one session) and ``trace`` as the trace context, and the caller's token (None when there was
    none). The rest of the caller's ``_meta`` is passed on as it is."""
    if trace is not None:
        params = trace.meta(params)
    if params is None:
        return None, None
    meta = params.get("_meta")
    if not isinstance(meta, dict) or "progressToken" not in meta:
        return params, None
    return {**params, "_meta": {**meta, "progressToken": f"o1p{request_id}"}}, meta["progressToken"]
