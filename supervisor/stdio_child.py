"""One stdio child and the links that share it, in the stdio host.

The child sees a single MCP client: this multiplexer initializes it once and answers each link's
``initialize`` from that result. Requests pass through unchanged (each link's ids are unique: see
BackendSession's ``id_prefix``); their answers and progress go back to the link that asked, with the client
session (``caller``) each belongs to. Subscriptions are reference-counted. When the child exits, every
call in flight fails with an error naming the backend.

What the child sends outside an answer (a request to the client, a log line) carries nothing that says
which call caused it. It goes to a client only when that cannot be wrong: a child of one session
(isolation: per_session), or a shared child on which exactly one client session has calls in flight.
Otherwise a request is refused with an error saying why, and a log line is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from only1mcp.backends.base import NOT_RUNNING
from only1mcp.backends.child import RestartPolicy
from only1mcp.background import Background
from only1mcp.bus.messages import ChildState
from only1mcp.config.models import StdioBackend
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.jsonrpc import Code

from .stdio_link import Link
from .stdio_process import ChildPolicy, ChildProcess

__all__ = ["SHARED", "ChildMux", "ChildPolicy"]

log = logging.getLogger("only1mcp.stdio")

_MAX_QUEUED = 1000  # calls waiting for an on-demand child to start
_REFUSAL_LOG_EVERY = 60.0  # seconds between log lines about refused requests of one child
SHARED = "*shared*"  # the owner of a child every session shares (not a session id: those are hex)


@dataclass(slots=True, eq=False)
class _Call:
    link: Link
    key: Any  # the link's request id (unique per link, passed to the child unchanged)
    caller: str | None
    method: str
    started: float
    token: Any = None  # its progress token (also passed through unchanged)
    requests: list[str] = field(default_factory=list)  # our ids of the child's requests attributed to it


@dataclass(slots=True)
class _ServerRequest:
    link: Link
    child_id: Any
    call: _Call | None


class ChildMux:
    """Multiplexes the links that use one child of a stdio backend (which ``ChildProcess`` runs)."""

    def __init__(self, ident: int, backend: StdioBackend, label: str, policy: ChildPolicy, owner: str | None,
                 on_state: Callable[[ChildMux, ChildState], None], restart_policy: RestartPolicy,
                 tasks: Background) -> None:
        self._tasks = tasks
        self.ident = ident
        self.backend = backend
        self.label = label
        self.policy = policy
        self.owner = owner  # SHARED, a client session id, or None (the gateway's own: discovery, probes)
        self._on_state = on_state
        self._ids = itertools.count(1)
        self._calls: dict[Any, _Call] = {}  # the link's request id -> who asked
        self._tokens: dict[Any, _Call] = {}  # progress token -> call
        self._server_requests: dict[str, _ServerRequest] = {}  # our id -> where the child's request went
        self._subscribers: dict[str, set[Link]] = {}
        self._last_link: Link | None = None  # the link of the owner's latest call (per-session children)
        self._idle = asyncio.Event()  # no call in flight
        self._idle.set()
        self._stopping = False
        self._queued: list[tuple[Link, str | None, bytes, dict[str, Any]]] = []
        self._refusals = 0
        self._refusal_logged = 0.0
        self.process = ChildProcess(backend, label, policy, restart_policy, self)

    # ------------------------------------------------------------ facts

    @property
    def pid(self) -> int | None:
        return self.process.pid

    @property
    def state(self) -> ChildState:
        return self.process.state

    @property
    def restarts(self) -> int:
        return self.process.restarts

    @property
    def last_error(self) -> str:
        return self.process.last_error

    @property
    def waiting(self) -> int:
        return len(self._server_requests)

    @property
    def busy(self) -> bool:
        return bool(self._calls) or bool(self._queued)

    def describe(self) -> dict[str, Any]:
        return {"pid": self.pid, "state": self.state.value, "calls": len(self._calls),
                "client_requests": len(self._server_requests), "refused_requests": self._refusals}

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self.process.start()

    async def stop(self, drain: float = 0.0) -> None:
        """Stop taking calls, let those in flight finish for up to ``drain`` seconds, then stop the child."""
        self._stopping = True
        if drain and not self._idle.is_set():
            log.info("backend '%s': waiting up to %gs for %d call(s) in flight", self.label, drain, len(self._calls))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain)
        self._fail_calls(f"backend '{self.label}' was stopped", NOT_RUNNING)
        await self.process.stop()

    # ------------------------------------------------------------ ChildEvents: what the process tells us

    def child_ready(self, restarted: bool) -> None:
        queued, self._queued = self._queued, []
        for link, caller, raw, message in queued:  # calls that woke an on-demand child
            self._forward_request(link, caller, raw, message)
        if restarted:  # the restarted child may offer different lists
            for kind in ("tools", "resources", "prompts"):
                self._broadcast(dumps(jsonrpc.notification(f"notifications/{kind}/list_changed")))

    def child_line(self, raw: bytes, message: dict[str, Any]) -> None:
        """A message the child wrote (``raw`` as written)."""
        method = message.get("method")
        if method is None:
            self._child_answer(raw, message)
        elif "id" in message:
            self._child_request(message)
        else:
            self._child_notification(raw, message, method)

    def child_ended(self, reason: str, restarting: bool) -> None:
        self._fail_calls(f"backend '{self.label}' {reason} during the call"
                         + ("; it is being restarted" if restarting else ""), None)

    def child_state(self, state: ChildState) -> None:
        self._on_state(self, state)

    def child_idle(self) -> bool:
        return not self.busy

    def _fail_calls(self, message: str, reason: str | None) -> None:
        data = {"reason": reason} if reason else None
        queued, self._queued = self._queued, []
        for link, caller, _, request in queued:
            link.receive(dumps(jsonrpc.error_message(request["id"], Code.BACKEND_UNAVAILABLE, message, data)),
                         None, caller)
        for call in list(self._calls.values()):
            call.link.receive(dumps(jsonrpc.error_message(call.key, Code.BACKEND_UNAVAILABLE, message, data)),
                              None, call.caller)
            self._forget(call.key)
        self._server_requests.clear()

    # ------------------------------------------------------------ from links

    def handle(self, link: Link, caller: str | None, raw: bytes, message: dict[str, Any]) -> None:
        """A message from ``link``, for the client session ``caller``, already parsed (``raw`` as sent)."""
        method = message.get("method")
        if method is None:
            self._client_answer(message)
        elif "id" not in message:
            self._link_notification(message, raw)
        elif method == "initialize":
            self._tasks.spawn(self._answer_initialize(link, message["id"]), "initialize")
        elif method == "ping":
            link.receive(dumps(jsonrpc.response(message["id"], {})))
        elif method in ("resources/subscribe", "resources/unsubscribe"):
            uri = str((message.get("params") or {}).get("uri", ""))
            if method == "resources/subscribe":
                self._subscribe(link, caller, uri, raw, message)
            else:
                self._unsubscribe(link, caller, uri, raw, message)
        else:
            self._forward_request(link, caller, raw, message)

    def _client_answer(self, message: dict[str, Any]) -> None:
        """A client's answer (through its worker) to a request the child made."""
        entry = self._server_requests.pop(str(message.get("id")), None)
        if entry is None:
            return  # answered late: the call it belonged to ended
        if entry.call is not None:
            with contextlib.suppress(ValueError):
                entry.call.requests.remove(str(message.get("id")))
        self._to_child({**message, "id": entry.child_id})

    def _link_notification(self, message: dict[str, Any], raw: bytes) -> None:
        method = message.get("method")
        if method == "notifications/initialized":
            return  # the child was initialized once, by us
        if method == "notifications/cancelled":
            params = message.get("params")
            key = params.get("requestId") if isinstance(params, dict) else None
            if isinstance(key, (int, str)) and key in self._calls:
                self._write_raw(raw)
                self._forget(key)
            return
        self._write_raw(raw)

    def cancelled(self, key: Any, raw: bytes) -> bool:
        """A link cancelled its call ``key``, if this child has it."""
        if key not in self._calls:
            return False
        self._write_raw(raw)
        self._forget(key)
        return True

    async def _answer_initialize(self, link: Link, request_id: Any) -> None:
        process = self.process
        if process.init_result is not None and not process.ready and not self.policy.start_now:
            link.receive(dumps(jsonrpc.response(request_id, process.init_result)))  # asleep; we know what it offers
            return
        process.want()
        if not await process.wait_ready(self.backend.timeouts.startup):
            link.receive(dumps(jsonrpc.error_message(request_id, Code.BACKEND_UNAVAILABLE,
                                                     f"backend '{self.label}' is not running: "
                                                     f"{self.last_error or 'starting'}")))
            return
        link.receive(dumps(jsonrpc.response(request_id, process.init_result)))

    def _forward_request(self, link: Link, caller: str | None, raw: bytes, message: dict[str, Any]) -> None:
        key = message["id"]
        if self._stopping:
            self._refuse(link, caller, key, f"backend '{self.label}' is being stopped (removed or changed)")
            return
        if key in self._calls:
            self._refuse(link, caller, key, f"request id {key!r} is already in flight on backend '{self.label}'")
            return
        process = self.process
        if not process.ready:
            # A child being started (or asleep until a call wakes it) takes the call when it is up; one that
            # is restarting or failed refuses it at once, so it can go to another replica.
            if self.state in (ChildState.STARTING, ChildState.IDLE) and len(self._queued) < _MAX_QUEUED:
                self._queued.append((link, caller, raw, message))
                process.want()
                return
            self._refuse(link, caller, key, f"backend '{self.label}' is not running: {self.last_error or 'starting'}")
            return
        process.last_activity = now = time.monotonic()
        call = _Call(link, key, caller, str(message.get("method")), now)
        params = message.get("params")
        if isinstance(params, dict) and isinstance(params.get("_meta"), dict) and "progressToken" in params["_meta"]:
            call.token = params["_meta"]["progressToken"]
            self._tokens[call.token] = call
        if not self._calls:
            self._idle.clear()
        self._calls[key] = call
        if caller is not None:
            self._last_link = link
        process.write_raw(raw)

    def _refuse(self, link: Link, caller: str | None, key: Any, why: str) -> None:
        link.receive(dumps(jsonrpc.error_message(key, Code.BACKEND_UNAVAILABLE, why, {"reason": NOT_RUNNING})),
                     None, caller)

    def _subscribe(self, link: Link, caller: str | None, uri: str, raw: bytes, message: dict[str, Any]) -> None:
        subscribers = self._subscribers.setdefault(uri, set())
        first = not subscribers
        subscribers.add(link)
        link.subscriptions.add(uri)
        if first:
            self._forward_request(link, caller, raw, message)
        else:
            link.receive(dumps(jsonrpc.response(message["id"], {})))

    def _unsubscribe(self, link: Link, caller: str | None, uri: str, raw: bytes | None,
                     message: dict[str, Any] | None) -> None:
        subscribers = self._subscribers.get(uri, set())
        subscribers.discard(link)
        link.subscriptions.discard(uri)
        if subscribers:
            if message is not None:
                link.receive(dumps(jsonrpc.response(message["id"], {})))
            return
        self._subscribers.pop(uri, None)
        if message is not None and raw is not None:
            self._forward_request(link, caller, raw, message)
        elif self.process.ready:
            self._to_child(jsonrpc.request(f"u{next(self._ids)}", "resources/unsubscribe", {"uri": uri}))

    def drop_link(self, link: Link) -> None:
        """A link closed: stop what nobody will read, and answer the child's requests sent to it."""
        for uri in list(link.subscriptions):
            if link in self._subscribers.get(uri, ()):
                self._unsubscribe(link, None, uri, None, None)
        for call in [c for c in self._calls.values() if c.link is link]:
            self._to_child(jsonrpc.notification("notifications/cancelled",
                                                {"requestId": call.key, "reason": "caller disconnected"}))
            self._forget(call.key)
        for ours, entry in list(self._server_requests.items()):
            if entry.link is link:
                del self._server_requests[ours]
                self._to_child(jsonrpc.error_message(entry.child_id, Code.INTERNAL_ERROR,
                                                     "the client's connection to the gateway closed"))
        self._queued = [q for q in self._queued if q[0] is not link]
        if self._last_link is link:
            self._last_link = None

    # ------------------------------------------------------------ the child

    def _write_raw(self, raw: bytes) -> None:
        self.process.write_raw(raw)

    def _to_child(self, message: dict[str, Any]) -> None:
        self._write_raw(dumps(message))

    def _forget(self, key: Any) -> None:
        calls = self._calls
        call = calls.pop(key, None)
        if not calls:
            self._idle.set()
        if call is None:
            return
        if call.token is not None:
            self._tokens.pop(call.token, None)
        for ours in call.requests:  # requests it caused that nobody answered: its client is gone from it
            entry = self._server_requests.pop(ours, None)
            if entry is not None:
                self._to_child(jsonrpc.error_message(entry.child_id, Code.REQUEST_TIMEOUT,
                                                     f"the call that caused this request ({call.method}) ended "
                                                     "before its client answered"))

    def _child_answer(self, raw: bytes, message: dict[str, Any]) -> None:
        key = message.get("id")
        call = self._calls.get(key) if isinstance(key, (int, str)) else None
        if call is not None:
            self._forget(key)
            call.link.receive(raw, None, call.caller)

    def _child_notification(self, raw: bytes, message: dict[str, Any], method: str) -> None:
        params = message.get("params") if isinstance(message.get("params"), dict) else {}
        if method == "notifications/progress":
            call = self._tokens.get(params.get("progressToken"))  # type: ignore[arg-type]
            if call is not None:
                call.link.receive(raw, call.key, call.caller)
        elif method == "notifications/resources/updated":
            for link in self._subscribers.get(str(params.get("uri")), ()):
                link.receive(raw)
        elif method == "notifications/cancelled":
            for ours, entry in list(self._server_requests.items()):
                if entry.child_id == params.get("requestId"):
                    del self._server_requests[ours]
                    entry.link.receive(dumps(jsonrpc.notification(method, {**params, "requestId": ours})), None,
                                       entry.call.caller if entry.call else None)
        elif method == "notifications/message":
            call, caller, _ = self._attribute()
            if call is not None:
                call.link.receive(raw, call.key, caller)
            else:
                log.debug("backend '%s': a log message outside any one client's call was not relayed", self.label)
        else:
            self._broadcast(raw)  # list changes: not any client's own traffic

    def _broadcast(self, raw: bytes) -> None:
        for link in self._links():
            link.receive(raw)

    def _links(self) -> set[Link]:
        links = {call.link for call in self._calls.values()}
        for subscribers in self._subscribers.values():
            links |= subscribers
        if self._last_link is not None:
            links.add(self._last_link)
        return links

    def _attribute(self) -> tuple[_Call | None, str | None, str]:
        """The call (and client session) a message the child sent outside any answer belongs to, or why
        that cannot be known."""
        answering = [c for c in self._calls.values() if c.caller is not None and c.link.answers_clients]
        if self.owner is not SHARED:
            if self.owner is None:
                return None, None, "this child serves the gateway itself (discovery and probes), not a client"
            mine = [c for c in answering if c.caller == self.owner]
            return (max(mine, key=lambda c: c.started) if mine else None), self.owner, ""
        callers = {c.caller for c in answering}
        if len(callers) == 1:
            return max(answering, key=lambda c: c.started), answering[0].caller, ""
        if not callers:
            return None, None, "no client call is in progress through Only1MCP on this backend"
        return None, None, (f"{len(callers)} client sessions have calls in flight on the shared child of backend "
                            f"'{self.backend.name}', and stdio does not say which call made this request; it was "
                            "refused rather than risk giving one client another's request (set isolation: "
                            "per_session on this backend for servers that make requests of their clients)")

    def _child_request(self, message: dict[str, Any]) -> None:
        """A request the child makes of its client (sampling, elicitation, roots)."""
        if message.get("method") == "ping":
            self._to_child(jsonrpc.response(message["id"], {}))
            return
        call, caller, why = self._attribute()
        link = call.link if call is not None else (self._last_link if caller is not None else None)
        if link is None or link.channel.closed:
            self._refuse_request(message, why or "the client's connection to the gateway closed")
            return
        ours = f"h{self.ident}.{next(self._ids)}"
        self._server_requests[ours] = _ServerRequest(link, message["id"], call)
        if call is not None:
            call.requests.append(ours)
        link.receive(dumps({**message, "id": ours}), call.key if call is not None else None, caller)

    def _refuse_request(self, message: dict[str, Any], why: str) -> None:
        self._to_child(jsonrpc.error_message(message["id"], Code.INTERNAL_ERROR, why))
        self._refusals += 1
        now = time.monotonic()
        if now - self._refusal_logged >= _REFUSAL_LOG_EVERY:  # once a minute, with the count meanwhile
            self._refusal_logged = now
            log.warning("backend '%s': refused %s (%d refused so far): %s", self.label, message.get("method"),
                        self._refusals, why)
