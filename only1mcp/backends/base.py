"""The interface every backend transport implements, and the errors callers see."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from only1mcp.protocol.jsonrpc import Code, JsonRpcError
from only1mcp.redact import mask_urls_in

__all__ = [
    "BackendError",
    "BackendRpcError",
    "BackendTimeout",
    "BackendUnavailable",
    "Message",
    "ReplyTooLarge",
    "SessionExpired",
    "Transport",
]

Message = dict[str, Any]
# (message, id of the backend request it belongs to or None[, the client session it belongs to]): the link
# to the stdio host knows the session too; other transports know at most the request.
MessageSink = Callable[..., None]
# (id of the request that failed, why): for what a transport finds wrong after send() returned
FailureSink = Callable[[Any, "BackendError"], None]


class Transport(Protocol):
    """Moves JSON-RPC messages to and from one backend replica; knows nothing about MCP semantics.

    ``send`` returns once the message is handed over (for HTTP: once the response headers are in);
    everything the backend sends back arrives through ``on_message``. ``on_failure`` fails one request
    whose answer broke the transport's limits after ``send`` returned (an SSE answer too large).
    ``on_close`` fires once when the transport can no longer carry messages.
    """

    on_message: MessageSink
    on_failure: FailureSink
    on_close: Callable[[BaseException | None], None]

    async def open(self) -> None: ...

    async def send(self, message: Message, caller: str | None = None) -> None:
        """``caller``: the client session the message is for (only a link to the stdio host uses it)."""

    def initialized(self, result: dict[str, Any], protocol_version: str) -> None:
        """Called after a successful initialize (HTTP uses it to start its GET stream)."""

    def reset(self) -> None:
        """Forget the backend session (before re-initializing)."""

    def abandon(self, request_id: Any) -> None:
        """The caller gave up on this request (its deadline passed, its client cancelled): stop reading
        whatever still arrives for it and close what carries it. Nothing to do for transports without
        a stream per request."""

    async def close(self) -> None: ...


class BackendError(JsonRpcError):
    """A call to a backend failed; the message names the backend and what happened (with any URL in it
    masked: it reaches logs and clients)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, mask_urls_in(message), data)


class BackendUnavailable(BackendError):
    """The backend could not be reached. ``sent`` is False when the request certainly did not reach it
    (connection refused, child not running), so even a call that is not idempotent may go elsewhere."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(Code.BACKEND_UNAVAILABLE, message)
        self.sent = sent


class BackendTimeout(BackendError):
    def __init__(self, message: str) -> None:
        super().__init__(Code.REQUEST_TIMEOUT, message)


NOT_RUNNING = "not_running"  # error data reason: the stdio host never handed the call to a child


class BackendRpcError(BackendError):
    """The backend answered with a JSON-RPC error: relayed to the client as it is."""

    @property
    def not_sent(self) -> bool:
        """The stdio host refused the call before any child saw it."""
        return isinstance(self.data, dict) and self.data.get("reason") == NOT_RUNNING

    def __init__(self, error: dict[str, Any]) -> None:
        code = error.get("code", Code.INTERNAL_ERROR)
        super().__init__(code if isinstance(code, int) else Code.INTERNAL_ERROR,
                         str(error.get("message", "backend error")), error.get("data"))


class ReplyTooLarge(BackendRpcError):
    """A backend's answer broke a size limit (``max_response_bytes``, ``max_event_bytes``): that call
    fails with this error; the backend answered, so it is not counted as failing or retried elsewhere."""

    def __init__(self, message: str) -> None:
        super().__init__({"code": int(Code.INTERNAL_ERROR), "message": message})


class SessionExpired(Exception):
    """The backend no longer knows our session (HTTP 404, or 400 'unknown session'): re-initialize."""
