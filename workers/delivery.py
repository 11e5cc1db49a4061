"""Where a message a backend sends for a client goes, and which client it belongs to.

One order for everything (``deliver``):

1. the channel of the call it belongs to, while that is open (the POST's answer turning into an SSE
   stream, a WebSocket, the legacy SSE stream, a 2026-07-28 call);
2. a duplex stream of the client's session held by this worker (WebSocket, legacy SSE,
   ``subscriptions/listen``);
3. the session's mailbox in the supervisor, which numbers it, keeps it for Last-Event-ID replay and hands
   it to whichever worker holds the session's GET stream.

Which client (``attribute``): the backend's own stream says which request a message belongs to (a
Streamable HTTP response stream; the stdio host, which works it out where it can). When nothing says,
the message belongs to a client only if exactly one client session has calls in flight on that backend
session; otherwise it is nobody's, and a request is refused with an error that says why. Never a guess.
"""

from __future__ import annotations

import logging
from typing import Any

from only1mcp.backends.session import BackendSession, Pending
from only1mcp.bus import Kind, Reporter
from only1mcp.bus.messages import SessionSend
from only1mcp.protocol.codec import dumps

from .calls import ClientCall
from .log_levels import SessionLogLevels
from .streams import SessionStreams

__all__ = ["Attribution", "Delivery", "attribute"]

log = logging.getLogger("only1mcp.worker")


class Attribution:
    """The client session (and, when known, the call) a backend's message belongs to; or why none."""

    __slots__ = ("call", "sid", "why")

    def __init__(self, call: ClientCall | None, sid: str | None, why: str = "") -> None:
        self.call = call
        self.sid = sid
        self.why = why


def attribute(session: BackendSession, related: Pending | None, caller: str | None, backend: str) -> Attribution:
    """Whose is a message ``session`` received: ``related`` is the request it came with (if the transport
    knows), ``caller`` the client session the stdio host says it belongs to (if it knows)."""
    if related is not None and isinstance(related.context, ClientCall):
        call = related.context
        return Attribution(call, call.session.sid)
    calls = [p for p in session.pending_calls() if isinstance(p.context, ClientCall)]
    if caller is not None:
        calls = [p for p in calls if p.context.session.sid == caller]
        if not calls:
            return Attribution(None, None, f"no call of that client session is in progress through Only1MCP on "
                                           f"backend '{backend}'")
    sessions = {p.context.session.sid for p in calls}
    if len(sessions) == 1:
        call = max(calls, key=lambda p: p.started).context
        return Attribution(call, call.session.sid)
    if not sessions:
        return Attribution(None, None, f"no client call is in progress through Only1MCP on backend '{backend}'")
    return Attribution(None, None, (
        f"{len(sessions)} client sessions have calls in flight on backend '{backend}', and it did not say which "
        "call this belongs to; Only1MCP refuses rather than risk giving one client another's traffic"))


class Delivery:
    __slots__ = ("_levels", "_reporter", "_streams", "mailed")

    def __init__(self, streams: SessionStreams, reporter: Reporter, levels: SessionLogLevels) -> None:
        self._streams = streams
        self._reporter = reporter
        self._levels = levels
        self.mailed = 0

    def deliver(self, sid: str, call: ClientCall | None, message: dict[str, Any]) -> None:
        """To the client of session ``sid``, by the first way open (see the module's docstring); a log
        message below the level the session asked for is dropped."""
        if message.get("method") == "notifications/message":
            params = message.get("params")
            if not self._levels.allows(sid, params.get("level") if isinstance(params, dict) else None):
                return
        if call is not None and call.channel is not None and not call.channel.broken:
            call.channel.push(message)
            return
        sink = self._streams.sink(sid)
        if sink is not None:
            sink(message)
            return
        self.mail(sid, message)

    def mail(self, sid: str, message: dict[str, Any]) -> None:
        """Through the session's mailbox, to whichever worker holds its GET stream (numbered, replayable)."""
        self.mailed += 1
        self._reporter.send(Kind.SESSION_SEND, SessionSend(sid, dumps(message)))
