"""The report channel: workers and the stdio host PUSH reports, the supervisor PULLs them."""

from __future__ import annotations

import logging

import zmq
import zmq.asyncio

from .codec import BusProtocolError, Codec, Envelope
from .endpoints import Endpoints
from .messages import Kind, Sender
from .router import MessageRouter
from .sockets import send_now
from .wire import Payload

__all__ = ["ReportSink", "Reporter"]

log = logging.getLogger("only1mcp.bus")


class Reporter:
    """A process's outbound reports. Never blocks: if the supervisor is not reading, a report is dropped
    and counted."""

    __slots__ = ("_codec", "_push", "dropped", "sender")

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints, sender: Sender) -> None:
        self._push = ctx.socket(zmq.PUSH)
        self._push.setsockopt(zmq.SNDHWM, 10_000)
        self._push.setsockopt(zmq.LINGER, 2000)  # a boot error must reach the supervisor before exit
        self._push.connect(endpoints.observe)
        self.sender = sender  # changes once when a standby adopts a slot
        self.dropped = 0
        self._codec = Codec()

    def send(self, kind: Kind, payload: Payload) -> bool:
        if send_now(self._push, self._codec, Envelope.of(kind, self.sender, payload)):
            return True
        self.dropped += 1
        return False

    def close(self) -> None:
        self._push.close()


class ReportSink:
    """The supervisor's inbound side: decodes each report and dispatches it through ``router``."""

    __slots__ = ("_codec", "_pull", "_router")

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints, router: MessageRouter) -> None:
        self._pull = ctx.socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.bind(endpoints.observe)
        self._router = router
        self._codec = Codec()

    async def serve(self) -> None:
        while True:
            frame = await self._pull.recv()
            try:
                envelope = self._codec.decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            self._router.dispatch(envelope)

    def close(self) -> None:
        self._pull.close(0)
