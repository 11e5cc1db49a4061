"""This worker's sessions to the backends, started on first use and shared by all its clients."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from only1mcp.backends.base import BackendUnavailable, Message
from only1mcp.backends.child import CHILD_CAPABILITIES
from only1mcp.backends.credentials import Credentials
from only1mcp.backends.factory import AnyBackend, make_transport, runs_per_worker
from only1mcp.backends.session import BackendSession, Pending
from only1mcp.background import watched
from only1mcp.bus.messages import LinkPurpose, Sender
from only1mcp.config.models import StdioBackend
from only1mcp.http.client import Http1Pool
from only1mcp.sessions import SessionInfo

from .children import ChildKeeper

__all__ = ["BackendPool", "RequestHandler"]

log = logging.getLogger("only1mcp.worker")

# (backend name, backend session, message, related call or None, the client session it belongs to or None)
RequestHandler = Callable[[str, BackendSession, Message, Pending | None, str | None], None]
# a backend -> the gateway's token for it (None: it has no oauth)
CredentialsFor = Callable[[AnyBackend], Credentials | None]


class BackendPool:
    """One session per (backend, replica, capability profile) for remote backends: a backend is offered
    only what the client declared. Stdio backends have one shared child, reached through the stdio host,
    so one session per replica serves every profile; a per_worker stdio backend has a child of this
    worker per replica, kept running by the ``ChildKeeper``."""

    __slots__ = ("_backends", "_children", "_credentials", "_http", "_on_notification", "_on_request", "_runtime_dir",
                 "_sender", "_sessions", "_starting")

    def __init__(self, runtime_dir: Path, http: Http1Pool, on_request: RequestHandler,
                 on_notification: RequestHandler, sender: Sender,
                 credentials: CredentialsFor = lambda _backend: None) -> None:
        self._runtime_dir = runtime_dir
        self._credentials = credentials
        self._sender = sender
        self._http = http
        self._on_request = on_request
        self._on_notification = on_notification
        self._backends: dict[str, AnyBackend] = {}
        self._sessions: dict[tuple[str, int, tuple[str, ...]], BackendSession] = {}
        self._starting: dict[tuple[str, int, tuple[str, ...]], asyncio.Task[BackendSession]] = {}
        self._children = ChildKeeper(lambda name, replica: self.session(name, None, replica))

    def configure(self, backends: dict[str, AnyBackend]) -> None:
        """Adopt a new config: sessions of removed or changed backends are closed (calls in flight finish
        on them first, since closing waits for nothing but new calls go to new sessions)."""
        for key, session in list(self._sessions.items()):
            if backends.get(key[0]) != self._backends.get(key[0]):
                del self._sessions[key]
                watched(asyncio.get_running_loop().create_task(self._close_when_idle(session)))
        self._backends = backends
        self._children.configure({name: b for name, b in backends.items() if runs_per_worker(b)})

    def restart(self, name: str) -> None:
        """An operator's restart of a per_worker stdio backend: this worker's children of it are replaced
        (calls in flight finish on the old ones, new calls go to new ones)."""
        backend = self._backends.get(name)
        if not isinstance(backend, StdioBackend) or not runs_per_worker(backend):
            return  # a shared child is restarted by the stdio host
        for key, session in list(self._sessions.items()):
            if key[0] == name:
                del self._sessions[key]
                session.on_closed = None  # its end is ordered, not an exit for the restart policy to count
                watched(asyncio.get_running_loop().create_task(self._close_when_idle(session)))
        self._children.restart(backend)

    def known(self, name: str) -> AnyBackend | None:
        return self._backends.get(name)

    async def session(self, name: str, client: SessionInfo | None, replica: int = 0) -> BackendSession:
        backend = self._backends.get(name)
        if backend is None:
            raise BackendUnavailable(f"backend '{name}' is not configured (it may have been removed)")
        key = (name, replica, () if isinstance(backend, StdioBackend) or client is None else client.profile)
        session = self._sessions.get(key)
        if session is not None and not session.closed:
            return session
        task = self._starting.get(key)
        if task is None:
            refusal = self._children.refusal(name, replica) if runs_per_worker(backend) else None
            if refusal is not None:
                raise BackendUnavailable(refusal, sent=False)
            task = asyncio.get_running_loop().create_task(self._start(backend, replica, key))
            self._starting[key] = task
            task.add_done_callback(lambda _t: self._starting.pop(key, None))
        return await asyncio.shield(task)

    async def _start(self, backend: AnyBackend, replica: int, key: tuple[str, int, tuple[str, ...]]) \
            -> BackendSession:
        transport = make_transport(backend, replica, self._runtime_dir, self._http, self._sender, LinkPurpose.CALLS,
                                   self._credentials(backend))
        capabilities: dict[str, Any] = {name: {} for name in key[2]}
        if "elicitation" in capabilities:
            capabilities["elicitation"] = {"form": {}, "url": {}}
        if runs_per_worker(backend):  # what the stdio host declares to a shared child, for the same reasons
            capabilities = CHILD_CAPABILITIES
        session = BackendSession(transport, backend.name, capabilities, startup_timeout=backend.timeouts.startup)
        session.replica = replica
        name = backend.name
        session.on_request = lambda message, related, caller: self._on_request(name, session, message, related,
                                                                               caller)
        session.on_notification = lambda message, related, caller: self._on_notification(name, session, message,
                                                                                         related, caller)
        try:
            await asyncio.wait_for(session.start(), backend.timeouts.startup)
        except TimeoutError:
            await session.close()
            raise BackendUnavailable(f"backend '{name}' did not finish initialize within "
                                     f"{backend.timeouts.startup:g}s (timeouts.startup)") from None
        except BaseException:
            await session.close()
            raise
        self._sessions[key] = session
        if runs_per_worker(backend):
            self._children.started(backend, replica, session)
        return session

    def children(self) -> dict[str, dict[str, object]]:
        """This worker's own children of per_worker stdio backends (for admin status)."""
        return self._children.describe()

    def sessions_of(self, name: str) -> list[BackendSession]:
        return [s for k, s in self._sessions.items() if k[0] == name and not s.closed]

    async def _close_when_idle(self, session: BackendSession) -> None:
        await session.drained()
        await session.close()

    async def close(self) -> None:
        await self._children.close()
        for task in self._starting.values():
            task.cancel()
        await asyncio.gather(*(s.close() for s in self._sessions.values()), return_exceptions=True)
        self._sessions.clear()
