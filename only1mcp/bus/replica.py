"""A worker's read-only copy of the shared state, kept current by the Clone pattern."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import zmq
import zmq.asyncio

from .endpoints import Endpoints
from .envelope import BusProtocolError, Envelope, Kind, decode
from .sockets import send_now

__all__ = ["Replica", "State"]

log = logging.getLogger("only1mcp.bus")

_HWM = 200_000
_MAX_BATCH = 10_000


@dataclass(frozen=True, slots=True)
class State:
    """One immutable version of the shared state; a request reads it once and sees one version."""

    seq: int = 0
    data: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)


class Replica:
    """Subscribes first, then snapshots; drops deltas not newer than the snapshot; re-snapshots on a gap
    or when a heartbeat shows it is behind. ``on_change`` sees every new State, once per applied batch."""

    __slots__ = ("_counter", "_dealer", "_on_change", "_pending", "_state", "_sub", "_tasks", "_timeout",
                 "snapshots")

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoints: Endpoints,
        on_change: Callable[[State], None] | None = None,
        request_timeout: float = 2.0,
    ) -> None:
        self._sub = ctx.socket(zmq.SUB)
        self._sub.setsockopt(zmq.RCVHWM, _HWM)
        self._sub.setsockopt(zmq.LINGER, 0)
        self._sub.setsockopt(zmq.SUBSCRIBE, b"")
        self._sub.connect(endpoints.state)
        self._dealer = ctx.socket(zmq.DEALER)
        self._dealer.setsockopt(zmq.LINGER, 0)
        self._dealer.connect(endpoints.snapshot)
        self._state = State()
        self._on_change = on_change
        self._timeout = request_timeout
        self._pending: dict[str, asyncio.Future[Envelope]] = {}
        self._counter = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self.snapshots = 0

    @property
    def state(self) -> State:
        return self._state

    async def start(self) -> State:
        """Take the first snapshot and start following deltas; returns the first State."""
        self._tasks.append(asyncio.create_task(self._read_replies(), name="bus-replies"))
        await self._snapshot()
        self._tasks.append(asyncio.create_task(self._follow(), name="bus-follow"))
        return self._state

    async def request(self, kind: Kind, value: Any = None, timeout: float | None = None) -> Envelope:
        """Ask the supervisor something over the snapshot socket; raises TimeoutError if it does not answer."""
        request_id = str(next(self._counter))
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            send_now(self._dealer, Envelope(kind, 0, request_id, value))
            return await asyncio.wait_for(future, timeout or self._timeout)
        finally:
            self._pending.pop(request_id, None)

    async def _read_replies(self) -> None:
        while True:
            frame = await self._dealer.recv()
            try:
                reply = decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            future = self._pending.get(reply.key)
            if future is not None and not future.done():
                future.set_result(reply)

    async def _snapshot(self) -> None:
        while True:
            try:
                reply = await self.request(Kind.SNAPSHOT_REQUEST)
            except TimeoutError:
                log.warning("bus: no snapshot from the supervisor within %.1fs; asking again", self._timeout)
                continue
            if reply.seq >= self._state.seq:  # never go back in time
                self._swap(State(reply.seq, MappingProxyType(dict(reply.value or {}))))
            self.snapshots += 1
            return

    def _swap(self, state: State) -> None:
        self._state = state
        if self._on_change is not None:
            self._on_change(state)

    async def _follow(self) -> None:
        while True:
            frames = [await self._sub.recv()]
            while len(frames) < _MAX_BATCH:  # apply whatever is already queued as one new version
                try:
                    frames.append(self._sub.recv(zmq.DONTWAIT).result())
                except zmq.Again:
                    break
            if self._apply(frames):
                await self._snapshot()

    def _apply(self, frames: list[bytes]) -> bool:
        """Apply a batch of frames; True when a gap means a new snapshot is needed."""
        seq = self._state.seq
        data: dict[str, Any] | None = None
        behind = False
        for frame in frames:
            try:
                envelope = decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            if envelope.kind is Kind.HEARTBEAT:
                behind = envelope.seq > seq
            elif envelope.kind is Kind.DELTA:
                if envelope.seq <= seq:
                    continue
                if envelope.seq != seq + 1:
                    log.info("bus: gap (have %d, got %d); taking a new snapshot", seq, envelope.seq)
                    behind = True
                    break
                if data is None:
                    data = dict(self._state.data)
                if envelope.value is None:
                    data.pop(envelope.key, None)
                else:
                    data[envelope.key] = envelope.value
                seq = envelope.seq
                behind = False
        if data is not None:
            self._swap(State(seq, MappingProxyType(data)))
        return behind

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._sub.close(0)
        self._dealer.close(0)
