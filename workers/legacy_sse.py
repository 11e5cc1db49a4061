"""The legacy HTTP+SSE endpoint (protocol 2024-11-05): `GET /sse` opens the stream, POSTs carry messages.

The stream's first event, `endpoint`, names `/messages?session_id=<sealed id>&worker=<slot>.<pid>`.
Everything for the client, answers included, goes on that stream, held by one worker; a POST that the
kernel hands to another worker is relayed over the bus to the worker that holds it (the POST itself is
answered 202 at once, as the transport specifies).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from only1mcp.http.bodies import BodyIncomplete, BodyTimeout, BodyTooLarge, read_body, send_and_close
from only1mcp.http.sse import encode_event
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.codec import JSONDecodeError, dumps, loads
from only1mcp.protocol.jsonrpc import Code
from only1mcp.sessions import InvalidSession, SessionInfo

from .calls import SSE_HEADERS, SinkChannel
from .dispatch import Dispatcher, error_bytes, result_bytes
from .gateway import Gateway

__all__ = ["LegacySseDoor"]

log = logging.getLogger("only1mcp.worker")

_KEEPALIVE = 15.0
LEGACY_VERSION = "2024-11-05"


class _Stream:
    __slots__ = ("calls", "queue", "session")

    def __init__(self, session: SessionInfo) -> None:
        self.session = session
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.calls: set[asyncio.Task[None]] = set()

    def push(self, message: Any) -> None:
        self.queue.put_nowait(dumps(message))


class LegacySseDoor:
    __slots__ = ("_dispatcher", "_gateway", "_streams")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._streams: dict[str, _Stream] = {}  # sealed session id -> the stream this worker holds
        gateway.legacy_post = self.relayed

    def _refuse(self, status: int, code: int, message: str) -> web.Response:
        log.info("refused %d: %s", status, message)
        return web.Response(status=status, body=error_bytes(None, code, message), content_type="application/json")

    def _guard(self, request: web.Request) -> web.Response | None:
        problem = self._gateway.policy.check(request.headers.get("Host"), request.headers.get("Origin"))
        return None if problem is None else self._refuse(403, Code.INVALID_REQUEST, problem)

    async def stream(self, request: web.Request) -> web.StreamResponse:
        refused = self._guard(request)
        if refused is not None:
            return refused
        sealer = self._gateway.sealer
        if sealer is None:
            return self._refuse(503, Code.INTERNAL_ERROR, "the gateway is starting; retry in a moment")
        token, session = sealer.new(LEGACY_VERSION, {}, {})
        stream = _Stream(session)
        self._streams[token] = stream
        self._gateway.streams.attach(session.sid, stream.push)
        response = web.StreamResponse(headers=SSE_HEADERS)
        try:
            await response.prepare(request)
            spec = self._gateway.spec
            endpoint = f"/messages?session_id={token}&worker={spec.slot}.{self._gateway.pid}"
            await response.write(encode_event(endpoint.encode(), event="endpoint"))
            while True:
                try:
                    data = await asyncio.wait_for(stream.queue.get(), _KEEPALIVE)
                except TimeoutError:
                    await response.write(b": keep-alive\n\n")
                    continue
                if data is None:
                    break
                await response.write(encode_event(data, event="message"))
        except (ConnectionError, RuntimeError) as exc:
            log.debug("legacy SSE stream closed: %s", exc)
        finally:
            self._streams.pop(token, None)
            self._gateway.streams.detach(session.sid)
        return response

    async def post(self, request: web.Request) -> web.StreamResponse:
        refused = self._guard(request)
        if refused is not None:
            return refused
        token = request.query.get("session_id", "")
        sealer = self._gateway.sealer
        if not token or sealer is None:
            return self._refuse(400 if not token else 503, Code.INVALID_REQUEST,
                                "missing session_id; POST to the endpoint the SSE stream announced")
        try:
            session = sealer.open(token)
        except InvalidSession as exc:
            return self._refuse(404, Code.INVALID_REQUEST, f"{exc}; open a new stream with GET /sse")
        if self._gateway.session_gone(session):
            return self._refuse(404, Code.INVALID_REQUEST, "session was terminated; open a new stream with GET /sse")
        if request.content_type != "application/json":
            return self._refuse(415, Code.INVALID_REQUEST, "Content-Type must be application/json")
        settings = self._gateway.settings
        limit = settings.server.max_body_size if settings is not None else 4 * 1024 * 1024
        timeout = settings.server.body_timeout if settings is not None else 60.0
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
        try:
            message = loads(body)
        except JSONDecodeError as exc:
            return self._refuse(400, Code.PARSE_ERROR, f"request body is not valid JSON: {exc}")
        problem = jsonrpc.shape_error(message)
        if problem is not None:
            return self._refuse(400, Code.INVALID_REQUEST, problem)
        if token in self._streams:
            self._deliver(token, message)
            return web.Response(status=202)
        owner = request.query.get("worker", "")
        slot, _, pid = owner.partition(".")
        if not (slot.isdigit() and pid.isdigit()) or (int(slot) == self._gateway.spec.slot
                                                        and int(pid) == self._gateway.pid):
            return self._refuse(404, Code.INVALID_REQUEST, "no open stream for this session; open a new one with "
                                "GET /sse")
        self._gateway.relay(int(slot), {"kind": "legacy_post", "pid": int(pid), "token": token, "message": message})
        return web.Response(status=202)

    def relayed(self, token: str, message: dict[str, Any]) -> None:
        """A POST another worker received for a stream this worker holds."""
        if token in self._streams:
            self._deliver(token, message)
        else:
            log.info("dropped a relayed legacy SSE message: its stream is closed")

    def _deliver(self, token: str, message: dict[str, Any]) -> None:
        stream = self._streams[token]
        if message.get("method") == "initialize":
            params = message.get("params") or {}
            result, version, capabilities = self._dispatcher.initialize(params)
            # The stream's session gets what initialize negotiated (kept here: every message of a legacy
            # session is handled by the worker that holds its stream).
            stream.session = SessionInfo(stream.session.sid, version, capabilities, stream.session.client,
                                         stream.session.issued, stream.session.principal)
            stream.queue.put_nowait(result_bytes(message.get("id"), result))
            return
        task = asyncio.get_running_loop().create_task(self._run(stream, message))
        stream.calls.add(task)
        task.add_done_callback(stream.calls.discard)

    async def _run(self, stream: _Stream, message: dict[str, Any]) -> None:
        answer = await self._dispatcher.handle(stream.session, message, SinkChannel(stream.push))
        if answer is not None:
            stream.queue.put_nowait(answer)

    def close_all(self) -> None:
        for stream in self._streams.values():
            stream.queue.put_nowait(None)
