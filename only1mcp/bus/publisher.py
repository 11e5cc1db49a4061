"""The supervisor's end of the state bus: the single writer of shared state."""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Iterator

import zmq
import zmq.asyncio

from .codec import BusProtocolError, Codec, Envelope
from .endpoints import Endpoints
from .messages import Delta, Heartbeat, Kind, Request, Sender, Snapshot
from .sockets import send_now
from .state import Namespace, StateEntry
from .wire import Payload

__all__ = ["RequestHandler", "StatePublisher"]

log = logging.getLogger("only1mcp.bus")

# Deep enough that a replica falling behind during a burst drops frames only under real overload; a
# replica that misses one re-snapshots anyway.
_HWM = 200_000

# A request's payload -> (reply kind, reply payload), or an awaitable of it for a request that takes time to
# apply (an admin reload): the reply is sent when it is done, and other requests are answered meanwhile.
Reply = tuple[Kind, Payload]
RequestHandler = Callable[[Payload], Reply | Awaitable[Reply]]


class StatePublisher:
    """Numbers every change (``seq``), publishes it as a delta, serves snapshots, heartbeats its seq.

    Also answers other requests on the same socket (``requests``: request kind -> handler), e.g. status
    for the admin API or a session's replay buffer, without being on the MCP request path.
    """

    __slots__ = ("_codec", "_data", "_pending", "_pub", "_requests", "_router", "_sender", "_seq")

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints, sender: Sender,
                 requests: dict[Kind, RequestHandler] | None = None) -> None:
        self._pub = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, _HWM)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(endpoints.state)
        self._router = ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(endpoints.snapshot)
        self._sender = sender
        self._codec = Codec()
        self._data: dict[tuple[Namespace, str], Payload] = {}
        self._seq = 0
        self._requests = requests or {}
        self._pending: set[asyncio.Task[None]] = set()  # replies of slow requests still being worked out

    @property
    def seq(self) -> int:
        return self._seq

    def get(self, namespace: Namespace, name: str = "") -> Payload | None:
        return self._data.get((namespace, name))

    def entries(self, namespace: Namespace) -> Iterator[tuple[str, Payload]]:
        return ((name, value) for (space, name), value in self._data.items() if space is namespace)

    def __len__(self) -> int:
        return len(self._data)

    def set(self, namespace: Namespace, name: str, value: Payload | None) -> int:
        """Set an entry (``None`` deletes it) and publish the change; returns the state's seq."""
        key = (namespace, name)
        if self._data.get(key) == value and (value is not None or key not in self._data):
            return self._seq
        entry = StateEntry(namespace, name, value)  # checks the value's type for its namespace
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value
        self._seq += 1
        send_now(self._pub, self._codec, Envelope(Kind.DELTA, self._sender, Delta(self._seq, entry)))
        return self._seq

    def heartbeat(self) -> None:
        send_now(self._pub, self._codec, Envelope(Kind.HEARTBEAT, self._sender, Heartbeat(self._seq)))

    async def run_heartbeats(self, interval: float) -> None:
        while True:
            self.heartbeat()
            await asyncio.sleep(interval)

    def snapshot(self, request_id: int) -> Snapshot:
        return Snapshot(request_id, self._seq, tuple(StateEntry(namespace, name, value)
                                                     for (namespace, name), value in self._data.items()))

    async def serve(self) -> None:
        """Answer snapshot and other requests until cancelled."""
        while True:
            frames = await self._router.recv_multipart()
            if len(frames) != 2:
                log.warning("bus: dropped a request with %d frames (expected identity + envelope)", len(frames))
                continue
            identity, frame = frames
            try:
                request = self._codec.decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            reply = self._answer(request)
            if isinstance(reply, Envelope):
                send_now(self._router, self._codec, reply, identity)
            elif reply is not None:
                task = asyncio.get_running_loop().create_task(self._answer_later(request.kind, reply, identity))
                self._pending.add(task)
                task.add_done_callback(self._pending.discard)

    def _answer(self, request: Envelope) -> Envelope | Awaitable[Reply] | None:
        if request.kind is Kind.SNAPSHOT_REQUEST:
            assert isinstance(request.payload, Request)
            return Envelope(Kind.SNAPSHOT, self._sender, self.snapshot(request.payload.request_id))
        handler = self._requests.get(request.kind)
        if handler is None:
            log.warning("bus: unexpected %s on the request socket", request.kind.name)
            return None
        try:
            reply = handler(request.payload)
        except Exception:  # a failing handler must not stop the snapshot service; logged once here
            log.exception("bus: %s handler failed", request.kind.name)
            return None
        if inspect.isawaitable(reply):
            return reply
        kind, value = reply
        return Envelope.of(kind, self._sender, value)

    async def _answer_later(self, request: Kind, reply: Awaitable[Reply], identity: bytes) -> None:
        try:
            kind, value = await reply
        except Exception:  # as in _answer: logged once, the asker times out, the service goes on
            log.exception("bus: %s handler failed", request.name)
            return
        send_now(self._router, self._codec, Envelope.of(kind, self._sender, value), identity)

    def close(self) -> None:
        for task in self._pending:
            task.cancel()
        self._pub.close(0)
        self._router.close(0)
