"""The legacy HTTP+SSE endpoint (protocol 2024-11-05): `GET /sse` opens the stream, POSTs carry messages.

The stream's first event, `endpoint`, names `/messages?session_id=<sealed id>&worker=<slot>.<pid>`.
Everything for the client, answers included, goes on that stream, held by one worker; a POST that the
kernel hands to another worker is relayed over the bus to the worker that holds it (the POST itself is
answered 202 at once, as the transport specifies).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from only1mcp.audit.outcome import Outcome
from only1mcp.background import watched
from only1mcp.bus import Envelope, Kind, MessageRouter, Target
from only1mcp.bus.messages import LegacyPost
from only1mcp.http.sse import encode_event
from only1mcp.observe.scope import current
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.codec import JSONDecodeError, TooDeep, dumps, loads_message
from only1mcp.protocol.constants import SSE_HEADERS
from only1mcp.protocol.jsonrpc import Code, JsonRpcError, answer_id
from only1mcp.ratelimit.limits import Limit, principal_key
from only1mcp.sessions import SessionInfo

from .calls import SinkChannel
from .dispatch import Dispatcher, error_bytes, result_bytes
from .exchange import AiohttpExchange, Answer, web_response
from .gateway import Gateway
from .guard import Guard, refusal, too_deep
from .sse_pump import pump

__all__ = ["LegacySseDoor"]

log = logging.getLogger("only1mcp.worker")

LEGACY_VERSION = "2024-11-05"


class _Stream:
    __slots__ = ("_address", "calls", "queue", "session")

    def __init__(self, session: SessionInfo, address: str) -> None:
        self.session = session
        self._address = address  # of the client that opened the stream (its POSTs may reach another worker)
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.calls: set[asyncio.Task[None]] = set()

    def push(self, message: Any) -> None:
        self.queue.put_nowait(dumps(message))

    def peer(self) -> str:
        return self._address


class LegacySseDoor:
    __slots__ = ("_dispatcher", "_gateway", "_guard", "_streams")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher, guard: Guard) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._guard = guard
        self._streams: dict[str, _Stream] = {}  # sealed session id -> the stream this worker holds

    @staticmethod
    def _refuse(status: int, code: int, message: str) -> web.Response:
        return web_response(refusal(status, code, message))

    async def stream(self, request: web.Request) -> web.StreamResponse:
        caller = await self._guard.authenticate(AiohttpExchange(request))
        if isinstance(caller, Answer):
            return web_response(caller)
        profile = request.match_info.get("profile")  # /sse/<profile>
        refused = self._guard.profile(profile, caller)
        if refused is not None:
            return web_response(refused)
        sealer = self._gateway.sealer
        if sealer is None:
            return self._refuse(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
        token, session = sealer.new(LEGACY_VERSION, {}, {}, caller.key if caller is not None else None, profile)
        if caller is not None:
            session = session.called_by(caller)
        stream = _Stream(session, request.remote or "")
        self._streams[token] = stream
        self._gateway.streams.attach(session.sid, stream.push)
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
            spec = self._gateway.spec
            endpoint = f"/messages?session_id={token}&worker={spec.slot}.{self._gateway.pid}"
            await response.write(encode_event(endpoint.encode(), event="endpoint"))
            await pump(stream.queue, response.write, lambda data: encode_event(data, event="message"))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("legacy SSE stream closed: %s", exc)
        finally:
            self._streams.pop(token, None)
            self._gateway.streams.detach(session.sid)
        return response

    async def _session_of(self, request: web.Request, token: str) -> SessionInfo | web.Response:
        """The session a POST names, opened by the principal whose credential the POST carries (checked
        first: a refused credential is answered 401 whatever else is wrong)."""
        caller = await self._guard.authenticate(AiohttpExchange(request))
        if isinstance(caller, Answer):
            return web_response(caller)
        if not token:
            return self._refuse(400, Code.INVALID_REQUEST, "missing session_id; POST to the endpoint the SSE "
                                                           "stream announced")
        session = self._guard.session(token, reopen="open a new stream with GET /sse", caller=caller)
        return web_response(session) if isinstance(session, Answer) else session

    async def post(self, request: web.Request) -> web.StreamResponse:
        token = request.query.get("session_id", "")
        session = await self._session_of(request, token)
        if not isinstance(session, SessionInfo):
            return session
        if request.content_type != "application/json":
            return self._refuse(415, Code.INVALID_REQUEST, "Content-Type must be application/json")
        body = await self._guard.body(request)
        if not isinstance(body, bytes):
            return body
        try:
            message = loads_message(body)
        except TooDeep as exc:
            return web_response(too_deep(exc))
        except JSONDecodeError as exc:
            return self._refuse(400, Code.PARSE_ERROR, f"request body is not valid JSON: {exc}")
        problem = jsonrpc.shape_error(message)
        if problem is not None:
            return web_response(refusal(400, Code.INVALID_REQUEST, problem, answer_id(message)))
        if token in self._streams:
            self._deliver(token, message)
            return web.Response(status=202)
        owner = request.query.get("worker", "")
        slot, _, pid = owner.partition(".")
        if not (slot.isdigit() and pid.isdigit()) or (int(slot) == self._gateway.spec.slot
                                                        and int(pid) == self._gateway.pid):
            return self._refuse(404, Code.INVALID_REQUEST, "no open stream for this session; open a new one with "
                                "GET /sse")
        self._gateway.relay(Kind.LEGACY_POST, LegacyPost(Target(int(slot), int(pid)), token, message))
        return web.Response(status=202)

    def register(self, inbox: MessageRouter) -> None:
        inbox.register(Kind.LEGACY_POST, self._relayed)

    def _relayed(self, envelope: Envelope) -> None:
        """A POST another worker received for a stream this worker holds."""
        post = envelope.payload
        assert isinstance(post, LegacyPost)
        token, message = post.token, post.message
        if token in self._streams:
            self._deliver(token, message)
        else:
            log.info("dropped a relayed legacy SSE message: its stream is closed")

    def _deliver(self, token: str, message: dict[str, Any]) -> None:
        """A message of the stream's client, handled where its answer is written: rate limits count it here
        (initialize) or in the dispatcher (the rest), by the principal and address that opened the stream."""
        stream = self._streams[token]
        if message.get("method") == "initialize":
            limits = self._gateway.limits
            if limits.per_principal and "id" in message and not limits.admit_now(
                    Limit.PER_PRINCIPAL, principal_key(stream.session.caller, stream.peer())):
                self._track(stream, self._initialize_if_admitted(stream, message))
            else:
                self._initialize(stream, message)
            return
        self._track(stream, self._run(stream, message))

    @staticmethod
    def _track(stream: _Stream, work: Coroutine[Any, Any, None]) -> None:
        task = watched(asyncio.get_running_loop().create_task(work))
        stream.calls.add(task)
        task.add_done_callback(stream.calls.discard)

    async def _initialize_if_admitted(self, stream: _Stream, message: dict[str, Any]) -> None:
        """An initialize that needs the supervisor's word on rate_limits.per_principal; refused, it gets the
        JSON-RPC error alone, on the stream (the POST was answered 202 as the transport specifies)."""
        refused = await self._gateway.limits.admit(Limit.PER_PRINCIPAL, principal_key(stream.session.caller,
                                                                                       stream.peer()))
        if refused is None:
            self._initialize(stream, message)
            return
        self._dispatcher.audit(Outcome.RATE_LIMITED, stream.session, message, stream, time.perf_counter(),
                               Code.RATE_LIMITED)
        stream.queue.put_nowait(error_bytes(message["id"], Code.RATE_LIMITED, refused.message, refused.data))

    def _initialize(self, stream: _Stream, message: dict[str, Any]) -> None:
        started = time.perf_counter()
        request = "id" in message  # a notification named initialize gets no answer, like any notification
        try:
            result, version, capabilities = self._dispatcher.initialize(message.get("params"))
        except JsonRpcError as exc:
            log.info("refused a legacy SSE initialize: %s", exc.message)
            if request:
                self._dispatcher.audit(Outcome.ERROR, stream.session, message, stream, started, exc.code)
                stream.queue.put_nowait(error_bytes(message["id"], exc.code, exc.message))
            return
        # The stream's session gets what initialize negotiated (kept here: every message of a legacy
        # session is handled by the worker that holds its stream).
        stream.session = SessionInfo(stream.session.sid, version, capabilities, stream.session.client,
                                     stream.session.issued, stream.session.principal, stream.session.catalog_profile,
                                     caller=stream.session.caller)
        if request:
            self._dispatcher.audit(Outcome.OK, stream.session, message, stream, started)
            stream.queue.put_nowait(result_bytes(message["id"], result))

    async def _run(self, stream: _Stream, message: dict[str, Any]) -> None:
        if current() is None:  # relayed from the worker that took the POST: a request id of its own here
            self._gateway.requests.message()
        try:
            answer = await self._dispatcher.handle(stream.session, message, SinkChannel(stream.push), stream)
        except Exception as exc:  # a defect of ours: this request still gets its one answer, the stream goes on
            log.exception("%s failed inside the gateway", message.get("method", "a client response"))
            answer = error_bytes(message["id"], Code.INTERNAL_ERROR, f"internal error: {exc}") \
                if "id" in message and "method" in message else None
        if answer is not None:
            stream.queue.put_nowait(answer)

    def close_all(self) -> None:
        for stream in self._streams.values():
            stream.queue.put_nowait(None)
