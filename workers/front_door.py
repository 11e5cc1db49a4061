"""The Streamable HTTP endpoint (/mcp): validation, sessions, and the JSON or SSE answer.

Every refusal is precise: the HTTP status the transport spec names, a JSON-RPC error body whose message
says what to fix, one log line, and nothing else disturbed.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from aiohttp import web

from only1mcp.bus import Kind
from only1mcp.http.bodies import BodyIncomplete, BodyTimeout, BodyTooLarge, read_body, send_and_close
from only1mcp.protocol import jsonrpc, modern
from only1mcp.protocol.codec import JSONDecodeError, dumps, loads
from only1mcp.protocol.jsonrpc import Code
from only1mcp.protocol.versions import BATCH_VERSIONS, SUPPORTED
from only1mcp.sessions import InvalidSession, SessionInfo

from .calls import ReplyChannel
from .context import WorkerContext
from .dispatch import Dispatcher, error_bytes, result_bytes
from .exchange import AiohttpExchange, Answer, Exchange, media_type, web_response
from .gateway import Gateway
from .stateless import StatelessDoor

__all__ = ["FrontDoor"]

log = logging.getLogger("only1mcp.worker")

SESSION_HEADER = "Mcp-Session-Id"
_REVOKE_WAIT = 2.0
VERSION_HEADER = "MCP-Protocol-Version"
_JSON = {"Content-Type": "application/json"}
_ACCEPTED = Answer(202)


class FrontDoor:
    """POST /mcp is split so both HTTP servers share it: ``refuse_early`` (headers only), ``parse`` (the
    body) and ``answer`` (a legacy-era message) return an Answer; ``post`` is the aiohttp entry."""

    __slots__ = ("_context", "_dispatcher", "_gateway", "_stateless")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher, context: WorkerContext,
                 stateless: StatelessDoor) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._context = context
        self._stateless = stateless

    @property
    def context(self) -> WorkerContext:
        return self._context

    # ------------------------------------------------------------ refusals

    @staticmethod
    def _refusal(status: int, code: int, message: str, request_id: Any = None) -> Answer:
        log.info("refused %d: %s", status, message)
        return Answer(status, error_bytes(request_id, code, message), _JSON)

    @classmethod
    def _refuse(cls, status: int, code: int, message: str, request_id: Any = None) -> web.Response:
        return web_response(cls._refusal(status, code, message, request_id))

    def _guard(self, request: web.Request) -> web.Response | None:
        problem = self._gateway.policy.check(request.headers.get("Host"), request.headers.get("Origin"))
        if problem is not None:
            return self._refuse(403, Code.INVALID_REQUEST, problem)
        refused = self._version_refusal(request.headers.get(VERSION_HEADER))
        return None if refused is None else web_response(refused)

    def _version_refusal(self, version: str | None) -> Answer | None:
        if version is not None and version not in SUPPORTED:
            return self._refusal(400, Code.INVALID_REQUEST, f"unsupported {VERSION_HEADER} '{version}'; this "
                                 f"gateway speaks {', '.join(SUPPORTED)}")
        return None

    def _session(self, token: str | None) -> SessionInfo | Answer:
        if not token:
            return self._refusal(400, Code.INVALID_REQUEST, f"missing {SESSION_HEADER} header; send the id returned "
                                 "by initialize, or initialize first")
        sealer = self._gateway.sealer
        if sealer is None:
            return self._refusal(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
        try:
            session = sealer.open(token)
        except InvalidSession as exc:
            return self._refusal(404, Code.INVALID_REQUEST, f"{exc}; initialize a new session")
        if self._gateway.session_gone(session):
            return self._refusal(404, Code.INVALID_REQUEST, "session was terminated (DELETE); initialize a new one")
        return session

    def _web_session(self, request: web.Request) -> SessionInfo | web.Response:
        session = self._session(request.headers.get(SESSION_HEADER))
        return web_response(session) if isinstance(session, Answer) else session

    # ------------------------------------------------------------ POST

    def body_limit(self) -> int:
        settings = self._gateway.settings
        return settings.server.max_body_size if settings is not None else 4 * 1024 * 1024

    def body_timeout(self) -> float:
        settings = self._gateway.settings
        return settings.server.body_timeout if settings is not None else 60.0

    def refuse_early(self, exchange: Exchange, content_length: int | None, limit: int) -> Answer | None:
        """What the headers alone refuse: a foreign Origin or Host, a wrong Accept or Content-Type, a
        declared body over the limit."""
        problem = self._gateway.policy.check(exchange.header("Host"), exchange.header("Origin"))
        if problem is not None:
            return self._refusal(403, Code.INVALID_REQUEST, problem)
        accept = exchange.header("Accept") or ""
        if not ("*/*" in accept or ("application/json" in accept and "text/event-stream" in accept)):
            return self._refusal(406, Code.INVALID_REQUEST, "Accept must list both application/json and "
                                 "text/event-stream")
        content_type = media_type(exchange.header("Content-Type"))
        if content_type != "application/json":
            return self._refusal(415, Code.INVALID_REQUEST, f"Content-Type must be application/json, got "
                                 f"'{content_type or 'none'}'")
        if content_length is not None and content_length > limit:
            return self._refusal(413, Code.INVALID_REQUEST, f"request body of {content_length} bytes is over "
                                 f"the {limit}-byte limit (server.max_body_size)")
        return None

    def parse(self, body: bytes) -> Any:
        """The JSON message of a body; an Answer (400, -32700) when it is not JSON."""
        try:
            return loads(body)
        except JSONDecodeError as exc:
            return self._refusal(400, Code.PARSE_ERROR, f"request body is not valid JSON: {exc}")

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
        timeout = self.body_timeout()
        try:
            body = await read_body(request, limit, timeout)
        except BodyTooLarge:
            return self._refuse(413, Code.INVALID_REQUEST, f"request body is over the {limit}-byte limit "
                                "(server.max_body_size)")
        except BodyIncomplete:
            return self._refuse(400, Code.INVALID_REQUEST, "the request body ended before its Content-Length")
        except BodyTimeout:
            return await send_and_close(request, self._refuse(408, Code.INVALID_REQUEST, f"request body not "
                                        f"complete within {timeout:g}s (server.body_timeout)"))
        message = self.parse(body)
        if isinstance(message, Answer):
            return exchange.respond(message)
        if self.is_modern(exchange, message):
            return await self._stateless.post(request, message)  # checks its own version (-32022)
        return exchange.respond(await self.answer(exchange, message))

    async def answer(self, exchange: Exchange, message: Any) -> Answer:
        """The answer to a parsed legacy-era POST body."""
        refused = self._version_refusal(exchange.header(VERSION_HEADER))
        if refused is not None:
            return refused
        if isinstance(message, list):
            return await self._batch(exchange, message)
        problem = jsonrpc.shape_error(message)
        if problem is not None:
            return self._refusal(400, Code.INVALID_REQUEST, problem, message.get("id") if isinstance(message, dict)
                                 else None)
        if message.get("method") == "initialize":
            return self._initialize(message)
        session = self._session(exchange.header(SESSION_HEADER))
        if isinstance(session, Answer):
            return session
        if "method" not in message:
            self._gateway.client_response(message)
            return _ACCEPTED
        if "id" not in message:
            self._dispatcher.notification(session, message)
            return _ACCEPTED
        channel = ReplyChannel(exchange, {})
        return await channel.finish(await self._dispatcher.request(session, message, channel))

    def _initialize(self, message: dict[str, Any]) -> Answer:
        if "id" not in message:
            return self._refusal(400, Code.INVALID_REQUEST, "initialize must be a request (with an id)")
        sealer = self._gateway.sealer
        if sealer is None:
            return self._refusal(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
        params = message.get("params") or {}
        result, version, capabilities = self._dispatcher.initialize(params)
        client = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
        token, _ = sealer.new(version, capabilities, {k: client.get(k) for k in ("name", "version") if k in client})
        return Answer(200, result_bytes(message["id"], result), {**_JSON, SESSION_HEADER: token})

    async def _batch(self, exchange: Exchange, messages: list[Any]) -> Answer:
        if not messages:
            return self._refusal(400, Code.INVALID_REQUEST, "an empty batch is not a valid JSON-RPC request")
        session = self._session(exchange.header(SESSION_HEADER))
        if isinstance(session, Answer):
            return session
        if session.version not in BATCH_VERSIONS:
            return self._refusal(400, Code.INVALID_REQUEST, f"JSON-RPC batches are not allowed in protocol version "
                                 f"{session.version} (only 2025-03-26); send one message per POST")
        replies: list[bytes] = []
        for message in messages:
            problem = jsonrpc.shape_error(message)
            if problem is not None or message.get("method") == "initialize":
                replies.append(error_bytes(message.get("id") if isinstance(message, dict) else None,
                                           Code.INVALID_REQUEST, problem or "initialize cannot be batched"))
            elif "method" not in message:
                self._gateway.client_response(message)
            elif "id" not in message:
                self._dispatcher.notification(session, message)
            else:
                replies.append(await self._dispatcher.request(session, message, None))
        if not replies:
            return _ACCEPTED
        return Answer(200, b"[" + b",".join(replies) + b"]", _JSON)

    # ------------------------------------------------------------ GET and DELETE

    async def get(self, request: web.Request) -> web.StreamResponse:
        refused = self._guard(request)
        if refused is not None:
            return refused
        if "text/event-stream" not in request.headers.get("Accept", "") and "*/*" not in request.headers.get(
                "Accept", ""):
            return self._refuse(406, Code.INVALID_REQUEST, "GET needs Accept: text/event-stream")
        session = self._web_session(request)
        if isinstance(session, web.Response):
            return session
        return await self._gateway.streams.serve(request, session.sid, request.headers.get("Last-Event-ID"), {})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        refused = self._guard(request)
        if refused is not None:
            return refused
        session = self._web_session(request)
        if isinstance(session, web.Response):
            return session
        settings = self._gateway.settings
        ttl = settings.sessions.ttl if settings is not None else 86400.0
        self._gateway.reporter.report(Kind.SESSION_REVOKE, {"sid": session.sid, "expires": session.issued + ttl})
        self._gateway.revoked = self._gateway.revoked | {session.sid}  # at once here; other workers by the bus
        self._gateway.streams.end(session.sid)
        # Answer once the revocation came back through the supervisor: every worker got it at the same time.
        key = f"revoked/{session.sid}"
        if not await self._context.wait_for_state(lambda state: key in state.data, _REVOKE_WAIT):
            log.warning("revocation of a session was not confirmed by the supervisor within %.0fs", _REVOKE_WAIT)
        log.info("session of %s ended by the client at %s", session.client.get("name", "a client"),
                 time.strftime("%H:%M:%S"))
        return web.Response(status=200, body=dumps({}), content_type="application/json")

