"""``subscriptions/listen`` (2026-07-28): one long-lived SSE response per subscription, held by a worker.

The stream opens with ``notifications/subscriptions/acknowledged`` naming what the gateway will deliver,
then carries list changes (every worker sees catalog changes, so any worker can hold a listener) and
updates of the subscribed resources (the holding worker subscribes its own backend session). Every frame
carries the listen request's id as ``_meta`` subscriptionId. When the worker stops, the stream ends with
the request's result, the graceful close a client can tell from a dropped connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from aiohttp import web

from only1mcp.http.sse import encode_event
from only1mcp.protocol import jsonrpc, modern
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.constants import SSE_HEADERS
from only1mcp.protocol.jsonrpc import Code, JsonRpcError
from only1mcp.sessions import SessionInfo

from .dispatch import SERVER_INFO, Dispatcher
from .gateway import Gateway
from .sse_pump import pump

__all__ = ["Listeners"]

log = logging.getLogger("only1mcp.worker")

_MAX_QUEUED = 1024  # events a slow listener may fall behind before it is cut off (it re-listens and refetches)
_LIST_FLAGS = {"notifications/tools/list_changed": "toolsListChanged",
               "notifications/prompts/list_changed": "promptsListChanged",
               "notifications/resources/list_changed": "resourcesListChanged"}


class _Listener:
    __slots__ = ("closing", "honored", "queue", "request_id")

    def __init__(self, request_id: Any, honored: dict[str, Any]) -> None:
        self.request_id = request_id
        self.honored = honored
        self.closing = False  # ended by the gateway (graceful), not cut off for falling behind
        self.queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def push(self, message: dict[str, Any]) -> None:
        """Called with everything sent to this listener's stream; only what it asked for goes out."""
        method = message.get("method")
        flag = _LIST_FLAGS.get(str(method))
        if flag is not None and not self.honored.get(flag):
            return
        if flag is None and method != "notifications/resources/updated":
            return
        if self.queue.qsize() >= _MAX_QUEUED:
            log.warning("a subscriptions/listen client fell %d events behind; closing its stream", _MAX_QUEUED)
            self.queue.put_nowait(None)
            return
        params = dict(message.get("params") or {})
        params["_meta"] = {**(params.get("_meta") or {}), modern.SUBSCRIPTION_ID_KEY: self.request_id}
        self.queue.put_nowait(jsonrpc.notification(str(method), params))


class Listeners:
    __slots__ = ("_dispatcher", "_gateway", "_open")

    def __init__(self, gateway: Gateway, dispatcher: Dispatcher) -> None:
        self._gateway = gateway
        self._dispatcher = dispatcher
        self._open: dict[str, _Listener] = {}

    async def serve(self, request: web.Request, request_id: Any, params: dict[str, Any], session: SessionInfo,
                    acknowledging: Callable[[], None]) -> web.StreamResponse:
        """The listen stream; ``acknowledging`` is called once the request is accepted, before the stream's
        first byte (its audit line)."""
        wanted = params.get("notifications")
        if not isinstance(wanted, dict):
            raise JsonRpcError(Code.INVALID_PARAMS, "subscriptions/listen needs params.notifications, an object "
                               "of the notification types to receive")
        uris = wanted.get("resourceSubscriptions") or []
        if not isinstance(uris, list) or not all(isinstance(u, str) for u in uris):
            raise JsonRpcError(Code.INVALID_PARAMS, "notifications.resourceSubscriptions must be a list of URIs")
        honored: dict[str, Any] = {flag: True for flag in _LIST_FLAGS.values() if wanted.get(flag) is True}
        subscribed = [uri for uri in dict.fromkeys(uris) if await self._subscribe(session, request_id, uri)]
        if uris:
            honored["resourceSubscriptions"] = subscribed
        listener = _Listener(request_id, honored)
        self._open[session.sid] = listener
        self._gateway.streams.attach(session.sid, listener.push)
        response = web.StreamResponse(headers=SSE_HEADERS)
        acknowledging()
        try:
            await response.prepare(request)
            ack = jsonrpc.notification("notifications/subscriptions/acknowledged", {
                "notifications": honored, "_meta": {modern.SUBSCRIPTION_ID_KEY: request_id}})
            await response.write(encode_event(dumps(ack)))
            if await self._pump(response, listener):
                final = jsonrpc.response(request_id, modern.complete({"_meta": {
                    modern.SUBSCRIPTION_ID_KEY: request_id}}, "subscriptions/listen", SERVER_INFO))
                await response.write(encode_event(dumps(final)))
                await response.write_eof()
        except (ConnectionError, RuntimeError) as exc:
            log.debug("a subscriptions/listen stream closed: %s", exc)
        finally:
            self._gateway.streams.detach(session.sid)
            self._open.pop(session.sid, None)
            for uri in subscribed:
                route = self._gateway.view.resource(uri) if self._gateway.view is not None else None
                if route is not None:
                    self._gateway.unsubscribe_local(session.sid, route[0], route[1])
        return response

    async def _subscribe(self, session: SessionInfo, request_id: Any, uri: str) -> bool:
        """Subscribe the owning backend through this worker; False (and left out of the acknowledgment)
        when no backend serves the URI or its backend cannot subscribe."""
        try:
            await self._dispatcher.answer(session, "resources/subscribe", request_id, {"uri": uri}, None)
        except JsonRpcError as exc:
            log.info("subscriptions/listen: not subscribing %s: %s", uri, exc.message)
            return False
        return True

    @staticmethod
    async def _pump(response: web.StreamResponse, listener: _Listener) -> bool:
        """Write events until the stream is ended here (True) or cut off for falling behind (False)."""
        await pump(listener.queue, response.write, lambda message: encode_event(dumps(message)))
        return listener.closing

    def close_all(self) -> None:
        """End every stream gracefully (the worker is stopping)."""
        for listener in self._open.values():
            listener.closing = True
            with contextlib.suppress(asyncio.QueueFull):
                listener.queue.put_nowait(None)
