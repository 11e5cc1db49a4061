"""Messages for one worker, or all: the supervisor republishes on a PUB socket with topics.

A worker sends a relayed kind as a report; the supervisor forwards it under its target's topic (``*``
for everyone, ``w<slot>.`` for one slot, ``standby.`` for standbys). A subscriber drops what is addressed
to another process in the same slot (``to.pid``) and its own broadcasts, then dispatches the rest.
"""

from __future__ import annotations

import logging

import zmq
import zmq.asyncio

from .codec import BusProtocolError, Codec, Envelope
from .endpoints import Endpoints
from .messages import RELAYED, Target
from .router import MessageRouter
from .sockets import send_now

__all__ = ["RelayPublisher", "RelaySubscriber", "target_of"]

log = logging.getLogger("only1mcp.bus")


def target_of(envelope: Envelope) -> Target:
    if envelope.kind not in RELAYED:
        raise ValueError(f"{envelope.kind.name} is not a relayed kind")
    return envelope.payload.to  # type: ignore[attr-defined,no-any-return]


class RelayPublisher:
    __slots__ = ("_codec", "_pub")

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints) -> None:
        self._pub = ctx.socket(zmq.PUB)
        self._pub.setsockopt(zmq.SNDHWM, 100_000)
        self._pub.setsockopt(zmq.LINGER, 0)
        self._pub.bind(endpoints.relay)
        self._codec = Codec()

    def publish(self, envelope: Envelope) -> None:
        send_now(self._pub, self._codec, envelope, target_of(envelope).topic)

    def close(self) -> None:
        self._pub.close(0)


class RelaySubscriber:
    """A process's inbound relay: broadcast traffic and whatever is addressed to ``targets``."""

    __slots__ = ("_codec", "_pid", "_router", "_sub")

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints, targets: list[Target], pid: int,
                 router: MessageRouter) -> None:
        self._sub = ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.RCVHWM, 100_000)
        self._sub.setsockopt(zmq.LINGER, 0)
        for target in targets:
            self._sub.setsockopt(zmq.SUBSCRIBE, target.topic)
        self._sub.connect(endpoints.relay)
        self._pid = pid
        self._router = router
        self._codec = Codec()

    async def serve(self) -> None:
        while True:
            frames = await self._sub.recv_multipart()
            try:
                envelope = self._codec.decode(frames[-1])
            except BusProtocolError as exc:
                log.warning("relay: %s", exc)
                continue
            target = target_of(envelope)
            if (target.pid and target.pid != self._pid) or envelope.sender.pid == self._pid:
                continue  # for the previous occupant of our slot, or our own broadcast
            self._router.dispatch(envelope)

    def close(self) -> None:
        self._sub.close(0)
