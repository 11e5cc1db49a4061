"""One stdio child shared by many connections (workers and the supervisor's discovery).

The child sees a single MCP client: this multiplexer initializes it once, answers each connection's
``initialize`` from that result, and rewrites request ids, progress tokens and cancellations so replies,
progress and errors reach the connection that asked. Subscriptions are reference-counted. When the child
exits, every call in flight fails with an error naming the backend, and the child is restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from only1mcp import __version__
from only1mcp.backends.base import NOT_RUNNING, BackendUnavailable
from only1mcp.backends.child import CHILD_CAPABILITIES, RestartPolicy, spawn_child, stop_child
from only1mcp.backends.lines import LINE_LIMIT, LineChannel
from only1mcp.bus.messages import ChildState, ChildStatus
from only1mcp.config.models import StdioBackend
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.jsonrpc import Code
from only1mcp.protocol.versions import LATEST

__all__ = ["Link", "SharedChild"]

log = logging.getLogger("only1mcp.stdio")

_MAX_QUEUED = 1000  # calls waiting for an on-demand child to start


@dataclass(slots=True, eq=False)
class Link:
    """One connection to the child's socket."""

    ident: int
    channel: LineChannel
    answers_client_requests: bool = True  # the supervisor's discovery link cannot answer sampling
    subscriptions: set[str] = field(default_factory=set)
    last_request: float = 0.0

    def send(self, message: dict[str, Any]) -> None:
        if not self.channel.closed:
            try:
                self.channel.write(message)
            except BackendUnavailable:
                log.debug("a link closed while a message was written to it; its drop handles the rest")


@dataclass(slots=True)
class _Call:
    link: Link
    client_id: Any
    method: str
    token: Any = None


