"""The 2026-07-28 (stateless) era on /mcp: one self-contained request per POST, served by any worker.

Backends still speak the handshake era, so the gateway translates. A backend's request to the client
(sampling, elicitation, roots) cannot reach a 2026-07-28 client, which has no stream to receive it on;
the client's call is answered instead with an ``input_required`` result carrying the request and a sealed
``requestState``, while the backend call stays open in the worker that made it. The client answers by
retrying its request with ``inputResponses``; the retry may land on any worker, so the state names the
worker that holds the call and the retry is relayed there over the bus, its events and result relayed
back. That worker hands the answers to the waiting backend request and goes on with the same call.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from typing import Any

from aiohttp import web

from only1mcp.audit.outcome import Outcome as AuditOutcome
from only1mcp.auth.principal import Principal
from only1mcp.background import Background
from only1mcp.bus import Envelope, Kind, MessageRouter, Target
from only1mcp.bus.messages import ModernEvent, ModernRetry, ModernRetryGone
from only1mcp.catalog.view import LIST_KEYS
from only1mcp.protocol import jsonrpc, modern
from only1mcp.protocol.codec import dumps, loads
from only1mcp.protocol.jsonrpc import Code, JsonRpcError, answer_id
from only1mcp.protocol.versions import ALL_VERSIONS
from only1mcp.ratelimit.limits import Limit, principal_key
from only1mcp.sessions import NOT_ISSUED, RELAYED, InvalidSession, SessionInfo

from .audited import outcome_of
from .calls import ReplyChannel
from .dispatch import SERVER_INFO, Dispatcher
from .exchange import AiohttpExchange, Answer, web_response
from .gateway import Gateway
from .guard import Guard
from .listen import Listeners
from .rate_limits import RateLimited, too_many

__all__ = ["StatelessDoor"]

log = logging.getLogger("only1mcp.worker")

_BUFFERED = 256  # related notifications kept for the next retry while a call waits for input
_RELAY_MARGIN = 5.0  # seconds a relayed retry may take beyond the request deadline before we give up
_WATCH = 0.5  # seconds between checks that a waiting client is still connected
_ANYONE = object()  # _open_state: a retry whose principal was checked already
_CANCELLED = -32800
Outcome = tuple[dict[str, Any], int]  # (JSON-RPC message, HTTP status)


class _Call:
    """A backend call made for a 2026-07-28 request, alive across the client's input-required retries.

    It is the call's Channel: notifications go to the exchange attached now (the POST being answered),
    requests to the client are collected as input requests.
    """

    __slots__ = ("asked", "buffer", "expiry", "key", "log_level", "method", "name", "origin_id", "progress_token",
                 "requests", "session", "sink", "task", "wake")

    broken = False  # the call's own output never needs the session mailbox

    def __init__(self, key: str, origin_id: Any, method: str, name: Any, session: SessionInfo,
                 log_level: str | None, progress_token: Any) -> None:
        self.key = key
        self.origin_id = origin_id  # the id of the request that started the call (its in-flight key)
        self.method = method
        self.name = name
        self.session = session
        self.log_level = log_level
        self.progress_token = progress_token
        self.requests: dict[str, dict[str, Any]] = {}  # to ask the client in the next answer
        self.asked: dict[str, dict[str, Any]] = {}  # asked, waiting for the client's retry
        self.sink: ReplyChannel | _RelaySink | None = None
        self.buffer: list[dict[str, Any]] = []
        self.wake = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None
        self.expiry: asyncio.TimerHandle | None = None

    def push(self, message: dict[str, Any]) -> None:
        if "id" in message and "method" in message:  # the backend asks the client something
            self.requests[str(message["id"])] = {"method": message["method"], "params": message.get("params") or {}}
            self.wake.set()
            return
        method = message.get("method")
        params = message.get("params") or {}
        if method == "notifications/message" and not modern.log_allowed(self.log_level, params.get("level")):
            return
        if method == "notifications/progress" and self.progress_token is not None:
            # A retry is a new request with its own token: progress belongs to whichever request is open.
            message = {**message, "params": {**params, "progressToken": self.progress_token}}
        if self.sink is not None:
            self.sink.push(message)
        elif len(self.buffer) < _BUFFERED:
            self.buffer.append(message)

    def attach(self, sink: ReplyChannel | _RelaySink, progress_token: Any) -> None:
        if self.expiry is not None:
            self.expiry.cancel()
            self.expiry = None
        self.sink = sink
        if progress_token is not None:
            self.progress_token = progress_token
        for message in self.buffer:
            sink.push(message)
        self.buffer.clear()


class _RelaySink:
    """The events of a retry relayed to this worker, sent back to the worker holding the client's POST."""

    __slots__ = ("_gateway", "_reply", "_token", "connected")

    def __init__(self, gateway: Gateway, reply: Target, token: str) -> None:
        self._gateway = gateway
        self._reply = reply
        self._token = token
        self.connected = True  # until the worker holding the POST says its client went away

    def alive(self) -> bool:
        return self.connected

    def push(self, message: dict[str, Any]) -> None:
        self._gateway.relay(Kind.MODERN_EVENT, ModernEvent(self._reply, self._token, message, None, 0))

    def finish(self, outcome: Outcome) -> None:
        body, status = outcome
        self._gateway.relay(Kind.MODERN_EVENT, ModernEvent(self._reply, self._token, None, body, status))


