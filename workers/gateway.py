"""The data plane of one worker: the state it serves from, and everything backends send back."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

from only1mcp.admin.traffic import traffic_by_backend
from only1mcp.audit.trail import AuditTrail
from only1mcp.auth.keyset import KeySet
from only1mcp.auth.resource import ProtectedResource
from only1mcp.backends.base import Message
from only1mcp.backends.session import BackendSession, Pending
from only1mcp.background import Background
from only1mcp.bus import Envelope, Kind, MessageRouter, Replica, Reporter, State, Target
from only1mcp.bus.messages import (
    ALL_WORKERS,
    BackendChanged,
    CancelCall,
    ClientResponse,
    Replay,
    ReplayRequest,
    SessionEvent,
    SessionLogLevel,
    TaskOwned,
    ToolsFound,
    Unsubscribe,
)
from only1mcp.bus.wire import Payload
from only1mcp.catalog.profiles import CompiledProfile, compile_profiles
from only1mcp.catalog.view import CatalogView
from only1mcp.config.models import Settings
from only1mcp.config.rbac import RbacSettings
from only1mcp.context.present import Presentation
from only1mcp.context.semantic import SemanticModel
from only1mcp.http.client import Http1Pool
from only1mcp.logs import set_format, set_level
from only1mcp.metrics import Metrics, RequestMetrics, read_samples
from only1mcp.observe.requests import RequestLog
from only1mcp.policy.policy import Policy
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.jsonrpc import Code
from only1mcp.ratelimit.limits import Limit
from only1mcp.sessions import SessionInfo, SessionSealer
from only1mcp.spec import WorkerSpec

from . import tasks
from .backend_tokens import WorkerTokens
from .backends import BackendPool
from .calls import ClientCall, Outstanding
from .delivery import Delivery, attribute
from .found import FoundTools
from .jwks import WorkerKeys
from .log_levels import SessionLogLevels
from .origins import OriginPolicy
from .rate_limits import RateLimiter
from .routing import OutcomeBatcher, Router
from .streams import SessionStreams

__all__ = ["Gateway"]

log = logging.getLogger("only1mcp.worker")

_MAX_TASK_OWNERS = 10_000
_CAPABILITY_OF = {"sampling/createMessage": "sampling", "elicitation/create": "elicitation", "roots/list": "roots"}


def _presentation(settings: Settings) -> tuple[Any, ...]:
    """The settings that decide how tools/list shows the tools."""
    return settings.proxy.tools_mode, settings.proxy.compact, settings.proxy.lazy


class Gateway:
    """Owns this worker's view of the shared state and routes what backends send to the right client."""

    def __init__(self, spec: WorkerSpec, replica: Replica, reporter: Reporter, http: Http1Pool,
                 metrics: Metrics) -> None:
        self.spec = spec
        self.metrics = metrics
        self.request_metrics = RequestMetrics(metrics)
        self.pid = os.getpid()
        self.replica = replica
        self.reporter = reporter
        self.settings: Settings | None = None
        self.policy = OriginPolicy(spec.host, [], [])  # replaced with the configured one on every config
        self.protected: ProtectedResource | None = None  # authentication; None while it is off
        # rbac, compiled here from each new config and nowhere else; requests only look permissions up
        self.rbac = Policy(RbacSettings())
        # profiles (config `profiles`), compiled here from each new config; a view prepares their pages
        self.profiles: dict[str, CompiledProfile] = {}
        self.routers: dict[str, Router] = {}
        self.outcomes = OutcomeBatcher(reporter)
        self.limits = RateLimiter(reporter, self._rate_limited)
        self.view: CatalogView | None = None
        self.catalog_version = 0
        # lazy.rerank's embedding model: one per process, kept across catalog versions (loaded on first need)
        self.semantic = SemanticModel()
        self.sealer: SessionSealer | None = None
        # the gateway's own tokens for backends with oauth (a client's credential never reaches a backend)
        self.backend_tokens = WorkerTokens(reporter)
        self.pool = BackendPool(Path(spec.runtime_dir), http, self._on_backend_request, self._on_backend_notification,
                                reporter.sender, lambda backend: self.backend_tokens.credentials(
                                    backend.name, getattr(backend, "oauth", None)))
        self.tasks = Background("gateway")
        self.outstanding = Outstanding(spec.slot, self.pid, self.tasks)
        self.streams = SessionStreams(self._replay)
        self.log_levels = SessionLogLevels()  # each session's logging/setLevel, as relayed to every worker
        self.delivery = Delivery(self.streams, reporter, self.log_levels)
        # (session id, client request id) -> (backend session, call): where a client's cancel must go
        self.inflight: dict[tuple[str, Any], tuple[BackendSession, ClientCall]] = {}
        # (backend, backend's uri) -> sessions subscribed through this worker
        self.subscriptions: dict[tuple[str, str], set[str]] = {}
        # (backend, backend's task id) -> the session that created the task, for its status notifications
        self.task_owners: dict[tuple[str, str], str] = {}
        # lazy mode with expose_found: what each session's searches found (relayed to every worker)
        self.found = FoundTools()
        self.audit = AuditTrail(Path(spec.runtime_dir))
        # each request's scope: its id in the log, its access line, its span (docs/architecture.md, "Logs and traces")
        self.requests = RequestLog(f"worker-{spec.slot}")
        self.issuer_keys = WorkerKeys(reporter)
        self._config_version = 0
        self._restarts: dict[str, int] = {}  # per backend: the operator's restart count its children started at
        self._sessions_value: Any = None
        self.request_timeout = 300.0

    def register(self, inbox: MessageRouter) -> None:
        """The relayed messages this part of the worker handles."""
        inbox.register(Kind.SESSION_EVENT, self._session_event)
        inbox.register(Kind.CLIENT_RESPONSE, self._relayed_response)
        inbox.register(Kind.CANCEL_CALL, self._relayed_cancel)
        inbox.register(Kind.UNSUBSCRIBE, self._relayed_unsubscribe)
        self.limits.register(inbox)
        inbox.register(Kind.TOOLS_FOUND, self._relayed_found)
        inbox.register(Kind.TASK_OWNED, self._relayed_task)
        inbox.register(Kind.LOG_LEVEL_SET, self._relayed_level)

    # ------------------------------------------------------------ shared state

    def on_state(self, state: State) -> None:
        config = state.config
        if config is not None and config.version != self._config_version:
            self._config_version = config.version
            previous, self.settings = self.settings, Settings.model_validate(config.settings)
            server = self.settings.server
            set_level(server.log_level)
            set_format(self.settings.logging.format)
            self.requests.configure(self.settings.logging)
            self.audit.configure(self.settings.audit)
            self.request_metrics.switch(self.settings.metrics.enabled)
            self.request_timeout = self.settings.proxy.request_timeout
            self.policy = OriginPolicy(self.spec.host, server.allowed_origins, server.allowed_hosts)
            self.limits.configure(self.settings.rate_limits)
            self.protected = ProtectedResource.build(self.settings, self.spec.host, self.spec.port,
                                                     lambda: self.issuer_keys.keys)
            self.rbac = Policy(self.settings.rbac)
            self.profiles = compile_profiles(self.settings.profiles)
            if previous is not None and (previous.rbac != self.settings.rbac
                                         or previous.profiles != self.settings.profiles):
                # What each caller or endpoint may see changed, though the catalog did not: every list may
                # differ.
                for kind in ("prompts", "resources", "tools"):
                    self.streams.broadcast(jsonrpc.notification(f"notifications/{kind}/list_changed"))
            elif previous is not None and _presentation(previous) != _presentation(self.settings):
                # The tool mode changed: every tools/list is shown another way.
                self.streams.broadcast(jsonrpc.notification("notifications/tools/list_changed"))
            backends = {b.name: b for b in self.settings.enabled_backends()}
            # A router keeps its in-flight counts and balancer position while its backend is unchanged.
            self.routers = {name: self.routers[name] if self.pool.known(name) == backend and name in self.routers
                            else Router(backend) for name, backend in backends.items()}
            self.pool.configure(backends)
            self.view = None  # page size may have changed, and the permissions its filtered pages are for
        sessions = state.sessions
        if sessions is not None and sessions is not self._sessions_value:
            self._sessions_value = sessions
            self.sealer = SessionSealer(sessions.secret, sessions.ttl)
        self.issuer_keys.on_state(state.jwks, self.settings.auth.jwt if self.settings is not None else None)
        self.backend_tokens.on_state(state.tokens)
        for name, router in self.routers.items():
            router.update(state.routes.get(name))
        self._follow_orders(state)
        catalog = state.catalog
        if catalog is not None and self.settings is not None and (
                self.view is None or catalog.version != self.catalog_version):
            old = self.view
            proxy = self.settings.proxy
            self.view = CatalogView(catalog.catalog, proxy.page_size,
                                    Presentation(proxy.tools_mode, proxy.compact, proxy.lazy, self.semantic),
                                    self.profiles)
            self.catalog_version = catalog.version
            if old is not None:
                self._announce_changes(old.catalog, catalog.catalog)

    def traffic(self) -> dict[str, dict[str, Any]]:
        """Requests, errors and latency per backend, summed over every process (only1mcp.admin.traffic)."""
        return traffic_by_backend(read_samples(self.metrics.directory))

    def _follow_orders(self, state: State) -> None:
        """An operator's drain and restart orders (admin API), as the supervisor published them."""
        for name, router in self.routers.items():
            orders = state.operator.get(name)
            router.drained = orders is not None and orders.drained
            restarts = orders.restarts if orders is not None else 0
            seen = self._restarts.setdefault(name, restarts)  # a backend new here starts as ordered now
            if restarts > seen:
                self._restarts[name] = restarts
                self.pool.restart(name)
        for name in [n for n in self._restarts if n not in self.routers]:
            del self._restarts[name]

    def _announce_changes(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """Tell every client with a GET stream here which of its lists changed."""
        changed = {kind for key, kind in (("tools", "tools"), ("prompts", "prompts"), ("resources", "resources"),
                                          ("templates", "resources")) if old.get(key) != new.get(key)}
        for kind in sorted(changed):
            self.streams.broadcast(jsonrpc.notification(f"notifications/{kind}/list_changed"))

    # ------------------------------------------------------------ the JWT issuer's keys

    @property
    def keys(self) -> KeySet:
        """The issuer's keys as last published (rebuilt only when they change)."""
        return self.issuer_keys.keys

    def want_keys(self, kid: str) -> bool:
        """A token names key ``kid``, not in ``keys``: ask the supervisor to fetch them again (rate-limited).
        True when newer keys may arrive (wait with ``newer_keys``), False when waiting would be in vain."""
        return self.issuer_keys.want(kid)

    async def newer_keys(self, generation: int, timeout: float) -> KeySet:
        """The keys once a publication after ``generation`` (``issuer_keys.generation`` when asking) arrived,
        or the current ones after ``timeout`` seconds."""
        return await self.issuer_keys.newer_than(generation, timeout)

    async def keys_for(self, kid: str, timeout: float) -> KeySet:
        """``want_keys`` and ``newer_keys`` in one: the keys to verify again a token that raised UnknownKey."""
        return await self.issuer_keys.keys_for(kid, timeout)

    def _rate_limited(self, limit: Limit) -> None:
        if self.request_metrics.on:
            self.request_metrics.rate_limited(limit.value)

    def task_created(self, backend: str, task_id: str, sid: str) -> None:
        """Session ``sid`` created a task: remembered here and in every other worker."""
        self.remember_task(backend, task_id, sid)
        self.relay(Kind.TASK_OWNED, TaskOwned(self.everyone, backend, task_id, sid))

    def _relayed_task(self, envelope: Envelope) -> None:
        owned = envelope.payload
        assert isinstance(owned, TaskOwned)
        self.remember_task(owned.backend, owned.task, owned.sid)

    def remember_task(self, backend: str, task_id: str, sid: str) -> None:
        """Who created a task, for its status notifications and its place in that session's tasks/list (kept
        after the task ends: its result stays fetchable until its ttl); bounded, oldest forgotten first."""
        self.task_owners[(backend, task_id)] = sid
        if len(self.task_owners) > _MAX_TASK_OWNERS:
            del self.task_owners[next(iter(self.task_owners))]

    def session_gone(self, session: SessionInfo) -> bool:
        return session.sid in self.replica.revocations

    async def _replay(self, sid: str, after: int) -> list[tuple[int, bytes]]:
        try:
            reply = await self.replica.request(Kind.REPLAY_REQUEST, lambda rid: ReplayRequest(rid, sid, after))
        except TimeoutError:
            log.warning("no replay from the supervisor for a reconnecting stream; continuing without it")
            return []
        replay = reply.payload
        return list(zip(replay.numbers, replay.messages, strict=True)) if isinstance(replay, Replay) else []

    # ------------------------------------------------------------ from backends

    def _on_backend_request(self, backend: str, session: BackendSession, message: Message,
                            related: Pending | None, caller: str | None) -> None:
        """A backend asks a client something (sampling, elicitation, roots): relayed under a proxy-minted id
        to the client whose call it belongs to, or refused with an error that says why."""
        method = str(message.get("method"))
        capability = _CAPABILITY_OF.get(method)
        owner = attribute(session, related, caller, backend)
        call = owner.call
        if capability is None:
            reason = f"{method} is not a request Only1MCP relays to clients"
        elif call is None:
            reason = owner.why
        elif not call.session.declares(capability):
            reason = f"the client of this call did not declare '{capability}'"
        else:
            proxy_id = self.outstanding.add(session, message["id"], call.session.sid, call.deadline)
            self.delivery.deliver(call.session.sid, call, {**message, "id": proxy_id})
            return
        self.tasks.spawn(session.respond(message["id"], error={"code": int(Code.METHOD_NOT_FOUND),
                                                               "message": reason}), "refuse-backend-request")

    def _on_backend_notification(self, backend: str, session: BackendSession, message: Message,
                                 related: Pending | None, caller: str | None) -> None:
        method = str(message.get("method"))
        params = message.get("params") or {}
        call = related.context if related is not None and isinstance(related.context, ClientCall) else None
        if method.endswith("/list_changed"):
            self.reporter.send(Kind.BACKEND_CHANGED, BackendChanged(backend))
        elif method == "notifications/resources/updated":
            self._resource_updated(backend, str(params.get("uri", "")), message)
        elif method == "notifications/tasks/status":
            task_id = f"{session.replica}:{params.get('taskId', '')}"
            owner = self.task_owners.get((backend, task_id))
            to = call.session.sid if call is not None else owner
            if to is not None and self.sealer is not None:  # a task's news go to the session that created it
                exposed = jsonrpc.notification(method, tasks.expose_task(backend, session.replica, params, to,
                                                                         self.sealer.tag))
                self.delivery.deliver(to, call, exposed)
        elif method == "notifications/cancelled":
            proxy_id = self.outstanding.find(session, params.get("requestId"))
            entry = self.outstanding.pop(proxy_id) if proxy_id is not None else None
            if entry is not None:
                self.delivery.deliver(entry.sid, call, jsonrpc.notification(method, {**params,
                                                                                     "requestId": proxy_id}))
        else:
            owner = attribute(session, related, caller, backend)
            if owner.call is not None:
                self.delivery.deliver(owner.call.session.sid, owner.call, message)
            else:
                log.debug("backend '%s': %s not relayed: %s", backend, method, owner.why)

    def _resource_updated(self, backend: str, uri: str, message: Message) -> None:
        exposed = self.view.exposed_uri(backend, uri) if self.view is not None else uri
        for sid in self.subscriptions.get((backend, uri), ()):
            self.delivery.deliver(sid, None, jsonrpc.notification(message["method"],
                                                                  {**message["params"], "uri": exposed}))

    # ------------------------------------------------------------ relays from other workers

    def _session_event(self, envelope: Envelope) -> None:
        event = envelope.payload
        assert isinstance(event, SessionEvent)
        self.streams.deliver(event.sid, event.number, event.message)

    def _relayed_response(self, envelope: Envelope) -> None:
        assert isinstance(envelope.payload, ClientResponse)
        self.client_response(envelope.payload.message)

    def _relayed_cancel(self, envelope: Envelope) -> None:
        assert isinstance(envelope.payload, CancelCall)
        self.cancel_local(envelope.payload.sid, envelope.payload.request_id)

    def _relayed_unsubscribe(self, envelope: Envelope) -> None:
        message = envelope.payload
        assert isinstance(message, Unsubscribe)
        self.unsubscribe_local(message.sid, message.backend, message.uri)

    def _relayed_found(self, envelope: Envelope) -> None:
        found = envelope.payload
        assert isinstance(found, ToolsFound)
        self.found.add(found.sid, found.names)

    def tools_found(self, sid: str, names: list[str]) -> None:
        """A search of session ``sid`` found ``names``: its list grows here and in every other worker, and
        the session is told its tools/list changed when one of them is new."""
        if self.found.add(sid, names):
            self.relay(Kind.TOOLS_FOUND, ToolsFound(self.everyone, sid, tuple(names)))
            # Through the mailbox, never straight to a stream held here: the supervisor publishes it after the
            # relay above, so every worker has been sent the names before the client can hear of the change.
            self.delivery.mail(sid, jsonrpc.notification("notifications/tools/list_changed"))

    def _relayed_level(self, envelope: Envelope) -> None:
        chosen = envelope.payload
        assert isinstance(chosen, SessionLogLevel)
        self.log_levels.set(chosen.sid, chosen.level)

    def session_log_level(self, sid: str, level: str) -> None:
        """Session ``sid`` asked for log messages of ``level`` and above: here at once, and on every other
        worker through the relay."""
        self.log_levels.set(sid, level)
        self.relay(Kind.LOG_LEVEL_SET, SessionLogLevel(self.everyone, sid, level))

    def relay(self, kind: Kind, payload: Payload) -> None:
        """To another worker (or all) through the supervisor."""
        self.reporter.send(kind, payload)

    @property
    def everyone(self) -> Target:
        return Target(ALL_WORKERS)

    def client_response(self, message: Message) -> None:
        """A client's answer to a request we relayed: back to the waiting backend, wherever it waits."""
        proxy_id = message.get("id")
        owner = Outstanding.owner(proxy_id)
        if owner is None:
            log.debug("dropped a client response with an id we never issued: %r", proxy_id)
            return
        if not self.outstanding.mine(proxy_id):
            self.relay(Kind.CLIENT_RESPONSE, ClientResponse(Target(*owner), message))
            return
        entry = self.outstanding.pop(proxy_id)
        if entry is None:
            log.debug("dropped a late client response for %s", proxy_id)
            return
        error = message.get("error")
        self.tasks.spawn(entry.session.respond(entry.backend_id, message.get("result"),
                                               error if isinstance(error, dict) else None), "client-response")

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
            self.tasks.spawn(self._backend_unsubscribe(backend, uri), "unsubscribe")
        return True

    async def _backend_unsubscribe(self, backend: str, uri: str) -> None:
        for session in self.pool.sessions_of(backend):
            try:
                await session.call("resources/unsubscribe", {"uri": uri}, 10.0)
            except jsonrpc.JsonRpcError as exc:
                log.info("backend '%s': unsubscribe %s failed: %s", backend, uri, exc.message)
            return

    async def close(self) -> None:
        await self.limits.close()
        self.streams.close_all()
        self.outstanding.clear()
        await self.tasks.close()
        await self.pool.close()
        self.audit.close()
        await asyncio.to_thread(self.requests.close)  # an export sends its last batch (blocking: the SDK's thread)
