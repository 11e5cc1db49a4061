"""The supervisor's end of the state bus: the single writer of shared state."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import zmq
import zmq.asyncio

from .endpoints import Endpoints
from .envelope import BusProtocolError, Envelope, Kind, decode
from .sockets import send_now

__all__ = ["StatePublisher"]

log = logging.getLogger("only1mcp.bus")

# Deep enough that a replica falling behind during a burst drops frames only under real overload; a
# replica that misses one re-snapshots anyway.
_HWM = 200_000


class StatePublisher:
    """Numbers every change (``seq``), publishes it as a delta, serves snapshots, heartbeats its seq.

    Also answers other requests on the same socket (``requests``: request kind -> (reply kind, handler)),
    e.g. status for the admin API or a session's replay buffer, without being on the MCP request path.
    """

    __slots__ = ("_data", "_pub", "_requests", "_router", "_seq")

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoints: Endpoints,
        requests: dict[Kind, tuple[Kind, Callable[[Any], Any]]] | None = None,
    ) -> None:
        self._pub = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, _HWM)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(endpoints.state)
        self._router = ctx.socket(zmq.ROUTER)
        self._router.setsockopt(zmq.LINGER, 0)
        self._router.bind(endpoints.snapshot)
        self._data: dict[str, Any] = {}
        self._seq = 0
        self._requests = requests or {}

    @property
    def seq(self) -> int:
        return self._seq

    @property
    def data(self) -> Mapping[str, Any]:
        return MappingProxyType(self._data)

    def set(self, key: str, value: Any) -> int:
        """Set ``key`` (``None`` deletes it) and publish the change; returns the state's seq."""
        if self._data.get(key) == value and (value is not None or key not in self._data):
            return self._seq
        if value is None:
            self._data.pop(key, None)
        else:
            self._data[key] = value
        self._seq += 1
        send_now(self._pub, Envelope(Kind.DELTA, self._seq, key, value))
        return self._seq

    def heartbeat(self) -> None:
        send_now(self._pub, Envelope(Kind.HEARTBEAT, self._seq, ""))

    async def run_heartbeats(self, interval: float) -> None:
        while True:
            self.heartbeat()
            await asyncio.sleep(interval)

    async def serve(self) -> None:
        """Answer snapshot and status requests until cancelled."""
        while True:
            frames = await self._router.recv_multipart()
            if len(frames) != 2:
                log.warning("bus: dropped a request with %d frames (expected identity + envelope)", len(frames))
                continue
            identity, frame = frames
            try:
                request = decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            if request.kind is Kind.SNAPSHOT_REQUEST:
                reply = Envelope(Kind.SNAPSHOT, self._seq, request.key, dict(self._data))
            elif request.kind in self._requests:
                reply_kind, handler = self._requests[request.kind]
                try:
                    value = handler(request.value)
                except Exception:  # a failing handler must not stop the snapshot service
                    log.exception("bus: %s handler failed", request.kind.name)
                    continue
                reply = Envelope(reply_kind, self._seq, request.key, value)
            else:
                log.warning("bus: unexpected %s on the snapshot socket", request.kind.name)
                continue
            send_now(self._router, reply, identity)

    def close(self) -> None:
        self._pub.close(0)
        self._router.close(0)