class StatelessDoor:
    """Serves 2026-07-28 requests: discover, lists, calls with the input-required flow, listen."""

    __slots__ = ("_calls", "_counter", "_dispatcher", "_gateway", "_guard", "_relayed", "_remote", "_tasks",
                 "listeners")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher, guard: Guard) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._guard = guard
        self.listeners = Listeners(gateway, dispatcher)
        self._calls: dict[str, _Call] = {}
        self._remote: dict[str, tuple[ReplyChannel, asyncio.Future[Outcome]]] = {}  # our POSTs, served elsewhere
        self._relayed: dict[str, _RelaySink] = {}  # other workers' POSTs, served here
        self._tasks = Background("stateless")
        self._counter = itertools.count(1)

    def register(self, inbox: MessageRouter) -> None:
        inbox.register(Kind.MODERN_RETRY, self._relayed_retry)
        inbox.register(Kind.MODERN_RETRY_GONE, self._relayed_retry_gone)
        inbox.register(Kind.MODERN_EVENT, self._relayed_event)

    # ------------------------------------------------------------ the POST

    async def post(self, request: web.Request, message: Any) -> web.StreamResponse:
        """Every request admitted here gets its audit line before its answer is sent (sessionless: the line
        names no session)."""
        caller = await self._guard.authenticate(AiohttpExchange(request), answer_id(message), message)
        if isinstance(caller, Answer):
            return web_response(caller)
        admitted = self._admit(request, message)
        if not isinstance(admitted, tuple):
            return admitted
        envelope, params = admitted
        request_id, method = message["id"], message["method"]
        session = self._session(envelope, caller, request.match_info.get("profile"))
        started = time.perf_counter()
        if self._gateway.limits.per_principal:
            limited = await self._over_limit(request, message, session, started)
            if limited is not None:
                return limited
        try:
            served = await self._serve_here(request, message, params, session, started)
            if method == "tools/call":
                self._param_headers(request, params, session)
        except JsonRpcError as exc:
            self._audit(request, message, session, started, jsonrpc.error_message(request_id, exc.code, exc.message))
            return _refuse(request_id, exc)
        if isinstance(served, dict):
            self._audit(request, message, session, started, served)
            return _json(served, 200)
        if served is not None:
            return served  # a subscriptions/listen stream, audited when it was acknowledged
        exchange = AiohttpExchange(request)
        channel = ReplyChannel(exchange, {})
        if params.get("requestState") is not None:
            outcome = await self._resume(message, params, session, channel)
        else:
            outcome = await self._start(message, params, envelope, session, channel, exchange)
        body, status = outcome
        self._audit(request, message, session, started, body)
        return exchange.respond(await channel.finish(dumps(body), status))

    async def _over_limit(self, request: web.Request, message: dict[str, Any], session: SessionInfo,
                          started: float) -> web.Response | None:
        """429 (audited) when the request's principal is over rate_limits.per_principal; None when admitted."""
        who = principal_key(session.caller, request.remote or "")
        refused = await self._gateway.limits.admit(Limit.PER_PRINCIPAL, who)
        if refused is None:
            return None
        self._audit(request, message, session, started, jsonrpc.error_message(
            message["id"], Code.RATE_LIMITED, refused.message))
        return web_response(too_many(refused, message["id"]))

    def _audit(self, request: web.Request, message: dict[str, Any], session: SessionInfo, started: float,
               answer: dict[str, Any]) -> None:
        """The request's audit line and its metrics, each while it is on."""
        gateway = self._gateway
        audited, measured = gateway.audit.enabled, gateway.request_metrics.on
        if not (audited or measured):
            return
        error = answer.get("error")
        code = error.get("code") if isinstance(error, dict) else None
        if isinstance(error, dict):
            outcome = AuditOutcome.RATE_LIMITED if code == Code.RATE_LIMITED else AuditOutcome.ERROR
        else:
            outcome = outcome_of(answer.get("result"))
        if audited:
            self._dispatcher.audit(outcome, None, message, AiohttpExchange(request), started, code,
                                   caller=session.caller)
        if measured:
            self._dispatcher.measure(message["method"], message.get("params"), outcome, started)

    def _admit(self, request: web.Request, message: Any) -> web.Response | tuple[modern.Envelope, dict[str, Any]]:
        """The request's envelope and params, or the answer that ends it here: a refusal, or 202 for a
        notification."""
        refused = _shape_refusal(message)
        if refused is not None:
            return refused
        if "id" not in message:
            # The stateless HTTP wire defines no client notifications (a client cancels by closing its
            # response stream); accept and drop them as the transport allows.
            log.debug("dropped a 2026-07-28 client notification %s", message["method"])
            return web.Response(status=202)
        request_id, method = message["id"], message["method"]
        try:
            envelope = modern.classify(message, request.headers)
        except JsonRpcError as exc:
            return _refuse(request_id, exc)
        params = message.get("params")
        if not isinstance(params, dict):
            return _refuse(request_id, JsonRpcError(Code.INVALID_PARAMS, f"{method}: params must be an object"))
        if method in modern.REMOVED:
            return _refuse(request_id, JsonRpcError(Code.METHOD_NOT_FOUND, f"{method} is not part of 2026-07-28: "
                                                    f"{modern.REMOVED[method]}"))
        if self._gateway.sealer is None:  # the shared state (and its secret) has not arrived yet
            log.info("refused 503: a 2026-07-28 request before the gateway finished starting")
            return _json(jsonrpc.error_message(request_id, Code.INTERNAL_ERROR, "the gateway is starting; retry "
                                               "in a moment"), 503)
        return envelope, params

    async def _serve_here(self, request: web.Request, message: dict[str, Any], params: dict[str, Any],
                          session: SessionInfo, started: float) -> dict[str, Any] | web.StreamResponse | None:
        """The answer to a request the gateway answers itself: the message (discover, the lists) or the
        stream already sent (listen); None for one that goes to a backend. JsonRpcError for a request it
        refuses."""
        request_id, method = message["id"], message["method"]
        if method == "server/discover":
            return jsonrpc.response(request_id, self._complete(self._discover(), method))
        if method == "subscriptions/listen":
            acknowledged = jsonrpc.response(request_id, {})
            return await self.listeners.serve(request, request_id, params, session, lambda: self._audit(
                request, message, session, started, acknowledged))
        if method in LIST_KEYS:
            result = loads(self._dispatcher.page(session, method, modern.backend_params(params)))
            return jsonrpc.response(request_id, self._complete(result, method))
        return None

    def _param_headers(self, request: web.Request, params: dict[str, Any], session: SessionInfo) -> None:
        """JsonRpcError for a call whose Mcp-Param-* headers contradict its arguments (per the tool's schema)."""
        view = self._gateway.view
        name = params.get("name")
        tool = view.tools.get(name) if view is not None and isinstance(name, str) else None
        if not isinstance(tool, dict) or not self._dispatcher.permissions(session).allows_tool(str(name)):
            # An unknown tool gets its own, clearer error from the dispatcher; so does one the caller may
            # not use (the same error: checking its headers here would tell that it exists).
            return
        problem = modern.param_header_problem(tool.get("inputSchema"), params.get("arguments") or {},
                                              request.headers)
        if problem is not None:
            raise JsonRpcError(Code.HEADER_MISMATCH, f"{problem} (tool '{params.get('name')}')")

    def _session(self, envelope: modern.Envelope, caller: Principal | None, profile: str | None) -> SessionInfo:
        """What a session would have remembered, from this request's envelope and endpoint (``profile``, from
        /mcp/<profile>); a fresh id, since there is no session to name (it keys this request's calls and
        subscriptions in the worker)."""
        capabilities = {k: v for k, v in envelope.capabilities.items() if k in (*RELAYED, "tasks")
                        and isinstance(v, dict)}
        client = {k: envelope.client[k] for k in ("name", "version") if k in envelope.client}
        return SessionInfo(f"m.{os.urandom(8).hex()}", envelope.version, capabilities, client,
                           principal=caller.key if caller is not None else None, catalog_profile=profile,
                           caller=caller)

    def _discover(self) -> dict[str, Any]:
        view = self._gateway.view
        result: dict[str, Any] = {"supportedVersions": list(ALL_VERSIONS),
                                  "capabilities": view.capabilities if view is not None else {}}
        if view is not None and view.instructions:
            result["instructions"] = view.instructions
        return result

    @staticmethod
    def _complete(result: Any, method: str) -> dict[str, Any]:
        return modern.complete(result, method, SERVER_INFO)

    # ------------------------------------------------------------ calls and their input rounds

    async def _start(self, message: dict[str, Any], params: dict[str, Any], envelope: modern.Envelope,
                     session: SessionInfo, channel: ReplyChannel, client: AiohttpExchange) -> Outcome:
        method = message["method"]
        meta = params.get("_meta") or {}
        call = _Call(f"{next(self._counter)}", message["id"], method, _name_of(params), session,
                     envelope.log_level, meta.get("progressToken"))
        self._calls[call.key] = call
        call.task = asyncio.get_running_loop().create_task(
            self._dispatcher.answer(session, method, message["id"], modern.backend_params(params), call, client))
        call.task.add_done_callback(lambda _task: call.wake.set())
        return await self._run(call, message["id"], channel, call.progress_token)

    async def _run(self, call: _Call, request_id: Any, sink: ReplyChannel | _RelaySink,
                   progress_token: Any) -> Outcome:
        """Attach this exchange to the call; answer with its result, or with what it needs from the client."""
        call.attach(sink, progress_token)
        task = call.task
        assert task is not None
        while True:
            if task.done():
                self._drop(call)
                return self._final(call, request_id, task)
            if call.requests:
                call.asked.update(call.requests)
                state = self._seal(call)
                result = modern.input_required(call.requests, state)
                call.requests = {}
                call.sink = None
                call.expiry = asyncio.get_running_loop().call_later(self._gateway.request_timeout, self._expire,
                                                                    call)
                return jsonrpc.response(request_id, result), 200
            call.wake.clear()
            try:
                await asyncio.wait_for(call.wake.wait(), _WATCH)
            except TimeoutError:
                if not sink.alive():
                    self._abandon(call, "the client closed its response stream")
                    return jsonrpc.error_message(request_id, _CANCELLED, f"{call.method} was cancelled: the "
                                                 "client closed its response stream"), 200

    def _final(self, call: _Call, request_id: Any, task: asyncio.Task[Any]) -> Outcome:
        try:
            result = task.result()
        except JsonRpcError as exc:
            if isinstance(exc, RateLimited) and isinstance(call.sink, ReplyChannel):
                call.sink.rate_limited(exc.refusal.retry_after)  # 429 with Retry-After, like the other doors
            return jsonrpc.error_message(request_id, exc.code, exc.message, exc.data), modern.http_status(exc.code)
        except asyncio.CancelledError:
            return jsonrpc.error_message(request_id, Code.REQUEST_TIMEOUT, f"{call.method} was abandoned: the "
                                         "client did not answer its input requests in time"), 200
        except Exception as exc:  # a defect of ours: one error for this call, the worker goes on
            log.exception("%s failed inside the gateway", call.method)
            return jsonrpc.error_message(request_id, Code.INTERNAL_ERROR, f"internal error: {exc}"), 200
        return jsonrpc.response(request_id, self._complete(result, call.method)), 200

    def _seal(self, call: _Call) -> str:
        sealer = self._gateway.sealer
        assert sealer is not None  # post() refuses requests until the shared state (and its secret) arrived
        return sealer.seal_value(["rs", self._gateway.spec.slot, self._gateway.pid, call.key, call.method,
                                  call.name, call.session.principal])

    def _expire(self, call: _Call) -> None:
        """The client never came back with its input: give up the backend call."""
        if call.key in self._calls:
            self._abandon(call, f"the client did not answer its input requests within "
                                f"{self._gateway.request_timeout:g}s (proxy.request_timeout)")

    def _abandon(self, call: _Call, why: str) -> None:
        """Stop a call nobody will read: the backend gets notifications/cancelled."""
        self._drop(call)
        log.info("%s cancelled: %s", call.method, why)
        if call.task is not None and not call.task.done() and \
                not self._gateway.cancel_local(call.session.sid, call.origin_id):
            call.task.cancel()  # not at a backend yet (still choosing or starting one)

    def _drop(self, call: _Call) -> None:
        if call.expiry is not None:
            call.expiry.cancel()
        self._calls.pop(call.key, None)

    async def _resume(self, message: dict[str, Any], params: dict[str, Any], session: SessionInfo,
                      channel: ReplyChannel) -> Outcome:
        request_id = message["id"]
        try:
            slot, pid, key = self._open_state(message, params, session.principal)
        except JsonRpcError as exc:
            return jsonrpc.error_message(request_id, exc.code, exc.message), modern.http_status(exc.code)
        if pid == self._gateway.pid:
            return await self._resume_local(key, message, params, channel)
        if not _alive(pid):
            return _lost(request_id, "the worker that held it has exited")
        token = f"{self._gateway.pid}.{next(self._counter)}"
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._remote[token] = (channel, future)
        holder = Target(slot, pid)
        self._gateway.relay(Kind.MODERN_RETRY, ModernRetry(holder, Target(self._gateway.spec.slot, self._gateway.pid),
                                                           token, message))
        deadline = asyncio.get_running_loop().time() + self._gateway.request_timeout + _RELAY_MARGIN
        try:
            while not future.done():
                await asyncio.wait([future], timeout=_WATCH)
                if future.done():
                    break
                if not channel.alive():
                    self._gateway.relay(Kind.MODERN_RETRY_GONE, ModernRetryGone(holder, token))
                    return jsonrpc.error_message(request_id, _CANCELLED, "cancelled: the client closed its "
                                                 "response stream"), 200
                if asyncio.get_running_loop().time() > deadline:
                    return _lost(request_id, f"the worker that held it (pid {pid}) did not answer the relayed "
                                             "retry")
        finally:
            self._remote.pop(token, None)
        return future.result()

    def _open_state(self, message: dict[str, Any], params: dict[str, Any], principal: object = _ANYONE
                    ) -> tuple[int, int, str]:
        """Where the call a retry continues is held: (slot, pid, call key). A state sealed for another
        principal's call than ``principal`` is refused exactly as one this gateway never issued, so it tells
        nothing (a relayed retry was checked by the worker that took it: ``_ANYONE``)."""
        sealer = self._gateway.sealer
        state = params.get("requestState")
        if sealer is None or not isinstance(state, str):
            raise JsonRpcError(Code.INVALID_PARAMS, "requestState must be the string from an input_required result")
        try:
            value = sealer.open_value(state)
            if len(value) == 7 and principal is not _ANYONE and value[6] != principal:
                raise InvalidSession(NOT_ISSUED)
        except InvalidSession as exc:
            raise JsonRpcError(Code.INVALID_PARAMS, f"requestState was {exc}; call again without it") from None
        if len(value) != 7 or value[0] != "rs":
            raise JsonRpcError(Code.INVALID_PARAMS, "requestState is not a request state of this gateway")
        _, slot, pid, key, method, name, _ = value
        if method != message["method"] or name != _name_of(params):
            raise JsonRpcError(Code.INVALID_PARAMS, f"requestState belongs to {method} of {name!r}; a retry must "
                               "repeat the original request")
        responses = params.get("inputResponses")
        if responses is not None and not isinstance(responses, dict):
            raise JsonRpcError(Code.INVALID_PARAMS, "inputResponses must be an object keyed like inputRequests")
        return int(slot), int(pid), str(key)

    async def _resume_local(self, key: str, message: dict[str, Any], params: dict[str, Any],
                            sink: ReplyChannel | _RelaySink) -> Outcome:
        call = self._calls.get(key)
        if call is None:
            return _lost(message["id"], "it has already ended (answered, failed, or timed out waiting)")
        for input_key, answer in (params.get("inputResponses") or {}).items():
            if call.asked.pop(input_key, None) is None:
                log.debug("ignored an input response to %s, which the call did not ask", input_key)
                continue
            # The backend waits for this answer under the id the gateway gave its request.
            self._gateway.client_response({"jsonrpc": "2.0", "id": input_key, "result": answer})
        call.requests.update(call.asked)  # anything left unanswered is asked again
        call.asked.clear()
        meta = params.get("_meta") or {}
        return await self._run(call, message["id"], sink, meta.get("progressToken"))

    # ------------------------------------------------------------ relays between workers

    def _relayed_retry(self, envelope: Envelope) -> None:
        retry = envelope.payload
        assert isinstance(retry, ModernRetry)
        self._tasks.spawn(self._serve_relayed(retry), "relayed-retry")

    def _relayed_retry_gone(self, envelope: Envelope) -> None:
        assert isinstance(envelope.payload, ModernRetryGone)
        sink = self._relayed.get(envelope.payload.token)
        if sink is not None:
            sink.connected = False

    def _relayed_event(self, envelope: Envelope) -> None:
        event = envelope.payload
        assert isinstance(event, ModernEvent)
        waiting = self._remote.get(event.token)
        if waiting is None:
            log.debug("dropped an event for a relayed retry that is no longer waiting")
            return
        channel, future = waiting
        if event.final is not None:
            if not future.done():
                future.set_result((event.final, event.status))
        elif event.message is not None:
            channel.push(event.message)

    async def _serve_relayed(self, retry: ModernRetry) -> None:
        token, message = retry.token, retry.message
        sink = _RelaySink(self._gateway, retry.reply, token)
        self._relayed[token] = sink
        try:
            _, _, key = self._open_state(message, message.get("params") or {})
            outcome = await self._resume_local(key, message, message.get("params") or {}, sink)
        except JsonRpcError as exc:
            outcome = jsonrpc.error_message(message.get("id"), exc.code, exc.message), modern.http_status(exc.code)
        except Exception as exc:  # a defect of ours: the other worker's client still gets its answer
            log.exception("a relayed 2026-07-28 retry failed inside the gateway")
            outcome = jsonrpc.error_message(message.get("id"), Code.INTERNAL_ERROR, f"internal error: {exc}"), 200
        finally:
            self._relayed.pop(token, None)
        sink.finish(outcome)

    async def close(self) -> None:
        for call in list(self._calls.values()):
            self._drop(call)
        self.listeners.close_all()
        await self._tasks.close()


