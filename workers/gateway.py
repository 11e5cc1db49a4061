"""The data plane of one worker: the state it serves from, and everything backends send back."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from only1mcp.backends.base import Message
from only1mcp.backends.session import BackendSession, Pending
from only1mcp.bus import Envelope, Kind, Replica, Reporter, State
from only1mcp.catalog.view import CatalogView
from only1mcp.config.models import Settings
from only1mcp.http.client import Http1Pool
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.jsonrpc import Code
from only1mcp.sessions import SessionInfo, SessionSealer
from only1mcp.spec import WorkerSpec

from . import tasks
from .backends import BackendPool
from .calls import ClientCall, Outstanding
from .origins import OriginPolicy
from .routing import OutcomeBatcher, Router
from .streams import SessionStreams

__all__ = ["Gateway"]

log = logging.getLogger("only1mcp.worker")

_MAX_TASK_OWNERS = 10_000
_CAPABILITY_OF = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


class Gateway:
    """Owns this worker's view of the shared state and routes what backends send to the right client."""

    def __init__(self, spec: WorkerSpec, replica: Replica, reporter: Reporter, http: Http1Pool) -> None:
        self.spec = spec
        self.pid = os.getpid()
        self.replica = replica
        self.reporter = reporter
        self.settings: Settings | None = None
        self.policy = OriginPolicy(spec.host, [], [])  # replaced with the configured one on every config
        self.routers: dict[str, Router] = {}
        self.outcomes = OutcomeBatcher(reporter)
        self.view: CatalogView | None = None
        self.catalog_version = 0
        self.sealer: SessionSealer | None = None
        self.revoked: frozenset[str] = frozenset()
        self.pool = BackendPool(Path(spec.runtime_dir), http, self._on_backend_request, self._on_backend_notification)
        self.outstanding = Outstanding(spec.slot, self.pid)
        self.streams = SessionStreams(self._replay)
        # (session id, client request id) -> (backend session, call): where a client's cancel must go
        self.inflight: dict[tuple[str, Any], tuple[BackendSession, ClientCall]] = {}
        # (backend, backend's uri) -> sessions subscribed through this worker
        self.subscriptions: dict[tuple[str, str], set[str]] = {}
        # (backend, backend's task id) -> the session that created the task, for its status notifications
        self.task_owners: dict[tuple[str, str], str] = {}
        self._config_version = 0
        # Set by the legacy SSE front door: handles a POST another worker relayed to the stream held here.
        self.legacy_post: Callable[[str, dict[str, Any]], None] | None = None
        # Set by the 2026-07-28 door: a retry another worker relayed here, or the events of one relayed away.
        self.stateless_relay: Callable[[dict[str, Any]], None] | None = None
        self._sessions_value: Any = None
        self.request_timeout = 300.0

    # ------------------------------------------------------------ shared state

    def on_state(self, state: State) -> None:
        config = state.get("config") or {}
        if config.get("version", 0) != self._config_version:
            self._config_version = config.get("version", 0)
            self.settings = Settings.model_validate(config.get("settings") or {})
            server = self.settings.server
            self.request_timeout = self.settings.proxy.request_timeout
            self.policy = OriginPolicy(self.spec.host, server.allowed_origins, server.allowed_hosts)
            backends = {b.name: b for b in self.settings.enabled_backends()}
            # A router keeps its in-flight counts and balancer position while its backend is unchanged.
            self.routers = {name: self.routers[name] if self.pool.known(name) == backend and name in self.routers
                            else Router(backend) for name, backend in backends.items()}
            self.pool.configure(backends)
            self.view = None  # page size may have changed
        sessions = state.get("sessions")
        if sessions is not None and sessions is not self._sessions_value:
            self._sessions_value = sessions
            self.sealer = SessionSealer(bytes(sessions["secret"]), float(sessions["ttl"]))
        self.revoked = frozenset(key[8:] for key in state.data if key.startswith("revoked/"))
        for name, router in self.routers.items():
            router.update(state.get(f"routes/{name}"))
        catalog = state.get("catalog")
        if catalog is not None and self.settings is not None and (
                self.view is None or catalog.get("version") != self.catalog_version):
            old = self.view
            self.view = CatalogView(catalog, self.settings.proxy.page_size)
            self.catalog_version = catalog.get("version", 0)
            if old is not None:
                self._announce_changes(old.catalog, catalog)

    def _announce_changes(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Tell every client with a GET stream here which of its lists changed."""
        changed = {kind for key, kind in (("tools", "tools"), ("prompts", "prompts"), ("resources", "resources"),
                                          ("templates", "resources")) if old.get(key) != new.get(key)}
        for kind in sorted(changed):
            self.streams.broadcast(jsonrpc.notification(f"notifications/{kind}/list_changed"))

    def remember_task(self, backend: str, task_id: str, sid: str) -> None:
        """Who created a task, for its status notifications; bounded, oldest forgotten first."""
        self.task_owners[(backend, task_id)] = sid
        if len(self.task_owners) > _MAX_TASK_OWNERS:
            del self.task_owners[next(iter(self.task_owners))]

    def session_gone(self, session: SessionInfo) -> bool:
        return session.sid in self.revoked

    async def _replay(self, sid: str, after: int) -> list[list[Any]]:
        try:
            reply = await self.replica.request(Kind.REPLAY_REQUEST, {"sid": sid, "after": after})
        except TimeoutError:
            log.warning("no replay from the supervisor for a reconnecting stream; continuing without it")
            return []
        return list(reply.value or [])

    # ------------------------------------------------------------ to clients

    def send_to_session(self, sid: str, message: Message) -> None:
        """Through the session's mailbox to whichever worker holds its GET stream."""
        self.reporter.report(Kind.SESSION_SEND, {"sid": sid, "message": message})

    def _to_client(self, call: ClientCall | None, sid: str, message: Message) -> None:
        if call is not None and call.channel is not None and not call.channel.broken:
            call.channel.push(message)
        else:
            self.send_to_session(sid, message)

    # ------------------------------------------------------------ from backends

    def _pick_call(self, session: BackendSession, related: Pending | None, capability: str) -> ClientCall | None:
        """The client call a backend's request belongs to. Over HTTP the response stream says; over stdio
        nothing does, so the most recent call on this session whose client can answer is chosen."""
        if related is not None and isinstance(related.context, ClientCall):
            return related.context
        candidates = [p for p in session.pending_calls()
                      if isinstance(p.context, ClientCall) and p.context.session.declares(capability)]
        if not candidates:
            return None
        return max(candidates, key=lambda p: p.started).context

    def _on_backend_request(self, backend: str, session: BackendSession, message: Message,
                            related: Pending | None) -> None:
        method = str(message.get("method"))
        capability = _CAPABILITY_OF.get(method)
        call = self._pick_call(session, related, capability) if capability else None
        if call is None or not call.session.declares(capability or ""):
            reason = (f"the client of this call did not declare '{capability}'" if call is not None
                      else f"no client call through Only1MCP can answer {method} now")
            asyncio.get_running_loop().create_task(session.respond(
                message["id"], error={"code": int(Code.METHOD_NOT_FOUND), "message": reason}))
            return
        proxy_id = self.outstanding.add(session, message["id"], call.session.sid)
        self._to_client(call, call.session.sid, {**message, "id": proxy_id})

    def _on_backend_notification(self, backend: str, session: BackendSession, message: Message,
                                 related: Pending | None) -> None:
        method = str(message.get("method"))
        params = message.get("params") or {}
        call = related.context if related is not None and isinstance(related.context, ClientCall) else None
        if method.endswith("/list_changed"):
            self.reporter.report(Kind.BACKEND_CHANGED, {"backend": backend})
        elif method == "notifications/resources/updated":
            self._resource_updated(backend, str(params.get("uri", "")), message)
        elif method == "notifications/tasks/status":
            task_id = f"{session.replica}:{params.get('taskId', '')}"
            owner = self.task_owners.get((backend, task_id))
            exposed = jsonrpc.notification(method, tasks.expose_task(backend, session.replica, params))
            if call is not None:
                self._to_client(call, call.session.sid, exposed)
            elif owner is not None:
                self.send_to_session(owner, exposed)
            if params.get("status") in ("completed", "failed", "cancelled"):
                self.task_owners.pop((backend, task_id), None)
        elif method == "notifications/cancelled":
            proxy_id = self.outstanding.find(session, params.get("requestId"))
            if proxy_id is not None:
                entry = self.outstanding.pop(proxy_id)
                sid = entry[2] if entry else ""
                self._to_client(call, sid, jsonrpc.notification(method, {**params, "requestId": proxy_id}))
        elif call is not None:
            self._to_client(call, call.session.sid, message)
        else:
            log.debug("backend '%s': %s outside any call was not relayed (it belongs to no one client)",
                      backend, method)

    def _resource_updated(self, backend: str, uri: str, message: Message) -> None:
        exposed = self.view.exposed_uri(backend, uri) if self.view is not None else uri
        for sid in self.subscriptions.get((backend, uri), ()):
            update = jsonrpc.notification(message["method"], {**message["params"], "uri": exposed})
            sink = self.streams.sink(sid)
            if sink is not None:
                sink(update)  # the subscriber's stream is here (a WebSocket, a subscriptions/listen stream)
            else:
                self.send_to_session(sid, update)

    # ------------------------------------------------------------ relays from other workers

    def on_relayed(self, envelope: Envelope) -> None:
        if envelope.kind is Kind.SESSION_EVENT:
            self.streams.deliver(envelope.key, envelope.seq, envelope.value)
            return
        payload = envelope.value if isinstance(envelope.value, dict) else {}
        if payload.get("origin") == self.pid:
            return  # our own broadcast
        kind = payload.get("kind")
        if kind == "response" and payload.get("pid") == self.pid:
            self.client_response(payload.get("message") or {})
        elif kind == "cancel":
            self.cancel_local(str(payload.get("sid")), payload.get("requestId"))
        elif kind == "legacy_post" and payload.get("pid") == self.pid and self.legacy_post is not None:
            self.legacy_post(str(payload.get("token")), payload.get("message") or {})
        elif kind in ("modern_retry", "modern_event") and payload.get("pid") == self.pid \
                and self.stateless_relay is not None:
            self.stateless_relay(payload)
        elif kind == "unsubscribe":
            self.unsubscribe_local(str(payload.get("sid")), str(payload.get("backend")), str(payload.get("uri")))

    def relay(self, target: int | str, payload: dict[str, Any]) -> None:
        self.reporter.report(Kind.RELAY, {"target": target, "payload": {**payload, "origin": self.pid}})

    def client_response(self, message: Message) -> None:
        """A client's answer to a request we relayed: back to the waiting backend, wherever it waits."""
        proxy_id = message.get("id")
        owner = Outstanding.owner(proxy_id)
        if owner is None:
            log.debug("dropped a client response with an id we never issued: %r", proxy_id)
            return
        if not self.outstanding.mine(proxy_id):
            self.relay(owner[0], {"kind": "response", "pid": owner[1], "message": message})
            return
        entry = self.outstanding.pop(proxy_id)
        if entry is None:
            log.debug("dropped a late client response for %s", proxy_id)
            return
        session, backend_id, _ = entry
        error = message.get("error")
        asyncio.get_running_loop().create_task(session.respond(
            backend_id, message.get("result"), error if isinstance(error, dict) else None))

    def cancel_local(self, sid: str, request_id: Any) -> bool:
        entry = self.inflight.get((sid, request_id))
        if entry is None:
            return False
        session, call = entry
        return session.cancel_call(call)

    def unsubscribe_local(self, sid: str, backend: str, uri: str) -> bool:
        subscribers = self.subscriptions.get((backend, uri))
        if not subscribers or sid not in subscribers:
            return False
        subscribers.discard(sid)
        if not subscribers:
            del self.subscriptions[(backend, uri)]
            asyncio.get_running_loop().create_task(self._backend_unsubscribe(backend, uri))
        return True

    async def _backend_unsubscribe(self, backend: str, uri: str) -> None:
        for session in self.pool.sessions_of(backend):
            try:
                await session.call("resources/unsubscribe", {"uri": uri}, 10.0)
            except jsonrpc.JsonRpcError as exc:
                log.info("backend '%s': unsubscribe %s failed: %s", backend, uri, exc.message)
            return

    async def close(self) -> None:
        self.streams.close_all()
        await self.pool.close()
