"""Cross-worker messages: the supervisor republishes what one worker addresses to another (or to all).

Topics make each worker receive only its own and the broadcast traffic: ``*`` for everyone, ``w<slot>.``
for one slot (the dot stops ``w1.`` from matching ``w10.``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import zmq
import zmq.asyncio

from .endpoints import Endpoints
from .envelope import BusProtocolError, Envelope, decode
from .sockets import send_now

__all__ = ["BROADCAST", "STANDBY", "RelayPublisher", "RelaySubscriber", "worker_topic"]

log = logging.getLogger("only1mcp.bus")

BROADCAST = b"*"
STANDBY = b"standby."  # adoption orders to standby workers


def worker_topic(slot: int) -> bytes:
    return f"w{slot}.".encode()


class RelayPublisher:
    __slots__ = ("_pub",)

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints) -> None:
        self._pub = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, 100_000)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(endpoints.relay)

    def publish(self, topic: bytes, envelope: Envelope) -> None:
        send_now(self._pub, envelope, topic)

    def close(self) -> None:
        self._pub.close(0)


class RelaySubscriber:
    """A worker's inbound relay: broadcast traffic and whatever is addressed to its slot."""

    __slots__ = ("_handler", "_sub")

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints, topics: list[bytes],
                 handler: Callable[[Envelope], None]) -> None:
        self._sub = ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.RCVHWM, 100_000)
        self._sub.setsockopt(zmq.LINGER, 0)
        for topic in topics:
            self._sub.setsockopt(zmq.SUBSCRIBE, topic)
        self._sub.connect(endpoints.relay)
        self._handler = handler

    async def serve(self) -> None:
        while True:
            frames = await self._sub.recv_multipart()
            try:
                envelope = decode(frames[-1])
            except BusProtocolError as exc:
                log.warning("relay: %s", exc)
                continue
            try:
                self._handler(envelope)
            except Exception:  # one bad message must not stop the relay
                log.exception("relay: handling %s failed", envelope.kind.name)

    def close(self) -> None:
        self._sub.close(0)
