"""The WebSocket endpoint (/ws, subprotocol `mcp`): one JSON-RPC message per text frame, both ways.

Same sessions, checks and limits as /mcp: the socket is the session, created by `initialize`. A frame
that is not JSON gets a -32700 error frame and the socket stays open; a binary frame closes it with
1003 (unsupported data). Each request runs on its own, so a long call does not hold up the rest.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from only1mcp.audit.outcome import Outcome
from only1mcp.auth.principal import Principal
from only1mcp.background import watched
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.codec import JSONDecodeError, TooDeep, dumps, loads_message
from only1mcp.protocol.jsonrpc import Code, JsonRpcError, answer_id
from only1mcp.protocol.versions import BATCH_VERSIONS
from only1mcp.ratelimit.limits import Limit, principal_key
from only1mcp.sessions import SessionInfo

from .calls import SinkChannel
from .dispatch import Dispatcher, error_bytes, result_bytes
from .exchange import AiohttpExchange, Answer, web_response
from .gateway import Gateway
from .guard import TOO_DEEP, Guard

__all__ = ["WebSocketDoor"]

log = logging.getLogger("only1mcp.worker")

_HEARTBEAT = 30.0  # seconds between WebSocket pings; a peer that stops answering is dropped
_POLICY_VIOLATION = 1008  # RFC 6455: the message violates the server's policy (here: an expired credential)


class _Connection:
    """One socket: who opened it, its session once initialized, and the calls it has running."""

    __slots__ = ("_address", "caller", "calls", "profile", "session", "socket")

    def __init__(self, socket: web.WebSocketResponse, caller: Principal | None, address: str,
                 profile: str | None) -> None:
        self.socket = socket
        self.profile = profile  # the profile of the endpoint it was opened at (/ws/<profile>); None for /ws
        self.caller = caller  # authenticated once, at the upgrade; its credential's expiry ends the socket
        self._address = address
        self.session: SessionInfo | None = None
        self.calls: set[asyncio.Task[None]] = set()

    def send(self, data: bytes) -> None:
        if not self.socket.closed:
            task = asyncio.get_running_loop().create_task(self.socket.send_str(data.decode()))
            task.add_done_callback(_quiet)

    def push(self, message: Any) -> None:
        self.send(dumps(message))

    def peer(self) -> str:
        return self._address


def _refuse(connection: _Connection, request_id: Any, code: int, message: str) -> None:
    """An error frame for a message the gateway does not take, logged once; the socket stays open."""
    log.info("refused a WebSocket message: %s", message)
    connection.send(error_bytes(request_id, code, message))


def _expired(caller: Principal | None) -> bool:
    return caller is not None and caller.expires is not None and caller.expires <= time.time()


def _quiet(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.debug("WebSocket write failed: %s", task.exception())


class WebSocketDoor:
    __slots__ = ("_dispatcher", "_gateway", "_guard", "_open")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher, guard: Guard) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._guard = guard
        self._open: set[web.WebSocketResponse] = set()

    async def close_all(self) -> None:
        """On shutdown: sockets never end by themselves, and a drain must not wait for them."""
        await asyncio.gather(*(s.close(code=WSCloseCode.GOING_AWAY, message=b"gateway stopping")
                               for s in list(self._open)), return_exceptions=True)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        caller = await self._guard.authenticate(AiohttpExchange(request))
        if isinstance(caller, Answer):
            return web_response(caller)  # before the upgrade: the client sees the 401 and its challenge
        profile = request.match_info.get("profile")  # /ws/<profile>
        refused = self._guard.profile(profile, caller)
        if refused is not None:
            return web_response(refused)
        socket = web.WebSocketResponse(protocols=("mcp",), heartbeat=_HEARTBEAT, max_msg_size=self._guard.body_limit())
        if not socket.can_prepare(request).ok:
            return web.Response(status=426, text="this endpoint speaks WebSocket (subprotocol mcp)")
        await socket.prepare(request)
        connection = _Connection(socket, caller, request.remote or "", profile)
        self._open.add(socket)
        try:
            async for frame in socket:
                if frame.type is WSMsgType.TEXT:
                    if _expired(connection.caller):
                        log.info("closed a WebSocket whose credential expired")
                        await socket.close(code=_POLICY_VIOLATION, message=b"credential expired; reconnect with a "
                                                                            b"fresh token")
                        break
                    self._frame(connection, frame.data)
                elif frame.type is WSMsgType.BINARY:
                    log.info("closed a WebSocket that sent a binary frame")
                    await socket.close(code=WSCloseCode.UNSUPPORTED_DATA,
                                       message=b"MCP messages are JSON text frames")
                    break
        finally:
            self._open.discard(socket)
            if connection.session is not None:
                self._gateway.streams.detach(connection.session.sid)
        return socket

    def _frame(self, connection: _Connection, text: str) -> None:
        try:
            message = loads_message(text)
        except TooDeep as exc:
            _refuse(connection, answer_id(exc.value), Code.INVALID_REQUEST, TOO_DEEP)
            return
        except JSONDecodeError as exc:
            _refuse(connection, None, Code.PARSE_ERROR, f"frame is not valid JSON: {exc}")
            return
        if isinstance(message, list):
            session = connection.session
            if not message or session is None or session.version not in BATCH_VERSIONS:
                _refuse(connection, None, Code.INVALID_REQUEST, "batches need a session of protocol 2025-03-26 "
                        "and at least one message")
                return
            for item in message:
                self._message(connection, item)
            return
        self._message(connection, message)

    def _message(self, connection: _Connection, message: Any) -> None:
        problem = jsonrpc.shape_error(message)
        if problem is not None:
            _refuse(connection, answer_id(message), Code.INVALID_REQUEST, problem)
            return
        if message.get("method") == "initialize":
            limits = self._gateway.limits
            if limits.per_principal and "id" in message and not limits.admit_now(
                    Limit.PER_PRINCIPAL, principal_key(connection.caller, connection.peer())):
                self._track(connection, self._initialize_if_admitted(connection, message))
            else:
                self._initialize(connection, message)
            return
        session = connection.session
        if session is None:
            if "id" in message and "method" in message:
                _refuse(connection, message["id"], Code.INVALID_REQUEST, "initialize first")
            return
        self._track(connection, self._run(connection, session, message))

    def _track(self, connection: _Connection, work: Coroutine[Any, Any, None]) -> None:
        task = watched(asyncio.get_running_loop().create_task(work))
        connection.calls.add(task)
        task.add_done_callback(connection.calls.discard)

    async def _initialize_if_admitted(self, connection: _Connection, message: dict[str, Any]) -> None:
        """An initialize that needs the supervisor's word on rate_limits.per_principal (the socket's other
        requests are counted by the dispatcher); refused, it gets the JSON-RPC error alone (a WebSocket has
        no status per message)."""
        refused = await self._gateway.limits.admit(Limit.PER_PRINCIPAL, principal_key(connection.caller,
                                                                                       connection.peer()))
        if refused is None:
            self._initialize(connection, message)
            return
        self._dispatcher.audit(Outcome.RATE_LIMITED, None, message, connection, time.perf_counter(),
                               Code.RATE_LIMITED, caller=connection.caller)
        connection.send(error_bytes(message["id"], Code.RATE_LIMITED, refused.message, refused.data))

    def _initialize(self, connection: _Connection, message: dict[str, Any]) -> None:
        sealer = self._gateway.sealer
        if "id" not in message:  # a notification: never answered, whatever its method
            log.info("ignored an initialize notification on a WebSocket: initialize must be a request (with an id)")
            return
        if sealer is None:
            _refuse(connection, message["id"], Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
            return
        started = time.perf_counter()
        try:
            result, version, capabilities = self._dispatcher.initialize(message.get("params"))
        except JsonRpcError as exc:
            self._dispatcher.audit(Outcome.ERROR, None, message, connection, started, exc.code,
                                   caller=connection.caller)
            _refuse(connection, message["id"], exc.code, exc.message)
            return
        params = message.get("params") or {}
        client = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
        caller = connection.caller
        _, session = sealer.new(version, capabilities, {k: client.get(k) for k in ("name", "version") if k in client},
                                caller.key if caller is not None else None, connection.profile)
        if caller is not None:
            session = session.called_by(caller)
        self._dispatcher.audit(Outcome.OK, session, message, connection, started)
        if connection.session is not None:
            self._gateway.streams.detach(connection.session.sid)
        connection.session = session
        self._gateway.streams.attach(session.sid, connection.push)
        connection.send(result_bytes(message["id"], result))

    async def _run(self, connection: _Connection, session: SessionInfo, message: dict[str, Any]) -> None:
        requests = self._gateway.requests
        scope = requests.message()  # each message is a request of its own in the log (this task only)
        try:
            answer = await self._dispatcher.handle(session, message, SinkChannel(connection.push), connection)
        except Exception as exc:  # a defect of ours: this request still gets its one answer, the socket goes on
            log.exception("%s failed inside the gateway", message.get("method", "a client response"))
            answer = error_bytes(message["id"], Code.INTERNAL_ERROR, f"internal error: {exc}") \
                if "id" in message and "method" in message else None
        if answer is not None:
            connection.send(answer)
        if scope.started:
            requests.end(scope, 200, "WS", "/ws")
