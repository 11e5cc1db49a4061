"""A worker's (or the stdio host's) read-only copy of the shared state, kept current by the Clone pattern."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import MappingProxyType

import zmq
import zmq.asyncio

from only1mcp.background import watched

from .codec import BusProtocolError, Codec, Envelope
from .endpoints import Endpoints
from .messages import Delta, Heartbeat, Kind, Request, Sender, Snapshot
from .sockets import send_now
from .state import Namespace, Revocation, State, StateEntry
from .wire import Payload

__all__ = ["Replica", "Revocations"]

log = logging.getLogger("only1mcp.bus")

_HWM = 200_000
_MAX_BATCH = 10_000
_SINGLETONS = {Namespace.CONFIG: "config", Namespace.SESSIONS: "sessions", Namespace.CATALOG: "catalog",
               Namespace.JWKS: "jwks"}
# one entry per backend
_KEYED = {Namespace.ROUTES: "routes", Namespace.TOKENS: "tokens", Namespace.OPERATOR: "operator"}


_LOCAL = -1.0  # a revocation known here (the DELETE came through this worker) but not yet confirmed


class Revocations(dict[str, float]):
    """Sessions their clients ended, as sid -> expiry, changed in place as deltas arrive: O(1) per revocation
    to apply and to check, whatever the number held. A dict itself, so the check on every request
    (``sid in revocations``) is the dictionary's own."""

    __slots__ = ()

    def apply(self, sid: str, value: Revocation | None) -> None:
        if value is None:
            self.pop(sid, None)
        else:
            self[sid] = value.expires

    def add_local(self, sid: str) -> None:
        """Known here before the supervisor's delta arrives (the DELETE was served by this worker)."""
        self.setdefault(sid, _LOCAL)

    def confirmed(self, sid: str) -> bool:
        """The supervisor published it, so every process following the state has it."""
        return self.get(sid, _LOCAL) != _LOCAL

    def reset(self, entries: Iterable[tuple[str, Revocation]]) -> None:
        self.clear()
        self.update((sid, value.expires) for sid, value in entries)


class _Batch:
    """Applies entries onto a copy of the current State, copying only what they touch."""

    __slots__ = ("changes", "keyed", "state")

    def __init__(self, state: State) -> None:
        self.state = state
        self.keyed: dict[str, dict[str, Payload]] = {}  # State attribute -> its new mapping, once touched
        self.changes: dict[str, Payload | None] = {}

    def apply(self, entry: StateEntry, revocations: Revocations) -> None:
        if entry.namespace is Namespace.REVOKED:
            revocations.apply(entry.name, entry.value)  # type: ignore[arg-type]
        elif entry.namespace in _KEYED:
            attribute = _KEYED[entry.namespace]
            mapping = self.keyed.get(attribute)
            if mapping is None:
                mapping = self.keyed[attribute] = dict(getattr(self.state, attribute))
            if entry.value is None:
                mapping.pop(entry.name, None)
            else:
                mapping[entry.name] = entry.value
        else:
            self.changes[_SINGLETONS[entry.namespace]] = entry.value

    def result(self, seq: int) -> State:
        changes: dict[str, object] = dict(self.changes)
        for attribute, mapping in self.keyed.items():
            changes[attribute] = MappingProxyType(mapping)
        return replace(self.state, seq=seq, **changes)  # type: ignore[arg-type]


class Replica:
    """Subscribes first, then snapshots; drops deltas not newer than the snapshot; re-snapshots on a gap
    or when a heartbeat shows it is behind. ``on_change`` sees every new State, once per applied batch."""

    __slots__ = ("_codec", "_counter", "_dealer", "_on_change", "_pending", "_sender", "_state", "_sub", "_tasks",
                 "_timeout", "revocations", "snapshots")

    def __init__(
        self,
        ctx: zmq.asyncio.Context,
        endpoints: Endpoints,
        sender: Sender,
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
        self._sender = sender
        self._codec = Codec()
        self._state = State()
        self._on_change = on_change
        self._timeout = request_timeout
        self._pending: dict[int, asyncio.Future[Envelope]] = {}
        self._counter = itertools.count(1)
        self._tasks: list[asyncio.Task[None]] = []
        self.revocations = Revocations()
        self.snapshots = 0

    @property
    def state(self) -> State:
        return self._state

    @property
    def sender(self) -> Sender:
        return self._sender

    @sender.setter
    def sender(self, sender: Sender) -> None:
        self._sender = sender  # a standby becomes a worker

    async def start(self) -> State:
        """Take the first snapshot and start following deltas; returns the first State."""
        self._tasks.append(watched(asyncio.create_task(self._read_replies(), name="bus-replies")))
        await self._snapshot()
        self._tasks.append(watched(asyncio.create_task(self._follow(), name="bus-follow")))
        return self._state

    async def request(self, kind: Kind, build: Callable[[int], Payload], timeout: float | None = None) -> Envelope:
        """Ask the supervisor something (``build`` makes the payload from a request id); raises TimeoutError
        if it does not answer."""
        request_id = next(self._counter)
        future: asyncio.Future[Envelope] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            send_now(self._dealer, self._codec, Envelope.of(kind, self._sender, build(request_id)))
            return await asyncio.wait_for(future, timeout or self._timeout)
        finally:
            self._pending.pop(request_id, None)

    async def _read_replies(self) -> None:
        while True:
            frame = await self._dealer.recv()
            try:
                reply = self._codec.decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            request_id = getattr(reply.payload, "request_id", None)
            future = self._pending.get(request_id) if isinstance(request_id, int) else None
            if future is not None and not future.done():
                future.set_result(reply)

    async def _snapshot(self) -> None:
        while True:
            try:
                reply = await self.request(Kind.SNAPSHOT_REQUEST, Request)
            except TimeoutError:
                log.warning("bus: no snapshot from the supervisor within %.1fs; asking again", self._timeout)
                continue
            snapshot = reply.payload
            if not isinstance(snapshot, Snapshot):
                log.warning("bus: expected a snapshot, got %s; asking again", reply.kind.name)
                continue
            if snapshot.seq >= self._state.seq:  # never go back in time
                batch = _Batch(State())
                self.revocations.reset([])
                for entry in snapshot.entries:
                    batch.apply(entry, self.revocations)
                self._swap(batch.result(snapshot.seq))
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
        batch: _Batch | None = None
        behind = False
        for frame in frames:
            try:
                envelope = self._codec.decode(frame)
            except BusProtocolError as exc:
                log.warning("bus: %s", exc)
                continue
            message = envelope.payload
            if isinstance(message, Heartbeat):
                behind = message.seq > seq
            elif isinstance(message, Delta):
                if message.seq <= seq:
                    continue
                if message.seq != seq + 1:
                    log.info("bus: gap (have %d, got %d); taking a new snapshot", seq, message.seq)
                    behind = True
                    break
                if batch is None:
                    batch = _Batch(self._state)
                batch.apply(message.entry, self.revocations)
                seq = message.seq
                behind = False
        if batch is not None:
            self._swap(batch.result(seq))
        return behind

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._sub.close(0)
        self._dealer.close(0)
