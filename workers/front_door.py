"""The Streamable HTTP endpoint (/mcp): validation, sessions, and the JSON or SSE answer.

Every refusal is precise: the HTTP status the transport spec names, a JSON-RPC error body whose message
says what to fix, one log line, and nothing else disturbed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from only1mcp.audit.outcome import Outcome
from only1mcp.auth.authenticate import KeyUnknown
from only1mcp.auth.principal import Principal
from only1mcp.bus import Kind
from only1mcp.bus.messages import SessionRevoke
from only1mcp.protocol import jsonrpc, modern
from only1mcp.protocol.codec import JSONDecodeError, TooDeep, dumps, loads_message
from only1mcp.protocol.jsonrpc import Code, JsonRpcError, answer_id
from only1mcp.protocol.versions import BATCH_VERSIONS
from only1mcp.ratelimit.limits import Limit, principal_key
from only1mcp.sessions import SessionInfo

from .calls import ReplyChannel
from .context import WorkerContext
from .dispatch import Dispatcher, error_bytes, result_bytes
from .exchange import AiohttpExchange, Answer, Exchange, web_response
from .gateway import Gateway
from .guard import JSON, SESSION_HEADER, VERSION_HEADER, Guard, refusal, too_deep
from .rate_limits import too_many
from .stateless import StatelessDoor

__all__ = ["FrontDoor", "Unreadable"]

log = logging.getLogger("only1mcp.worker")

_REVOKE_WAIT = 2.0
_ACCEPTED = Answer(202)


def _elsewhere(session: SessionInfo, request_id: Any) -> Answer:
    """A session used at another endpoint than the one it was opened at: unknown here (404, as the transport
    spec has a client re-initialize), since each endpoint serves another catalog."""
    opened = f"/mcp/{session.catalog_profile}" if session.catalog_profile is not None else "/mcp"
    return refusal(404, Code.INVALID_REQUEST, f"this session was opened at {opened}, not at this endpoint; send "
                   f"it to {opened}, or initialize a new session here", request_id)


class Unreadable:
    """A body that is not a message the gateway reads (not JSON: -32700; nested too deep: -32600). Its refusal
    is made, and logged, only when it is the answer: a refused credential is answered instead."""

    __slots__ = ("_error", "request_id")

    def __init__(self, error: TooDeep | JSONDecodeError) -> None:
        self._error = error
        self.request_id = answer_id(error.value) if isinstance(error, TooDeep) else None

    def refusal(self) -> Answer:
        if isinstance(self._error, TooDeep):
            return too_deep(self._error)
        return refusal(400, Code.PARSE_ERROR, f"request body is not valid JSON: {self._error}")


class FrontDoor:
    """POST /mcp is split so both HTTP servers share it: ``refuse_early`` (headers only), ``parse`` (the
    body: a message or Unreadable), ``unreadable`` and ``answer`` (a legacy-era message) give an Answer;
    ``post`` is the aiohttp entry."""

    __slots__ = ("_context", "_dispatcher", "_gateway", "_guard", "_stateless", "refuse_early")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher, context: WorkerContext,
                 stateless: StatelessDoor, guard: Guard) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._context = context
        self._stateless = stateless
        self._guard = guard
        # What the headers alone refuse, checked by the guard itself (no extra step on every POST)
        self.refuse_early = guard.refuse_post

    @property
    def context(self) -> WorkerContext:
        return self._context

    # ------------------------------------------------------------ what the headers refuse

    def body_limit(self) -> int:
        return self._guard.body_limit()

    def parse(self, body: bytes) -> Any:
        """The JSON message of a body; Unreadable when it is not JSON or nested too deep."""
        try:
            return loads_message(body)
        except (TooDeep, JSONDecodeError) as exc:
            return Unreadable(exc)

    def unreadable(self, exchange: Exchange, body: Unreadable) -> Answer | Coroutine[Any, Any, Answer]:
        """The answer to a body that is not a message: with authentication on, a refused credential is
        answered first (401, as for any request), and the body's refusal only to a valid one."""
        if not self._guard.authenticating:
            return body.refusal()
        return self._unreadable_of_caller(exchange, body)

    async def _unreadable_of_caller(self, exchange: Exchange, body: Unreadable) -> Answer:
        caller = await self._guard.authenticate(exchange, body.request_id)
        return caller if isinstance(caller, Answer) else body.refusal()

    @staticmethod
    def is_modern(exchange: Exchange, message: Any) -> bool:
        """Whether the message belongs to the 2026-07-28 stateless era (served by the stateless door)."""
        return modern.is_modern(message, exchange.header(VERSION_HEADER))

    async def post(self, request: web.Request) -> web.StreamResponse:
        exchange = AiohttpExchange(request)
        limit = self.body_limit()
        refused = self.refuse_early(exchange, request.content_length, limit)
        if refused is not None:
            return exchange.respond(refused)
        body = await self._guard.body(request)
        if not isinstance(body, bytes):
            return body
        message = self.parse(body)
        if isinstance(message, Unreadable):
            answer = self.unreadable(exchange, message)
            return exchange.respond(answer if isinstance(answer, Answer) else await answer)
        profile = request.match_info.get("profile")
        if self.is_modern(exchange, message):
            refused = self._guard.profile(profile, None, answer_id(message)) if profile is not None else None
            if refused is not None:
                return exchange.respond(refused)
            return await self._stateless.post(request, message)  # checks its own version (-32022)
        return exchange.respond(await self.answer(exchange, message, profile))

    async def answer(self, exchange: Exchange, message: Any, profile: str | None = None) -> Answer:
        """The answer to a parsed legacy-era POST body sent to the endpoint of ``profile`` (None: /mcp)."""
        # (the hot path: nothing more while authentication is off)
        caller = await self._identified(exchange, message) if self._guard.authenticating else None
        if isinstance(caller, Answer):
            return caller
        refused = self._guard.version(exchange.header(VERSION_HEADER), message) if profile is None else \
            self._guard.profile(profile, None, answer_id(message)) or self._guard.version(
                exchange.header(VERSION_HEADER), message)
        if refused is not None:
            return refused
        if isinstance(message, list):
            return await self._batch(exchange, message, caller, profile)
        problem = jsonrpc.shape_error(message)
        if problem is not None:
            return refusal(400, Code.INVALID_REQUEST, problem, answer_id(message))
        if message.get("method") == "initialize":
            return await self._initialize(message, caller, exchange, profile)
        session = self._session_here(exchange, caller, profile, message.get("id"))
        if isinstance(session, Answer):
            return session
        if "method" not in message:
            self._gateway.client_response(message)
            return _ACCEPTED
        if "id" not in message:
            self._dispatcher.notification(session, message)
            return _ACCEPTED
        channel = ReplyChannel(exchange, {})
        return await channel.finish(await self._dispatcher.request(session, message, channel, exchange))

    def _session_here(self, exchange: Exchange, caller: Principal | None, profile: str | None,
                      request_id: Any) -> SessionInfo | Answer:
        """The request's session, opened at this endpoint (the profile's, or /mcp), or the refusal."""
        session = self._guard.session(exchange.header(SESSION_HEADER), request_id=request_id, caller=caller)
        if isinstance(session, SessionInfo) and session.catalog_profile != profile:
            return _elsewhere(session, request_id)
        return session

    async def _identified(self, exchange: Exchange, message: Any) -> Principal | Answer | None:
        caller = self._guard.identify(exchange, answer_id(message), message)
        if isinstance(caller, KeyUnknown):
            return await self._guard.after_refresh(exchange, caller, answer_id(message), message)
        return caller

    async def _initialize(self, message: dict[str, Any], caller: Principal | None, exchange: Exchange,
                          profile: str | None) -> Answer:
        if "id" not in message:
            return refusal(400, Code.INVALID_REQUEST, "initialize must be a request (with an id)")
        # A request like any other for per_principal (the requests of a session are counted by the dispatcher)
        if self._gateway.limits.per_principal:
            refused = await self._gateway.limits.admit(Limit.PER_PRINCIPAL, principal_key(caller, exchange.peer()))
            if refused is not None:
                self._dispatcher.audit(Outcome.RATE_LIMITED, None, message, exchange, time.perf_counter(),
                                       Code.RATE_LIMITED, caller=caller)
                return too_many(refused, message["id"])
        sealer = self._gateway.sealer
        if sealer is None:
            return refusal(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
        if caller is not None:
            pinned = self._guard.profile(profile, caller, message["id"])  # roles that pin other profiles: 403
            if pinned is not None:
                return pinned
        started = time.perf_counter()
        try:
            result, version, capabilities = self._dispatcher.initialize(message.get("params"))
        except JsonRpcError as exc:
            self._dispatcher.audit(Outcome.ERROR, None, message, exchange, started, exc.code, caller=caller)
            return refusal(400, exc.code, exc.message, message["id"])
        params = message.get("params") or {}
        client = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
        token, session = sealer.new(version, capabilities, {k: client.get(k) for k in ("name", "version")
                                                            if k in client}, caller.key if caller is not None else None,
                                    profile)
        self._dispatcher.audit(Outcome.OK, session, message, exchange, started, caller=caller)
        return Answer(200, result_bytes(message["id"], result), {**JSON, SESSION_HEADER: token})

    async def _batch(self, exchange: Exchange, messages: list[Any], caller: Principal | None,
                     profile: str | None) -> Answer:
        if not messages:
            return refusal(400, Code.INVALID_REQUEST, "an empty batch is not a valid JSON-RPC request")
        session = self._session_here(exchange, caller, profile, None)
        if isinstance(session, Answer):
            return session
        if session.version not in BATCH_VERSIONS:
            return refusal(400, Code.INVALID_REQUEST, f"JSON-RPC batches are not allowed in protocol version "
                                 f"{session.version} (only 2025-03-26); send one message per POST")
        replies: list[bytes] = []
        for message in messages:
            problem = jsonrpc.shape_error(message)
            if problem is None and message.get("method") == "initialize" and "id" in message:
                problem = "initialize cannot be batched"  # (as a notification it is ignored, like any other)
            if problem is not None:
                log.info("refused a message of a batch: %s", problem)
                replies.append(error_bytes(answer_id(message), Code.INVALID_REQUEST, problem))
            elif "method" not in message:
                self._gateway.client_response(message)
            elif "id" not in message:
                self._dispatcher.notification(session, message)
            else:
                replies.append(await self._dispatcher.request(session, message, None, exchange))
        if not replies:
            return _ACCEPTED
        return Answer(200, b"[" + b",".join(replies) + b"]", JSON)

    # ------------------------------------------------------------ GET and DELETE

    async def _session_of(self, request: web.Request) -> SessionInfo | Answer:
        """A GET's or DELETE's session (the route already checked Host and Origin)."""
        exchange = AiohttpExchange(request)
        caller = await self._guard.authenticate(exchange)
        if isinstance(caller, Answer):
            return caller
        refused = self._guard.version(request.headers.get(VERSION_HEADER))
        if refused is not None:
            return refused
        profile = request.match_info.get("profile")
        refused = self._guard.profile(profile, None) if profile is not None else None
        if refused is not None:
            return refused
        session = self._guard.session(request.headers.get(SESSION_HEADER), caller=caller)
        if isinstance(session, SessionInfo) and session.catalog_profile != profile:
            return _elsewhere(session, None)
        return session

    async def get(self, request: web.Request) -> web.StreamResponse:
        accept = request.headers.get("Accept", "")
        if "text/event-stream" not in accept and "*/*" not in accept:
            return web_response(refusal(406, Code.INVALID_REQUEST, "GET needs Accept: text/event-stream"))
        session = await self._session_of(request)
        if isinstance(session, Answer):
            return web_response(session)
        return await self._gateway.streams.serve(request, session.sid, request.headers.get("Last-Event-ID"), {})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        session = await self._session_of(request)
        if isinstance(session, Answer):
            return web_response(session)
        settings = self._gateway.settings
        ttl = settings.sessions.ttl if settings is not None else 86400.0
        self._gateway.reporter.send(Kind.SESSION_REVOKE, SessionRevoke(session.sid, session.issued + ttl))
        revocations = self._gateway.replica.revocations
        revocations.add_local(session.sid)  # at once here; other workers by the bus
        self._gateway.streams.end(session.sid)
        # Answer once the revocation came back through the supervisor: every worker got it at the same time.
        if not await self._context.wait_for(lambda: revocations.confirmed(session.sid), _REVOKE_WAIT):
            log.warning("revocation of a session was not confirmed by the supervisor within %.0fs", _REVOKE_WAIT)
        log.info("session of %s ended by the client at %s", session.client.get("name", "a client"),
                 time.strftime("%H:%M:%S"))
        return web.Response(status=200, body=dumps({}), content_type="application/json")