class SharedChild:
    """Runs one replica of a stdio backend and serves it on a Unix socket."""

    def __init__(self, backend: StdioBackend, replica: int, socket_path: Path,
                 on_status: Callable[[ChildStatus], None]) -> None:
        self.backend = backend
        self.replica = replica
        self.socket_path = socket_path
        self._on_status = on_status
        self._name = backend.name if backend.replicas == 1 else f"{backend.name}#{replica}"
        self._links: dict[int, Link] = {}
        self._link_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self._calls: dict[int, _Call] = {}  # child request id -> who asked
        self._by_client: dict[tuple[int, Any], int] = {}  # (link, client id) -> child request id
        self._tokens: dict[str, _Call] = {}  # our progress token -> call
        self._server_requests: dict[str, tuple[Link, Any]] = {}  # our id -> (link, child's id)
        self._subscribers: dict[str, set[Link]] = {}
        self._process: asyncio.subprocess.Process | None = None
        self._channel: LineChannel | None = None
        self._init_result: dict[str, Any] | None = None
        self._init_waiter: tuple[int, asyncio.Future[dict[str, Any]]] | None = None
        self._ready = asyncio.Event()
        self._server: asyncio.AbstractServer | None = None
        self._runner: asyncio.Task[None] | None = None
        self._stopping = False
        self._idle = asyncio.Event()  # no call in flight
        self._idle.set()
        # On-demand children (lazy start, idle shutdown) start when a call needs them; calls wait for it.
        self._on_demand = backend.lazy or backend.idle_shutdown is not None
        self._wanted = asyncio.Event()
        if not backend.lazy:
            self._wanted.set()
        self._idled = False
        self._last_call = time.monotonic()
        self._queued: list[tuple[Link, dict[str, Any]]] = []
        self._watchdog: asyncio.Task[None] | None = None
        self.restarts = 0
        self.state = ChildState.STARTING
        self.last_error = ""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.start_unix_server(self._accept, path=str(self.socket_path), limit=LINE_LIMIT)
        os.chmod(self.socket_path, 0o600)
        self._runner = asyncio.get_running_loop().create_task(self._run())
        self._runner.add_done_callback(self._runner_ended)
        if self.backend.idle_shutdown is not None:
            self._watchdog = asyncio.get_running_loop().create_task(self._watch_idle(self.backend.idle_shutdown))
        if self.backend.lazy:
            self._report(ChildState.IDLE)

    async def stop(self, drain: float = 0.0) -> None:
        """Stop taking calls, let those in flight finish for up to ``drain`` seconds, then stop the child."""
        self._stopping = True
        self._wanted.set()  # let the runner see it is stopping
        if self._watchdog is not None:
            self._watchdog.cancel()
        if drain and not self._idle.is_set():
            log.info("backend '%s': waiting up to %gs for %d call(s) in flight", self._name, drain, len(self._calls))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), drain)
        if self._runner is not None:
            self._runner.cancel()
        if self._server is not None:
            self._server.close()
        for link in list(self._links.values()):
            link.channel.close()
        await self._kill()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    async def _run(self) -> None:
        """Start the child when wanted; restart it when it exits (at once after a long run, backing off
        while it keeps exiting); after ``max_failures`` exits within ``failure_window`` mark it failed and
        try again only every ``failed_retry`` seconds; an idle shutdown waits for the next call."""
        backend = self.backend
        policy = RestartPolicy.of(backend)
        while not self._stopping:
            await self._wanted.wait()
            started = time.monotonic()
            self._idled = False
            try:
                await self._spawn()
                await self._initialize()
                self._report(ChildState.RUNNING)
                code = await self._process.wait() if self._process else -1
                self.last_error = f"exited with code {code}"
            except (OSError, TimeoutError, _ChildError, BackendUnavailable) as exc:
                self.last_error = await self._describe_failure(exc)  # logged once, below, with what happens next
            self._ready.clear()
            if self._idled:
                await self._kill()
                self._report(ChildState.IDLE)
                log.info("backend '%s' stopped after %gs without calls; it starts again on the next call",
                         self._name, backend.idle_shutdown or 0)
                continue
            self._init_result = None
            self._fail_calls(f"backend '{self._name}' {self.last_error} during the call; it is being restarted")
            await self._kill()
            if self._stopping:
                return
            self.restarts += 1
            delay, failed = policy.exited(started, time.monotonic())
            if failed:
                self._report(ChildState.FAILED)
                log.error("backend '%s' failed: %d exits within %gs (last: %s); next attempt in %gs", self._name,
                          backend.max_failures, backend.failure_window, self.last_error, delay)
                await asyncio.sleep(delay)
                continue
            self._report(ChildState.RESTARTING)
            log.warning("backend '%s' %s; restarting in %.1fs", self._name, self.last_error, delay)
            await asyncio.sleep(delay)

    async def _describe_failure(self, exc: BaseException) -> str:
        """The error, with the child's exit code when it is exiting anyway."""
        process = self._process
        if isinstance(exc, _ChildError) and process is not None:
            try:
                code = await asyncio.wait_for(process.wait(), 1.0)
            except TimeoutError:
                return str(exc)
            return f"exited with code {code} before answering initialize"
        return str(exc)

    async def _watch_idle(self, limit: float) -> None:
        """Stop the child after ``limit`` seconds without calls (on-demand backends)."""
        while not self._stopping:
            await asyncio.sleep(min(5.0, limit / 4))
            if self._ready.is_set() and not self._calls and time.monotonic() - self._last_call >= limit:
                self._idled = True
                self._wanted.clear()
                await self._kill()

    async def _spawn(self) -> None:
        self._process = await spawn_child(self.backend, self._name)
        assert self._process.stdout is not None and self._process.stdin is not None
        self._channel = LineChannel(f"backend '{self._name}'", self._process.stdout, self._process.stdin)
        self._channel.on_message = self._from_child
        self._channel.on_close = self._stdout_closed
        self._channel.start()

    def _runner_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("backend '%s': its supervisor loop stopped on an unexpected error; it will not be restarted "
                      "until the backend is reconfigured", self._name, exc_info=exc)
            self.last_error = f"internal error: {exc}"
            self._report(ChildState.FAILED)

    def _stdout_closed(self, exc: BaseException | None) -> None:
        """The child closed its stdout (it is exiting): an initialize still waiting will never be answered."""
        waiter, self._init_waiter = self._init_waiter, None
        if waiter is not None and not waiter[1].done():
            waiter[1].set_exception(_ChildError("exited before answering initialize"))

    async def _initialize(self) -> None:
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._init_waiter = (request_id, future)
        if self._channel is None or self._channel.closed:
            raise _ChildError("exited before answering initialize")
        try:
            self._channel.write(jsonrpc.request(request_id, "initialize", {
                "protocolVersion": LATEST, "capabilities": CHILD_CAPABILITIES,
                "clientInfo": {"name": "only1mcp", "version": __version__}}))
        except BackendUnavailable:
            raise _ChildError("exited before answering initialize") from None
        try:
            result = await asyncio.wait_for(future, self.backend.timeouts.startup)
        except TimeoutError:
            raise _ChildError(f"did not answer initialize within {self.backend.timeouts.startup:g}s "
                              "(timeouts.startup)") from None
        self._channel.write(jsonrpc.notification("notifications/initialized"))
        self._init_result = result
        self._ready.set()
        queued, self._queued = self._queued, []
        for link, message in queued:  # calls that woke an on-demand child
            self._forward_request(link, message)
        if self.restarts:  # the restarted child may offer different lists
            for kind in ("tools", "resources", "prompts"):
                self._broadcast(jsonrpc.notification(f"notifications/{kind}/list_changed"))

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        await stop_child(process)

    def _report(self, state: ChildState) -> None:
        self.state = state
        self._on_status(ChildStatus(self.backend.name, self.replica, state,
                                    self._process.pid if self._process else None, self.restarts, self.last_error))

    def _fail_calls(self, message: str) -> None:
        queued, self._queued = self._queued, []
        for link, request in queued:
            link.send(jsonrpc.error_message(request["id"], Code.BACKEND_UNAVAILABLE, message))
        for child_id, call in list(self._calls.items()):
            call.link.send(jsonrpc.error_message(call.client_id, Code.BACKEND_UNAVAILABLE, message))
            self._forget(child_id)
        self._server_requests.clear()

    # ------------------------------------------------------------ links

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link(next(self._link_ids), LineChannel(f"link to '{self._name}'", reader, writer))
        self._links[link.ident] = link
        link.channel.on_message = lambda message, _related: self._from_link(link, message)
        link.channel.on_close = lambda exc: self._drop_link(link)
        link.channel.start()

    def _drop_link(self, link: Link) -> None:
        self._links.pop(link.ident, None)
        for uri in list(link.subscriptions):
            self._unsubscribe(link, uri, None)
        for child_id, call in list(self._calls.items()):
            if call.link is link:  # nobody will read the answer: tell the child to stop working on it
                self._to_child(jsonrpc.notification("notifications/cancelled",
                                                    {"requestId": child_id, "reason": "caller disconnected"}))
                self._forget(child_id)

    def _from_link(self, link: Link, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:  # a link's answer to a request the child made
            target = self._server_requests.pop(str(message.get("id")), None)
            if target is not None:
                self._to_child({**message, "id": target[1]})
            return
        if "id" not in message:
            self._link_notification(link, method, message)
            return
        if method == "initialize":
            asyncio.get_running_loop().create_task(self._answer_initialize(link, message))
        elif method == "ping":
            link.send(jsonrpc.response(message["id"], {}))
        elif method in ("resources/subscribe", "resources/unsubscribe"):
            uri = str((message.get("params") or {}).get("uri", ""))
            if method == "resources/subscribe":
                self._subscribe(link, uri, message)
            else:
                self._unsubscribe(link, uri, message)
        else:
            self._forward_request(link, message)

    def _link_notification(self, link: Link, method: str, message: dict[str, Any]) -> None:
        if method == "notifications/initialized":
            return  # the child was initialized once, by us
        if method == "notifications/cancelled":
            params = message.get("params") or {}
            child_id = self._by_client.get((link.ident, params.get("requestId")))
            if child_id is not None:
                self._to_child(jsonrpc.notification("notifications/cancelled", {**params, "requestId": child_id}))
                self._forget(child_id)
            return
        self._to_child(message)

    async def _answer_initialize(self, link: Link, message: dict[str, Any]) -> None:
        client = ((message.get("params") or {}).get("clientInfo") or {}).get("name", "")
        link.answers_client_requests = client not in ("only1mcp-discovery", "only1mcp-probe")
        if self._init_result is not None and not self._ready.is_set() and self._on_demand:
            link.send(jsonrpc.response(message["id"], self._init_result))  # asleep, but we know what it offers
            return
        self._wanted.set()
        try:
            await asyncio.wait_for(self._ready.wait(), self.backend.timeouts.startup)
        except TimeoutError:
            link.send(jsonrpc.error_message(message["id"], Code.BACKEND_UNAVAILABLE,
                                            f"backend '{self._name}' is not running: {self.last_error or 'starting'}"))
            return
        link.send(jsonrpc.response(message["id"], self._init_result))

    def _forward_request(self, link: Link, message: dict[str, Any]) -> None:
        if self._stopping:
            link.send(jsonrpc.error_message(message["id"], Code.BACKEND_UNAVAILABLE,
                                            f"backend '{self._name}' is being stopped (removed or changed)",
                                            {"reason": NOT_RUNNING}))
            return
        if not self._ready.is_set():
            if self._on_demand and len(self._queued) < _MAX_QUEUED:
                self._queued.append((link, message))
                self._wanted.set()
                return
            link.send(jsonrpc.error_message(message["id"], Code.BACKEND_UNAVAILABLE,
                                            f"backend '{self._name}' is not running: {self.last_error or 'starting'}",
                                            {"reason": NOT_RUNNING}))
            return
        self._last_call = time.monotonic()
        child_id = next(self._ids)
        call = _Call(link, message["id"], str(message.get("method")))
        params = message.get("params")
        if isinstance(params, dict) and isinstance(params.get("_meta"), dict) \
                and "progressToken" in params["_meta"]:
            call.token = params["_meta"]["progressToken"]
            params = {**params, "_meta": {**params["_meta"], "progressToken": f"h{child_id}"}}
            self._tokens[f"h{child_id}"] = call
        self._calls[child_id] = call
        self._idle.clear()
        self._by_client[(link.ident, message["id"])] = child_id
        link.last_request = time.monotonic()
        self._to_child({**message, "id": child_id, **({"params": params} if params is not None else {})})

    def _subscribe(self, link: Link, uri: str, message: dict[str, Any]) -> None:
        subscribers = self._subscribers.setdefault(uri, set())
        first = not subscribers
        subscribers.add(link)
        link.subscriptions.add(uri)
        if first:
            self._forward_request(link, message)
        else:
            link.send(jsonrpc.response(message["id"], {}))

    def _unsubscribe(self, link: Link, uri: str, message: dict[str, Any] | None) -> None:
        subscribers = self._subscribers.get(uri, set())
        subscribers.discard(link)
        link.subscriptions.discard(uri)
        if subscribers:
            if message is not None:
                link.send(jsonrpc.response(message["id"], {}))
            return
        self._subscribers.pop(uri, None)
        if message is not None:
            self._forward_request(link, message)
        elif self._ready.is_set():
            self._to_child(jsonrpc.request(next(self._ids), "resources/unsubscribe", {"uri": uri}))

    # ------------------------------------------------------------ the child

    def _to_child(self, message: dict[str, Any]) -> None:
        if self._channel is not None and not self._channel.closed:
            try:
                self._channel.write(message)
            except BackendUnavailable:
                # The child is exiting; its exit fails every call in flight with an error naming it.
                log.debug("backend '%s': input closed while writing %s", self._name, message.get("method"))

    def _forget(self, child_id: int) -> None:
        call = self._calls.pop(child_id, None)
        if not self._calls:
            self._idle.set()
        if call is not None:
            self._by_client.pop((call.link.ident, call.client_id), None)
            if call.token is not None:
                self._tokens.pop(f"h{child_id}", None)

    def _from_child(self, message: dict[str, Any], _related: Any) -> None:
        method = message.get("method")
        if method is None:
            waiter = self._init_waiter
            if waiter is not None and message.get("id") == waiter[0]:
                self._init_waiter = None
                if "error" in message:
                    waiter[1].set_exception(_ChildError(f"refused initialize: {message['error']}"))
                elif not waiter[1].done():
                    waiter[1].set_result(message.get("result") or {})
                return
            call = self._calls.get(message.get("id"))  # type: ignore[arg-type]
            if call is not None:
                self._forget(message["id"])
                call.link.send({**message, "id": call.client_id})
            return
        if "id" in message:
            self._route_server_request(message)
            return
        params = message.get("params") or {}
        if method == "notifications/progress":
            call = self._tokens.get(str(params.get("progressToken")))
            if call is not None:
                call.link.send({**message, "params": {**params, "progressToken": call.token}})
        elif method == "notifications/resources/updated":
            for link in self._subscribers.get(str(params.get("uri")), ()):
                link.send(message)
        elif method == "notifications/cancelled":
            for ours, (link, theirs) in list(self._server_requests.items()):
                if theirs == params.get("requestId"):
                    del self._server_requests[ours]
                    link.send(jsonrpc.notification("notifications/cancelled", {**params, "requestId": ours}))
        else:
            self._broadcast(message)

    def _broadcast(self, message: dict[str, Any]) -> None:
        for link in list(self._links.values()):
            link.send(message)

    def _route_server_request(self, message: dict[str, Any]) -> None:
        """A request the child makes of its client. Over stdio nothing says which call caused it, so it
        goes to the link whose call started most recently (with one caller, that is always right)."""
        if message.get("method") == "ping":
            self._to_child(jsonrpc.response(message["id"], {}))
            return
        busy = {call.link for call in self._calls.values() if call.link.answers_client_requests}
        if not busy:
            self._to_child(jsonrpc.error_message(
                message["id"], Code.INTERNAL_ERROR,
                f"no client call is in progress through Only1MCP to answer {message.get('method')}"))
            return
        link = max(busy, key=lambda candidate: candidate.last_request)
        ours = f"h{next(self._ids)}"
        self._server_requests[ours] = (link, message["id"])
        link.send({**message, "id": ours})


class _ChildError(Exception):
    pass