def _name_of(params: dict[str, Any]) -> Any:
    return params.get("name", params.get("uri"))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _lost(request_id: Any, why: str) -> Outcome:
    message = f"the call this requestState continues is gone: {why}; call again without requestState"
    log.info("%s", message)
    return jsonrpc.error_message(request_id, Code.INVALID_PARAMS, message), 400


def _json(message: dict[str, Any], status: int) -> web.Response:
    return web.Response(status=status, body=dumps(message), content_type="application/json")


def _shape_refusal(message: Any) -> web.Response | None:
    """The refusal of a body that is not one JSON-RPC request or notification (the stateless era has no
    batches, and a client answers input requests by retrying, not by posting responses)."""
    if isinstance(message, list):
        return _refuse(None, JsonRpcError(Code.INVALID_REQUEST, "2026-07-28 requests are single JSON-RPC "
                                                                "objects; batches are not allowed"))
    problem = jsonrpc.shape_error(message)
    if problem is not None:
        return _refuse(jsonrpc.answer_id(message), JsonRpcError(Code.INVALID_REQUEST, problem))
    if "method" not in message:
        return _refuse(message.get("id"), JsonRpcError(
            Code.INVALID_REQUEST, "a 2026-07-28 client does not post responses: answer input requests by "
            "retrying the request with inputResponses and requestState"))
    return None


def _refuse(request_id: Any, exc: JsonRpcError) -> web.Response:
    status = modern.http_status(exc.code)
    log.info("refused %d: %s", status, exc.message)
    return _json(jsonrpc.error_message(request_id, exc.code, exc.message, exc.data), status)
