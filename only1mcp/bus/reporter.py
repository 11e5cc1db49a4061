"""The observation channel: workers PUSH reports, the supervisor PULLs them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from .endpoints import Endpoints
from .envelope import BusProtocolError, Envelope, Kind, decode
from .sockets import send_now

__all__ = ["ObservationSink", "Reporter"]

log = logging.getLogger("only1mcp.bus")


class Reporter:
    """A worker's outbound reports. Never blocks: if the supervisor is not reading, a report is dropped."""

    __slots__ = ("_push", "dropped", "identity")

    def __init__(self, ctx: zmq.asyncio.Context, endpoints: Endpoints, identity: str) -> None:
        self._push = ctx.socket(zmq.PUSH)
        self._push.setsockopt(zmq.SNDHWM, 10_000)
        self._push.setsockopt(zmq.LINGER, 2000)  # a boot error must reach the supervisor before exit
        self._push.connect(endpoints.observe)
        self.identity = identity  # a worker's slot number, or "stdio-host"
        self.dropped = 0

    def report(self, kind: Kind, value: Any, seq: int = 0) -> None:
        if not send_now(self._push, Envelope(kind, seq, self.identity, value)):
            self.dropped += 1

    def close(self) -> None:
        self._push.close()


class ObservationSink:
    """The supervisor's inbound side: decodes each report and hands it to ``handler``."""

    __slots__ = ("_handler", "_pull")

    def __init__(
        self, ctx: zmq.asyncio.Context, endpoints: Endpoints, handler: Callable[[Envelope], None]
    ) -> None:
        self._pull = ctx.socket(zmq.PULL)
        self._pull.setsockopt(zmq.LINGER, 0)
        self._pull.bind(endpoints.observe)
        self._handler = handler

    async def serve(self) -> None:
        while True:
            frame = await self._pull.recv()
            try:
                envelope = decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            try:
                self._handler(envelope)
            except Exception:  # a bug in one handler must not stop every later report
                log.exception("bus: handling %s from %s failed", envelope.kind.name, envelope.key)

    def close(self) -> None:
        self._pull.close(0)
