"""One replica of a stdio backend, served on a Unix socket by the stdio host.

``isolation: shared``: one child serves every link and every client session. ``isolation: per_session``:
a child per client session (the ``caller`` of each message), started with the session's first call, at
most ``max_sessions`` at once, stopped after ``session_idle`` seconds without calls; the gateway's own
traffic (discovery, probes, each link's ``initialize``) goes to one more child of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from only1mcp.backends.child import RestartPolicy
from only1mcp.background import Background
from only1mcp.bus import Envelope, Kind, Role, Sender
from only1mcp.bus.messages import ChildState, ChildStatus, LinkHello
from only1mcp.bus.stream import FramedChannel
from only1mcp.config.models import StdioBackend
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.codec import JSONDecodeError, dumps, loads
from only1mcp.protocol.jsonrpc import Code

from .stdio_child import SHARED, ChildMux, ChildPolicy
from .stdio_link import Link

__all__ = ["ReplicaServer"]

log = logging.getLogger("only1mcp.stdio")

_FRAME_SLACK = 64 * 1024  # the envelope around a message, beyond the backend's max_event_bytes


class ReplicaServer:
    __slots__ = ("_children", "_ids", "_link_ids", "_links", "_on_status", "_order", "_restart_policy", "_sender",
                 "_server", "_stopping", "_tasks", "backend", "label", "per_session", "replica", "socket_path")

    def __init__(self, backend: StdioBackend, replica: int, socket_path: Path,
                 on_status: Callable[[ChildStatus], None]) -> None:
        self.backend = backend
        self.replica = replica
        self.socket_path = socket_path
        self.label = backend.name if backend.replicas == 1 else f"{backend.name}#{replica}"
        # A changed backend gets a new server: read once, not from the settings model on every message.
        self.per_session = backend.isolation == "per_session"
        self._on_status = on_status
        self._sender = Sender(Role.STDIO_HOST, -1, os.getpid())
        self._links: dict[int, Link] = {}
        self._link_ids = itertools.count(1)
        self._ids = itertools.count(1)
        self._children: dict[str | None, ChildMux] = {}  # by owner: SHARED, a session id, or None (the gateway)
        self._order: list[str] = []  # session children, least recently used first
        self._restart_policy = RestartPolicy.of(backend)
        self._server: asyncio.AbstractServer | None = None
        self._stopping = False
        self._tasks = Background(f"replica {self.label}")

    @property
    def pid(self) -> int | None:
        shared = self._children.get(SHARED)
        return shared.pid if shared is not None else None

    @property
    def state(self) -> ChildState:
        shared = self._children.get(SHARED if not self.per_session else None)
        return shared.state if shared is not None else ChildState.STARTING

    @property
    def waiting(self) -> int:
        """Requests its children made of clients, still waiting for an answer."""
        return sum(mux.waiting for mux in self._children.values())

    def describe(self) -> dict[str, Any]:
        return {owner if owner is not None else "gateway": mux.describe()
                for owner, mux in self._children.items()} | {"links": len(self._links)}

    # ------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self._server = await asyncio.get_running_loop().create_unix_server(self._accept, path=str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        if self.per_session:
            self._child(None)  # the gateway's own child: discovery, probes, initialize
        else:
            backend = self.backend
            idle = backend.idle_shutdown
            self._add(SHARED, ChildPolicy(start_now=not backend.lazy, restart=True, idle_after=idle))

    async def stop(self, drain: float = 0.0) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        await asyncio.gather(*(mux.stop(drain) for mux in list(self._children.values())))
        await self._tasks.close()
        for link in list(self._links.values()):
            link.channel.close()
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()

    def _add(self, owner: str | None, policy: ChildPolicy) -> ChildMux:
        ident = next(self._ids)
        label = self.label if owner in (SHARED, None) else f"{self.label} session {owner[:8]}"
        mux = ChildMux(ident, self.backend, label, policy, owner, self._child_state, self._restart_policy,
                       self._tasks)
        self._children[owner] = mux
        mux.start()
        return mux

    def _child(self, owner: str | None) -> ChildMux | None:
        """The child serving ``owner`` (per_session); None when every child is busy with other sessions."""
        mux = self._children.get(owner if self.per_session else SHARED)
        if not self.per_session:
            return mux
        if owner is None:
            return mux or self._add(None, ChildPolicy(start_now=True, restart=True, idle_after=None))
        if mux is not None:
            self._order.remove(owner)
            self._order.append(owner)
            return mux
        if len(self._order) >= self.backend.max_sessions and not self._evict():
            return None
        self._order.append(owner)
        return self._add(owner, ChildPolicy(start_now=True, restart=False, idle_after=self.backend.session_idle))

    def _evict(self) -> bool:
        """Stop the least recently used session child with no call in flight, to make room."""
        for owner in self._order:
            mux = self._children[owner]
            if not mux.busy:
                log.info("backend '%s': stopping the child of an idle session to make room for a new one "
                         "(max_sessions %d)", self.label, self.backend.max_sessions)
                self._forget(owner)
                self._tasks.spawn(mux.stop(), "evict")
                return True
        return False

    def _forget(self, owner: str | None) -> None:
        self._children.pop(owner, None)
        if owner in self._order:
            self._order.remove(owner)

    def _child_state(self, mux: ChildMux, state: ChildState) -> None:
        if self.per_session and mux.owner is not None:
            if not mux.policy.restart and state in (ChildState.IDLE, ChildState.FAILED) \
                    and self._children.get(mux.owner) is mux:
                self._forget(mux.owner)  # a session's child that ended is not restarted; its next call starts one
            self._report(self.state, None, mux.last_error)
            return
        self._report(state, mux.pid, mux.last_error, mux.restarts)

    def _report(self, state: ChildState, pid: int | None, error: str, restarts: int | None = None) -> None:
        if restarts is None:
            gateway = self._children.get(None)
            restarts = gateway.restarts if gateway is not None else 0
        self._on_status(ChildStatus(self.backend.name, self.replica, state, pid, restarts, error,
                                    len(self._order)))

    # ------------------------------------------------------------ links

    def _accept(self) -> FramedChannel:
        """The protocol of a new connection: a link."""
        channel = FramedChannel(f"link to '{self.label}'", self._sender, self.backend.max_event_bytes + _FRAME_SLACK)
        link = Link(next(self._link_ids), channel)
        self._links[link.ident] = link
        channel.on_envelope = functools.partial(self._hello, link)
        channel.on_fields(Kind.LINK_SEND, functools.partial(self._from_link, link))
        channel.on_close = lambda exc: self._drop_link(link)
        return channel

    def _drop_link(self, link: Link) -> None:
        self._links.pop(link.ident, None)
        for mux in list(self._children.values()):
            mux.drop_link(link)

    def _hello(self, link: Link, envelope: Envelope) -> None:
        """A frame other than LINK_SEND: the link's hello, which says what it is for."""
        if isinstance(envelope.payload, LinkHello):
            link.hello(envelope.payload.purpose)
            return
        log.warning("link to '%s': unexpected %s", self.label, envelope.kind.name)

    def _from_link(self, link: Link, caller: str | None, raw: bytes) -> None:
        """A LINK_SEND frame's fields: a message for the child, and the client session it is for."""
        try:
            parsed = loads(raw)
        except JSONDecodeError:
            log.warning("link to '%s': a message that is not JSON was dropped", self.label)
            return
        if not isinstance(parsed, dict):
            log.warning("link to '%s': a message that is not a JSON-RPC object was dropped", self.label)
            return
        self._route(link, caller, raw, parsed)

    def _route(self, link: Link, caller: str | None, raw: bytes, message: dict[str, Any]) -> None:
        method = message.get("method")
        if method is None:  # a client's answer to a child's request: our id names the child
            mux = self._answering(message.get("id"))
            if mux is not None:
                mux.handle(link, caller, raw, message)
            return
        if method == "notifications/cancelled" and "id" not in message:
            params = message.get("params")
            key = params.get("requestId") if isinstance(params, dict) else None
            for mux in list(self._children.values()):
                if mux.cancelled(key, raw):
                    return
            return
        owner = None if caller is None or not link.answers_clients or method == "initialize" else caller
        mux = self._child(owner)
        if mux is None:
            if "id" in message:
                link.receive(dumps(jsonrpc.error_message(
                    message["id"], Code.BACKEND_UNAVAILABLE,
                    f"backend '{self.label}': all {self.backend.max_sessions} session children are busy with calls "
                    "of other sessions (isolation: per_session, max_sessions); try again when one finishes")),
                    None, caller)
            return
        mux.handle(link, caller, raw, message)

    def _answering(self, request_id: Any) -> ChildMux | None:
        """The child that made the request our id ``h<child>.<n>`` names."""
        if not isinstance(request_id, str) or not request_id.startswith("h"):
            return None
        ident = request_id[1:].partition(".")[0]
        return next((mux for mux in self._children.values() if str(mux.ident) == ident), None)
