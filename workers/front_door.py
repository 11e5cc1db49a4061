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
from only1mcp.protocol import jsonrpc, modern
from only1mcp.protocol.codec import JSONDecodeError, dumps, loads
from only1mcp.protocol.jsonrpc import Code
from only1mcp.protocol.versions import BATCH_VERSIONS, SUPPORTED
from only1mcp.sessions import InvalidSession, SessionInfo

from .calls import ReplyChannel
from .context import WorkerContext
from .dispatch import Dispatcher, error_bytes, result_bytes
from .gateway import Gateway
from .stateless import StatelessDoor

__all__ = ["FrontDoor"]

log = logging.getLogger("only1mcp.worker")

SESSION_HEADER = "Mcp-Session-Id"
_REVOKE_WAIT = 2.0
VERSION_HEADER = "MCP-Protocol-Version"


class FrontDoor:
    __slots__ = ("_context", "_dispatcher", "_gateway", "_stateless")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher, context: WorkerContext,
                 stateless: StatelessDoor) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._context = context
        self._stateless = stateless

    # ------------------------------------------------------------ refusals

    @staticmethod
    def _refuse(status: int, code: int, message: str, request_id: Any = None) -> web.Response:
        log.info("refused %d: %s", status, message)
        return web.Response(status=status, body=error_bytes(request_id, code, message),
                            content_type="application/json")

    def _guard(self, request: web.Request) -> web.Response | None:
        problem = self._gateway.policy.check(request.headers.get("Host"), request.headers.get("Origin"))
        if problem is not None:
            return self._refuse(403, Code.INVALID_REQUEST, problem)
        return self._version_guard(request)

    def _version_guard(self, request: web.Request) -> web.Response | None:
        version = request.headers.get(VERSION_HEADER)
        if version is not None and version not in SUPPORTED:
            return self._refuse(400, Code.INVALID_REQUEST, f"unsupported {VERSION_HEADER} '{version}'; this gateway "
                                f"speaks {', '.join(SUPPORTED)}")
        return None

    def _session(self, request: web.Request) -> SessionInfo | web.Response:
        token = request.headers.get(SESSION_HEADER)
        if not token:
            return self._refuse(400, Code.INVALID_REQUEST, f"missing {SESSION_HEADER} header; send the id returned by "
                                "initialize, or initialize first")
        sealer = self._gateway.sealer
        if sealer is None:
            return self._refuse(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
        try:
            session = sealer.open(token)
        except InvalidSession as exc:
            return self._refuse(404, Code.INVALID_REQUEST, f"{exc}; initialize a new session")
        if self._gateway.session_gone(session):
            return self._refuse(404, Code.INVALID_REQUEST, "session was terminated (DELETE); initialize a new one")
        return session

    # ------------------------------------------------------------ POST

    async def post(self, request: web.Request) -> web.StreamResponse:
        problem = self._gateway.policy.check(request.headers.get("Host"), request.headers.get("Origin"))
        if problem is not None:
            return self._refuse(403, Code.INVALID_REQUEST, problem)
        accept = request.headers.get("Accept", "")
        if not ("*/*" in accept or ("application/json" in accept and "text/event-stream" in accept)):
            return self._refuse(406, Code.INVALID_REQUEST, "Accept must list both application/json and "
                                "text/event-stream")
        if request.content_type != "application/json":
            return self._refuse(415, Code.INVALID_REQUEST, f"Content-Type must be application/json, got "
                                f"'{request.content_type or 'none'}'")
        settings = self._gateway.settings
        limit = settings.server.max_body_size if settings is not None else 4 * 1024 * 1024
        if request.content_length is not None and request.content_length > limit:
            return self._refuse(413, Code.INVALID_REQUEST, f"request body of {request.content_length} bytes is over "
                                f"the {limit}-byte limit (server.max_body_size)")
        body = await _read_limited(request, limit)
        if body is None:
            return self._refuse(413, Code.INVALID_REQUEST, f"request body is over the {limit}-byte limit "
                                "(server.max_body_size)")
        try:
            message = loads(body)
        except JSONDecodeError as exc:
            return self._refuse(400, Code.PARSE_ERROR, f"request body is not valid JSON: {exc}")
        if modern.is_modern(message, request.headers.get(VERSION_HEADER)):
            return await self._stateless.post(request, message)  # checks its own version (-32022)
        refused = self._version_guard(request)
        if refused is not None:
            return refused
        if isinstance(message, list):
            return await self._batch(request, message)
        problem = jsonrpc.shape_error(message)
        if problem is not None:
            return self._refuse(400, Code.INVALID_REQUEST, problem, message.get("id") if isinstance(message, dict)
                                else None)
        if message.get("method") == "initialize":
            return self._initialize(message)
        session = self._session(request)
        if isinstance(session, web.Response):
            return session
        if "method" not in message:
            self._gateway.client_response(message)
            return web.Response(status=202)
        if "id" not in message:
            self._dispatcher.notification(session, message)
            return web.Response(status=202)
        channel = ReplyChannel(request, {})
        return await channel.finish(await self._dispatcher.request(session, message, channel))

    def _initialize(self, message: dict[str, Any]) -> web.StreamResponse:
        if "id" not in message:
            return self._refuse(400, Code.INVALID_REQUEST, "initialize must be a request (with an id)")
        sealer = self._gateway.sealer
        if sealer is None:
            return self._refuse(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
        params = message.get("params") or {}
        result, version, capabilities = self._dispatcher.initialize(params)
        client = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
        token, _ = sealer.new(version, capabilities, {k: client.get(k) for k in ("name", "version") if k in client})
        return web.Response(body=result_bytes(message["id"], result), content_type="application/json",
                            headers={SESSION_HEADER: token})

    async def _batch(self, request: web.Request, messages: list[Any]) -> web.StreamResponse:
        if not messages:
            return self._refuse(400, Code.INVALID_REQUEST, "an empty batch is not a valid JSON-RPC request")
        session = self._session(request)
        if isinstance(session, web.Response):
            return session
        if session.version not in BATCH_VERSIONS:
            return self._refuse(400, Code.INVALID_REQUEST, f"JSON-RPC batches are not allowed in protocol version "
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
            return web.Response(status=202)
        return web.Response(body=b"[" + b",".join(replies) + b"]", content_type="application/json")

    # ------------------------------------------------------------ GET and DELETE

    async def get(self, request: web.Request) -> web.StreamResponse:
        refused = self._guard(request)
        if refused is not None:
            return refused
        if "text/event-stream" not in request.headers.get("Accept", "") and "*/*" not in request.headers.get(
                "Accept", ""):
            return self._refuse(406, Code.INVALID_REQUEST, "GET needs Accept: text/event-stream")
        session = self._session(request)
        if isinstance(session, web.Response):
            return session
        return await self._gateway.streams.serve(request, session.sid, request.headers.get("Last-Event-ID"), {})

    async def delete(self, request: web.Request) -> web.StreamResponse:
        refused = self._guard(request)
        if refused is not None:
            return refused
        session = self._session(request)
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


async def _read_limited(request: web.Request, limit: int) -> bytes | None:
    """The body, or None once it grows past ``limit`` (chunked bodies have no Content-Length to check)."""
    if request.content_length is not None:
        return await request.content.readexactly(request.content_length) if request.content_length else b""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
