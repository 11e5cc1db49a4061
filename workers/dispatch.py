"""What the gateway does with each client message: answer it from the catalog or route it to a backend."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from only1mcp import __version__
from only1mcp.audit.outcome import Outcome
from only1mcp.auth.principal import Principal
from only1mcp.backends.base import BackendError, BackendRpcError, BackendTimeout, BackendUnavailable
from only1mcp.backends.session import BackendSession
from only1mcp.bus import Kind
from only1mcp.bus.messages import CancelCall, Unsubscribe
from only1mcp.catalog.profiles import choose_profile
from only1mcp.catalog.view import LIST_KEYS, CatalogView
from only1mcp.context.lazy import CALL_TOOL, SEARCH_TOOLS, SearchRequest, search_result, unwrap_call
from only1mcp.observe.scope import RequestScope, current
from only1mcp.observe.spans import Span
from only1mcp.policy.denied import Denied
from only1mcp.policy.patterns import PolicyKind
from only1mcp.policy.permissions import Permissions
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.jsonrpc import Code, JsonRpcError
from only1mcp.protocol.versions import negotiate
from only1mcp.ratelimit.limits import Limit, Refusal, principal_key
from only1mcp.sessions import SessionInfo

from . import tasks
from .audited import Client, backend_of, outcome_of
from .calls import Channel, ClientCall, ReplyChannel
from .gateway import Gateway
from .log_levels import checked_level
from .params import text_param
from .rate_limits import RateLimited
from .task_calls import Handler, TaskCalls

__all__ = ["SERVER_INFO", "Dispatcher", "error_bytes", "result_bytes"]

log = logging.getLogger("only1mcp.worker")

SERVER_INFO = {"name": "only1mcp", "title": "Only1MCP gateway", "version": __version__}
_REQUEST_CANCELLED = -32800


def result_bytes(request_id: Any, result: Any) -> bytes:
    return dumps(jsonrpc.response(request_id, result))


def error_bytes(request_id: Any, code: int, message: str, data: Any = None) -> bytes:
    return dumps(jsonrpc.error_message(request_id, code, message, data))


def _unknown_name(kind: PolicyKind, name: str) -> JsonRpcError:
    noun = "tool" if kind is PolicyKind.TOOLS else "prompt"
    return JsonRpcError(Code.INVALID_PARAMS, f"unknown {noun} '{name}'; call {noun}s/list for the {noun}s this gateway "
                        "offers")


def _resource_not_found(_kind: PolicyKind, uri: str) -> JsonRpcError:
    return JsonRpcError(Code.RESOURCE_NOT_FOUND, f"resource not found: no backend serves '{uri}'; call resources/list "
                        "or resources/templates/list", {"uri": uri})


def _unknown_reference(_kind: PolicyKind, uri: str) -> JsonRpcError:
    return JsonRpcError(Code.INVALID_PARAMS, f"unknown resource or template '{uri}'")


def _with_fixed(arguments: Any, fixed: dict[str, Any] | None, what: str) -> Any:
    """The arguments a backend gets: the client's plus those the gateway fixes. A client may not send a fixed
    one (its schema does not show it): -32602 naming it, rather than silently replacing its value."""
    if fixed is None:
        return arguments
    if arguments is not None and not isinstance(arguments, dict):
        raise JsonRpcError(Code.INVALID_PARAMS, f"{what}: arguments must be an object")
    sent = sorted(set(arguments or ()) & fixed.keys())
    if sent:
        listed = ", ".join(f"'{name}'" for name in sent)
        raise JsonRpcError(Code.INVALID_PARAMS, f"{what}: argument {listed} is fixed by the gateway's configuration "
                           "and may not be sent; call again without it", {"fixed": sent})
    return {**(arguments or {}), **fixed}


class Dispatcher:
    __slots__ = ("_gateway", "_handlers", "_tasks")

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._tasks = TaskCalls(gateway, self._forward, lambda: self.view)
        self._handlers: dict[str, Handler] = {
            "ping": self._ping,
            "tools/call": self._tools_call,
            "resources/read": self._resources_read,
            "resources/subscribe": self._subscribe,
            "resources/unsubscribe": self._unsubscribe,
            "prompts/get": self._prompts_get,
            "completion/complete": self._complete,
            "logging/setLevel": self._set_level,
            **self._tasks.handlers(),
        }

    @property
    def view(self) -> CatalogView:
        view = self._gateway.view
        if view is None:
            raise JsonRpcError(Code.INTERNAL_ERROR, "the gateway has no catalog yet; retry in a moment")
        return view

    def initialize(self, params: Any) -> tuple[dict[str, Any], str, dict[str, Any]]:
        """(result, negotiated version, the client capabilities worth remembering); JsonRpcError (-32602)
        when ``params`` is not what initialize takes. Every door opens its sessions here, so they are
        counted here."""
        metrics = self._gateway.request_metrics
        if not metrics.on:
            return self._initialize(params)
        started = time.perf_counter()
        try:
            answer = self._initialize(params)
        except JsonRpcError:
            metrics.request("initialize", "", Outcome.ERROR, time.perf_counter() - started)
            raise
        metrics.request("initialize", "", Outcome.OK, time.perf_counter() - started)
        metrics.session_opened()
        return answer

    def _initialize(self, params: Any) -> tuple[dict[str, Any], str, dict[str, Any]]:
        if params is None:
            params = {}
        if not isinstance(params, dict):
            raise JsonRpcError(Code.INVALID_PARAMS, "initialize: params must be an object with protocolVersion, "
                               "capabilities and clientInfo")
        declared = params.get("capabilities")
        if declared is not None and not isinstance(declared, dict):
            raise JsonRpcError(Code.INVALID_PARAMS, "initialize: params.capabilities must be an object")
        version = negotiate(params.get("protocolVersion"))
        capabilities = {k: v for k, v in (declared or {}).items()
                        if k in ("sampling", "elicitation", "roots", "tasks") and isinstance(v, dict)}
        view = self._gateway.view
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": view.capabilities if view is not None else {},
            "serverInfo": SERVER_INFO,
        }
        if view is not None and view.instructions:
            result["instructions"] = view.instructions
        return result, version, capabilities

    async def request(self, session: SessionInfo, message: dict[str, Any], channel: Channel | None,
                      client: Client) -> bytes:
        """The serialized response to one client request. Its audit line is written here, before the
        response is returned to be sent (docs/architecture.md, "The audit trail"), and it is counted."""
        # With the trail and metrics both off a request pays these two attribute reads, nothing more.
        gateway = self._gateway
        accounted = gateway.audit.enabled or gateway.request_metrics.on
        started = time.perf_counter() if accounted else 0.0
        method, request_id = message["method"], message["id"]
        params = message.get("params")
        # (a message relayed from another worker comes without a scope: it gets an id of its own here)
        scope = current() or self._gateway.requests.message()
        scope.sid = session.sid
        if scope.started or (type(params) is dict and "_meta" in params):
            self._scoped(scope, method, params)
        limits = self._gateway.limits
        # rate_limits.per_principal, for every request of a session whatever its door (POST /mcp, a batch's
        # requests, /ws, legacy /sse): the common case, a token in a lease this worker holds, costs no wait
        if limits.per_principal and not limits.admit_now(Limit.PER_PRINCIPAL, principal_key(
                session.caller, client.peer())) and (refused := await self._over_principal_limit(
                session, message, channel, client, started if accounted else None)) is not None:
            scope.error = Code.RATE_LIMITED
            return refused
        try:
            if params is not None and not isinstance(params, dict):
                raise JsonRpcError(Code.INVALID_PARAMS, f"{method}: params must be an object")
            if method in LIST_KEYS:
                page = self.page(session, method, params)
                if accounted:
                    self._account(Outcome.OK, session, message, client, started)
                return b'{"jsonrpc":"2.0","id":' + dumps(request_id) + b',"result":' + page + b"}"
            result = await self.answer(session, method, request_id, params or {}, channel, client)
        except JsonRpcError as exc:
            scope.error = exc.code
            return self._failed(exc, session, message, channel, client, started if accounted else None)
        except Exception:
            # A defect of ours: the door answers -32603; the line must already be there when it does.
            if accounted:
                self._account(Outcome.ERROR, session, message, client, started, Code.INTERNAL_ERROR)
            raise
        if accounted:
            self._account(outcome_of(result), session, message, client, started)
        return result_bytes(request_id, result)

    def _failed(self, exc: JsonRpcError, session: SessionInfo, message: dict[str, Any], channel: Channel | None,
                client: Client, started: float | None) -> bytes:
        """The answer to a request that failed with ``exc``, audited and counted as denied, rate_limited or error
        (``started`` None: the trail and metrics were off when the request arrived)."""
        if isinstance(exc, RateLimited):  # per_tool or per_backend
            return self._rate_limited(exc.refusal, session, message, channel, client, started)
        if started is not None:
            self._account(Outcome.DENIED if isinstance(exc, Denied) else Outcome.ERROR, session, message, client,
                          started, exc.code)
        return error_bytes(message["id"], exc.code, exc.message, exc.data)

    async def _over_principal_limit(self, session: SessionInfo, message: dict[str, Any], channel: Channel | None,
                                    client: Client, started: float | None) -> bytes | None:
        """The refusal of a request over rate_limits.per_principal (None: admitted), once the worker's own
        leases had no token for it."""
        refused = await self._gateway.limits.admit(Limit.PER_PRINCIPAL, principal_key(session.caller, client.peer()))
        return None if refused is None else self._rate_limited(refused, session, message, channel, client, started)

    def _rate_limited(self, refused: Refusal, session: SessionInfo, message: dict[str, Any], channel: Channel | None,
                      client: Client, started: float | None) -> bytes:
        """A request a rate limit refused: audited (unless ``started`` is None), its JSON-RPC error naming the
        limit, and on POST /mcp HTTP 429 with Retry-After (on a WebSocket or legacy SSE, the error alone)."""
        if isinstance(channel, ReplyChannel):
            channel.rate_limited(refused.retry_after)
        if started is not None:
            self._account(Outcome.RATE_LIMITED, session, message, client, started, Code.RATE_LIMITED)
        return error_bytes(message["id"], Code.RATE_LIMITED, refused.message, refused.data)

    def _account(self, outcome: Outcome, session: SessionInfo, message: dict[str, Any], client: Client,
                 started: float, code: int | None = None) -> None:
        """The audit line and the metrics of a request answered now, each while it is on."""
        if self._gateway.audit.enabled:
            self.audit(outcome, session, message, client, started, code)
        if self._gateway.request_metrics.on:
            self.measure(message["method"], message.get("params"), outcome, started)

    def measure(self, method: str, params: Any, outcome: Outcome, started: float) -> None:
        """Count a request answered now and time it since ``started`` (``perf_counter``); a tools/call of a
        tool in the catalog is counted per tool too. The backend is looked up again, as the audit line's is:
        a dictionary lookup that keeps the handlers free of accounting."""
        backend = backend_of(self._gateway.view, method, params)
        self._gateway.request_metrics.request(method, backend or "", outcome, time.perf_counter() - started,
                                              params["name"] if backend is not None and method == "tools/call"
                                              else "")

    def _scoped(self, scope: RequestScope, method: str, params: Any) -> None:
        """What the access line and the span of this request learn from its message: its method, and a trace
        context the client sent in ``params._meta`` (SEP-414) rather than as a header."""
        if type(params) is dict and "_meta" in params and (scope.span is None or scope.span.root):
            self._gateway.requests.adopt(scope, params)
        if scope.started:  # (adopting may have started it)
            scope.method = method

    def audit(self, outcome: Outcome, session: SessionInfo | None, message: dict[str, Any], client: Client,
              started: float, code: int | None = None, caller: Principal | None = None) -> None:
        """Write the audit line of a request answered now (nothing while the trail is off)."""
        trail = self._gateway.audit
        if trail.enabled:
            message = self._as_run(session, message)
            trail.record(outcome, message, peer=client.peer(), session=session, caller=caller, started=started,
                         code=code, backend=backend_of(self._gateway.view, message["method"], message.get("params")))

    def _as_run(self, session: SessionInfo | None, message: dict[str, Any]) -> dict[str, Any]:
        """The request as the gateway ran it: a lazy view's ``call_tool`` is a rename, so its audit line names
        the tool it called, that tool's backend and arguments (a malformed one stays as it came)."""
        params = message.get("params")
        if session is None or message.get("method") != "tools/call" or not isinstance(params, dict) \
                or params.get("name") != CALL_TOOL or self._lazy(session) is None:
            return message
        try:
            return {**message, "params": unwrap_call(params)}
        except JsonRpcError:
            return message  # answered -32602 already; the line shows what was sent

    def page(self, session: SessionInfo, method: str, params: dict[str, Any] | None) -> bytes:
        """One serialized page of a list, answered from the catalog: what the endpoint's profile shows and the
        caller may use, no more."""
        permissions = self.permissions(session)
        profile = self._profile(session, permissions)
        view = self.view
        if method == "tools/list" and view.lazy(profile) and view.presentation_for(profile).lazy.expose_found and not (
                params or {}).get("cursor"):
            found = self._gateway.found.of(session.sid)
            if found:  # this session's own list: the meta-tools and what its searches found
                return view.lazy_list(found, permissions, profile)
        return view.page(method, params, self._gateway.settings.proxy.page_size,  # type: ignore[union-attr]
                         permissions, profile)

    @staticmethod
    def _profile(session: SessionInfo, permissions: Permissions) -> str | None:
        """The profile the request is served in: its endpoint's, or the one its caller's roles pin."""
        profile = session.catalog_profile
        if profile is not None or permissions.profiles:
            profile = choose_profile(profile, permissions.profiles)
        return profile

    def _lazy(self, session: SessionInfo) -> tuple[Permissions, str | None] | None:
        """(the caller's permissions, the profile served) when the request's endpoint serves lazy mode, whose
        meta-tools ``search_tools`` and ``call_tool`` then mean the gateway's own; None otherwise."""
        permissions = self.permissions(session)
        profile = self._profile(session, permissions)
        return (permissions, profile) if self.view.lazy(profile) else None

    def permissions(self, session: SessionInfo) -> Permissions:
        """What the caller of the request being served may use (everything while rbac or auth is off)."""
        return self._gateway.rbac.permissions(session.caller)

    def _in_profile(self, session: SessionInfo, backend: str, kind: PolicyKind, target: str,
                    unknown: Callable[[PolicyKind, str], JsonRpcError]) -> None:
        """Refuse, as unknown, what the profile of the request's endpoint does not show."""
        if session.catalog_profile is None and session.caller is None:
            return  # /mcp without authentication: the whole catalog (nothing more on the hot path)
        if not self.view.admits(self._profile(session, self.permissions(session)), backend, target):
            raise unknown(kind, target)

    def _permit(self, session: SessionInfo, kind: PolicyKind, target: str,
                unknown: Callable[[PolicyKind, str], JsonRpcError]) -> None:
        """The one place rbac refuses a request: ``Denied``, carrying the very error ``unknown`` makes for a
        target that does not exist, so the answer shows nothing of what exists (logged in ``answer``)."""
        if session.caller is None:
            return  # authentication off: nobody to restrict (two calls less on every request)
        if not self.permissions(session).allows(kind, target):
            raise Denied(unknown(kind, target), kind, target, session.caller)

    async def answer(self, session: SessionInfo, method: str, request_id: Any, params: dict[str, Any],
                     channel: Channel | None, client: Client | None = None) -> Any:
        """The result of a request that is not a list; JsonRpcError (logged once here) when it fails.
        ``client``: who sent it (its address is whom a call counts against while authentication is off)."""
        try:
            handler = self._handlers.get(method)
            if handler is None:
                raise JsonRpcError(Code.METHOD_NOT_FOUND, f"method not found: {method}")
            limits = self._gateway.limits
            if method == "tools/call" and (limits.per_tool or limits.per_backend):
                await self._within_limits(session, params, client)
            return await handler(session, request_id, params, channel)
        except RateLimited:
            raise  # logged where it was decided
        except Denied as exc:
            log.info("%s %s denied: %s may not use %s '%s' (answered as unknown)", method, request_id,
                     exc.caller.key if exc.caller is not None else "the caller", exc.kind.value, exc.target)
            raise
        except JsonRpcError as exc:
            if not isinstance(exc, BackendError) or exc.code in (Code.BACKEND_UNAVAILABLE, Code.REQUEST_TIMEOUT):
                log.info("%s %s failed: %s", method, request_id, exc.message)
            raise

    def notification(self, session: SessionInfo, message: dict[str, Any]) -> None:
        """A client notification: a cancel goes to the call, wherever it runs; the rest need nothing."""
        method = message["method"]
        if method == "notifications/cancelled":
            params = message.get("params")
            request_id = params.get("requestId") if isinstance(params, dict) else None
            if isinstance(request_id, bool) or not isinstance(request_id, (int, str)):
                # A notification gets no answer: say it once in the log, cancel nothing.
                log.info("ignored notifications/cancelled: params.requestId must be the string or integer id of a "
                         "request, got %s", type(request_id).__name__)
                return
            if not self._gateway.cancel_local(session.sid, request_id):
                self._gateway.relay(Kind.CANCEL_CALL, CancelCall(self._gateway.everyone, session.sid, request_id))
        elif method not in ("notifications/initialized", "notifications/roots/list_changed"):
            log.debug("ignored client notification %s", method)

    async def handle(self, session: SessionInfo, message: dict[str, Any], channel: Any,
                     client: Client) -> bytes | None:
        """Any message of an established session (shape already checked): the serialized answer to a
        request, or None for a notification or a client's response."""
        if "method" not in message:
            self._gateway.client_response(message)
            return None
        if "id" not in message:
            self.notification(session, message)
            return None
        return await self.request(session, message, channel, client)

    async def _forward(self, session: SessionInfo, request_id: Any, backend: str, method: str,
                       params: dict[str, Any], channel: Channel | None, *, idempotent: bool = False,
                       replica: int | None = None, key: str | None = None) -> Any:
        result, _ = await self._forward_to(session, request_id, backend, method, params, channel,
                                           idempotent=idempotent, replica=replica, key=key)
        return result

    async def _forward_to(self, session: SessionInfo, request_id: Any, backend: str, method: str,
                          params: dict[str, Any], channel: Channel | None, *, idempotent: bool = False,
                          replica: int | None = None, key: str | None = None) -> tuple[Any, int]:
        """Send to a replica the router picks (or ``replica``); an idempotent call that fails to reach its
        backend is retried on another replica while the request deadline allows. Returns (result, replica)."""
        gateway = self._gateway
        router = gateway.routers.get(backend)
        config = gateway.pool.known(backend)
        if router is None or config is None:
            raise BackendUnavailable(f"backend '{backend}' is not configured (it may have been removed)")
        scope = current()
        trace = None
        if scope is not None:
            scope.backend = backend  # named in the lines this call causes from now on
            trace = scope.span
        loop = asyncio.get_running_loop()
        deadline = loop.time() + gateway.request_timeout
        attempts = 1 + (config.retries if idempotent and replica is None else 0)
        tried: list[int] = []
        while True:
            chosen = replica if replica is not None else router.choose(key or session.sid, tried)
            tried.append(chosen)
            trial = router.started(chosen)
            started = loop.time()
            began = time.perf_counter()  # for metrics: uvloop's clock moves in whole milliseconds
            try:
                backend_session = await gateway.pool.session(backend, session, chosen)
                remaining = max(0.001, deadline - started)
                limit = "its timeouts.call" if config.timeouts.call <= remaining else "proxy.request_timeout"
                result = await self._call(backend_session, session, request_id, method, params, channel,
                                          min(config.timeouts.call, remaining), limit, trace)
            except (BackendUnavailable, BackendTimeout, BackendRpcError) as exc:
                not_sent = (isinstance(exc, BackendUnavailable) and not exc.sent) or (
                    isinstance(exc, BackendRpcError) and exc.not_sent)
                elapsed = loop.time() - started
                if not not_sent and gateway.request_metrics.on:
                    gateway.request_metrics.exchange(backend, time.perf_counter() - began)
                if isinstance(exc, BackendRpcError) and not not_sent:
                    gateway.outcomes.record(backend, chosen, True, elapsed)  # the backend answered
                    raise
                gateway.outcomes.record(backend, chosen, False, elapsed, exc.message)
                # A request that never reached a backend may always go elsewhere; one that did, only when
                # repeating it is harmless.
                allowed = router.count if not_sent and replica is None else min(attempts, router.count)
                if len(tried) >= allowed or loop.time() >= deadline:
                    raise
                log.info("%s on backend '%s' replica %d failed (%s); retrying on another", method, backend,
                         chosen, exc.message)
                continue
            finally:
                router.finished(chosen, trial)
            if gateway.request_metrics.on:
                gateway.request_metrics.exchange(backend, time.perf_counter() - began)
            gateway.outcomes.record(backend, chosen, True, loop.time() - started)
            return result, chosen

    async def _call(self, backend_session: BackendSession, session: SessionInfo, request_id: Any, method: str,
                    params: dict[str, Any], channel: Channel | None, timeout: float, limit: str,
                    trace: Span | None) -> Any:
        gateway = self._gateway
        call = ClientCall(session, request_id, method, channel, asyncio.get_running_loop().time() + timeout)
        key = (session.sid, request_id)
        gateway.inflight[key] = (backend_session, call)
        try:
            return await backend_session.call(method, params, timeout, on_related=self._related(call), context=call,
                                              limit=limit, caller=session.sid, trace=trace)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise  # the worker is stopping, not the client cancelling
            raise JsonRpcError(_REQUEST_CANCELLED, f"{method} was cancelled by the client") from None
        finally:
            if gateway.inflight.get(key, (None, None))[1] is call:
                del gateway.inflight[key]

    def _related(self, call: ClientCall) -> Callable[[dict[str, Any]], None]:
        delivery = self._gateway.delivery
        sid = call.session.sid
        return lambda message: delivery.deliver(sid, call, message)

    # ------------------------------------------------------------ methods

    async def _ping(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                    channel: Channel | None) -> Any:
        return {}

    async def _within_limits(self, session: SessionInfo, params: dict[str, Any], client: Client | None) -> None:
        """RateLimited when a tools/call is over per_tool (its principal's bucket for this tool) or per_backend
        (everyone's bucket for its backend). After the checks that make an unknown or forbidden tool an error
        (a refusal must not tell that a hidden tool exists); the principal's own bucket first, so a call it
        refuses takes nothing from the bucket all clients share."""
        name = text_param(params, "name", "tools/call")
        backend, _ = self._named(session, PolicyKind.TOOLS, name)
        limits = self._gateway.limits
        if limits.per_tool:
            who = principal_key(session.caller, client.peer() if client is not None else "")
            refused = await limits.admit(Limit.PER_TOOL, f"{who} {name}")
            if refused is not None:
                raise RateLimited(refused)
        if limits.per_backend:
            refused = await limits.admit(Limit.PER_BACKEND, backend)
            if refused is not None:
                raise RateLimited(refused)

    def _named(self, session: SessionInfo, kind: PolicyKind, name: str) -> tuple[str, str]:
        """(backend, the backend's own name) of an exposed tool or prompt name; -32602 when unknown, and the
        same when the caller may not use it."""
        route = (self.view.tool if kind is PolicyKind.TOOLS else self.view.prompt)(name)
        if route is None:
            raise _unknown_name(kind, name)
        self._in_profile(session, route[0], kind, name, _unknown_name)
        self._permit(session, kind, name, _unknown_name)
        return route

    async def _tools_call(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                          channel: Channel | None) -> Any:
        name = text_param(params, "name", "tools/call")
        if name in (SEARCH_TOOLS, CALL_TOOL) and (lazy := self._lazy(session)) is not None:
            permissions, profile = lazy
            if name == SEARCH_TOOLS:
                return self._search_tools(session, params, permissions, profile)
            # call_tool is a rename: from here on the named tool is called exactly as if called directly
            params = unwrap_call(params)
            name = params["name"]
        backend, original = self._named(session, PolicyKind.TOOLS, name)
        fixed = self.view.fixed(PolicyKind.TOOLS, name)
        if fixed is not None:
            params = {**params, "arguments": _with_fixed(params.get("arguments"), fixed, f"tool '{name}'")}
        router = self._gateway.routers.get(backend)
        key = None
        if router is not None and router.hash_argument is not None:
            value = (params.get("arguments") or {}).get(router.hash_argument)
            key = None if value is None else str(value)
        result, replica = await self._forward_to(session, request_id, backend, "tools/call",
                                                 {**params, "name": original}, channel,
                                                 idempotent=self._idempotent_tool(backend, name, original), key=key)
        if isinstance(result, dict) and isinstance(result.get("task"), dict):  # a task was created
            task = tasks.expose_task(backend, replica, result["task"], session.sid, self._tasks.tagger())
            self._gateway.task_created(backend, f"{replica}:{result['task'].get('taskId')}", session.sid)
            result = {**result, "task": task}
        return result

    def _search_tools(self, session: SessionInfo, params: dict[str, Any], permissions: Permissions,
                      profile: str | None) -> dict[str, Any]:
        """Lazy mode's search: only tools the endpoint's profile shows and the caller may use are ever found."""
        view = self.view
        lazy = view.presentation_for(profile).lazy
        search = SearchRequest(params.get("arguments"), lazy.default_limit)
        found = view.search(search.query, search.limit, None if permissions.unrestricted else permissions, profile)
        if lazy.expose_found and found:
            self._gateway.tools_found(session.sid, [tool["name"] for tool in found])
        return search_result(found)

    def _idempotent_tool(self, backend: str, exposed: str, original: str) -> bool:
        """Safe to retry elsewhere: configured so, or annotated idempotent or read-only by the backend."""
        config = self._gateway.pool.known(backend)
        if config is not None and original in config.idempotent_tools:
            return True
        annotations = (self.view.tools.get(exposed) or {}).get("annotations") or {}
        return bool(annotations.get("idempotentHint") or annotations.get("readOnlyHint"))

    def _resource_route(self, session: SessionInfo, uri: str) -> tuple[str, str]:
        """(backend, the backend's own uri) of an exposed uri; -32002 when no backend serves it, and the same
        when the caller may not use it."""
        route = self.view.resource(uri)
        if route is None:
            raise _resource_not_found(PolicyKind.RESOURCES, uri)
        self._in_profile(session, route[0], PolicyKind.RESOURCES, uri, _resource_not_found)
        self._permit(session, PolicyKind.RESOURCES, uri, _resource_not_found)
        return route

    async def _resources_read(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                              channel: Channel | None) -> Any:
        uri = text_param(params, "uri", "resources/read")
        backend, original = self._resource_route(session, uri)
        result = await self._forward(session, request_id, backend, "resources/read", {**params, "uri": original},
                                     channel, idempotent=True)
        if original != uri and isinstance(result, dict):  # show the client the uri it asked for
            result = {**result, "contents": [{**c, "uri": uri} if isinstance(c, dict) and c.get("uri") == original
                                             else c for c in result.get("contents", [])]}
        return result

    async def _subscribe(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                         channel: Channel | None) -> Any:
        uri = text_param(params, "uri", "resources/subscribe")
        backend, original = self._resource_route(session, uri)
        subscribers = self._gateway.subscriptions.setdefault((backend, original), set())
        first = not subscribers
        subscribers.add(session.sid)
        if first:
            try:
                await self._forward(session, request_id, backend, "resources/subscribe", {**params, "uri": original},
                                    None)
            except JsonRpcError:
                subscribers.discard(session.sid)
                if not subscribers:
                    self._gateway.subscriptions.pop((backend, original), None)
                raise
        return {}

    async def _unsubscribe(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                           channel: Channel | None) -> Any:
        uri = text_param(params, "uri", "resources/unsubscribe")
        backend, original = self._resource_route(session, uri)
        if not self._gateway.unsubscribe_local(session.sid, backend, original):
            # Subscribed through another worker: that one holds the subscription.
            self._gateway.relay(Kind.UNSUBSCRIBE, Unsubscribe(self._gateway.everyone, session.sid, backend, original))
        return {}

    async def _prompts_get(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                           channel: Channel | None) -> Any:
        name = text_param(params, "name", "prompts/get")
        backend, original = self._named(session, PolicyKind.PROMPTS, name)
        fixed = self.view.fixed(PolicyKind.PROMPTS, name)
        if fixed is not None:
            params = {**params, "arguments": _with_fixed(params.get("arguments"), fixed, f"prompt '{name}'")}
        return await self._forward(session, request_id, backend, "prompts/get", {**params, "name": original},
                                   channel, idempotent=True)

    async def _complete(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                        channel: Channel | None) -> Any:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise JsonRpcError(Code.INVALID_PARAMS, "completion/complete needs a 'ref' object")
        if ref.get("type") == "ref/prompt":
            name = text_param(ref, "name", "completion/complete ref")
            backend, original = self._named(session, PolicyKind.PROMPTS, name)
            new_ref = {**ref, "name": original}
            params = self._fixed_completion(params, self.view.fixed(PolicyKind.PROMPTS, name), name)
        elif ref.get("type") == "ref/resource":
            uri = text_param(ref, "uri", "completion/complete ref")
            route = self.view.template(uri) or self.view.resource(uri)
            if route is None:
                raise _unknown_reference(PolicyKind.RESOURCES, uri)
            self._in_profile(session, route[0], PolicyKind.RESOURCES, uri, _unknown_reference)
            self._permit(session, PolicyKind.RESOURCES, uri, _unknown_reference)
            backend, original = route
            new_ref = {**ref, "uri": original}
        else:
            raise JsonRpcError(Code.INVALID_PARAMS, "completion/complete ref.type must be ref/prompt or ref/resource")
        return await self._forward(session, request_id, backend, "completion/complete", {**params, "ref": new_ref},
                                   channel, idempotent=True)

    @staticmethod
    def _fixed_completion(params: dict[str, Any], fixed: dict[str, Any] | None, name: str) -> dict[str, Any]:
        """A completion for a prompt with fixed arguments: never of a fixed one (the client does not see it),
        and the prompt's other arguments completed knowing the fixed values."""
        if fixed is None:
            return params
        argument = params.get("argument")
        if isinstance(argument, dict) and argument.get("name") in fixed:
            raise JsonRpcError(Code.INVALID_PARAMS, f"prompt '{name}': argument '{argument['name']}' is fixed by "
                               "the gateway's configuration; there is nothing to complete")
        context = params.get("context") if isinstance(params.get("context"), dict) else {}
        known = context.get("arguments") if isinstance(context.get("arguments"), dict) else {}
        return {**params, "context": {**context, "arguments": {**known, **fixed}}}

    async def _set_level(self, session: SessionInfo, request_id: Any, params: dict[str, Any],
                         channel: Channel | None) -> Any:
        level = checked_level(text_param(params, "level", "logging/setLevel"))
        self._gateway.session_log_level(session.sid, level)
        view = self.view
        # A backend's level holds for every client sharing it: only those the caller can use something of
        # (through its endpoint's profile and its roles) are its to change.
        permissions = self.permissions(session)
        reachable = view.reachable_backends(self._profile(session, permissions), permissions)
        targets = [name for name, status in view.backends.items() if "logging" in (status.get("capabilities") or {})
                   and name in reachable]
        results = await asyncio.gather(*(self._forward(session, request_id, name, "logging/setLevel",
                                                       {"level": level}, None) for name in targets),
                                       return_exceptions=True)
        for name, outcome in zip(targets, results, strict=True):
            if isinstance(outcome, BaseException):
                log.info("logging/setLevel on backend '%s' failed: %s", name, outcome)
        return {}
