"""This worker's own children of ``per_worker`` stdio backends: started with the worker (or by the first
call, for a lazy backend) and restarted when they exit, backing off while they keep exiting and failed for
``failed_retry`` seconds after too many exits."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from only1mcp.backends.base import BackendError
from only1mcp.backends.child import RestartPolicy
from only1mcp.backends.session import BackendSession
from only1mcp.background import watched
from only1mcp.config.models import StdioBackend

__all__ = ["ChildKeeper"]

log = logging.getLogger("only1mcp.stdio")

# (backend name, replica) -> a started session: the pool's, which calls share
Starter = Callable[[str, int], Awaitable[BackendSession]]
_Key = tuple[str, int]


class ChildKeeper:
    """Watches the sessions of this worker's children and starts them again when they end.

    Calls start a child themselves when none runs (a lazy backend's first call, or a call between two
    restarts); while a backend is failed they are refused at once instead of spawning a child each.
    """

    __slots__ = ("_backends", "_failed", "_pids", "_policies", "_start", "_tasks")

    def __init__(self, start: Starter) -> None:
        self._start = start
        self._backends: dict[str, StdioBackend] = {}
        self._policies: dict[_Key, RestartPolicy] = {}
        self._tasks: dict[_Key, asyncio.Task[None]] = {}  # pending (re)starts
        self._failed: dict[_Key, tuple[float, str]] = {}  # -> (next attempt at, last error)
        self._pids: dict[_Key, int] = {}  # children running now

    def configure(self, backends: dict[str, StdioBackend]) -> None:
        """Adopt the per_worker backends of a new config; start the children of added, eager ones."""
        for key in [k for k in self._policies if backends.get(k[0]) != self._backends.get(k[0])]:
            self._forget(key)
        added = [b for b in backends.values() if self._backends.get(b.name) != b]
        self._backends = dict(backends)
        for backend in added:
            for replica in range(backend.replicas):
                self._policies[(backend.name, replica)] = RestartPolicy.of(backend)
                if not backend.lazy:
                    self._schedule(backend, replica, 0.0)

    def restart(self, backend: StdioBackend) -> None:
        """Start this worker's children of ``backend`` again now, with a fresh restart policy (an operator's
        restart; the pool closes the old ones)."""
        for replica in range(backend.replicas):
            key = (backend.name, replica)
            self._forget(key)
            self._policies[key] = RestartPolicy.of(backend)
            self._schedule(backend, replica, 0.0)

    def _forget(self, key: _Key) -> None:
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()
        self._policies.pop(key, None)
        self._failed.pop(key, None)
        self._pids.pop(key, None)

    def describe(self) -> dict[str, dict[str, object]]:
        """This worker's children, for admin status: ``backend#replica`` -> pid and state."""
        described: dict[str, dict[str, object]] = {}
        for key, policy in self._policies.items():
            pid = self._pids.get(key)
            state = ("failed" if key in self._failed else "running" if pid is not None
                     else "restarting" if key in self._tasks else "idle")
            described[f"{key[0]}#{key[1]}"] = {"pid": pid, "state": state, "recent_exits": policy.recent_exits}
        return described

    def refusal(self, name: str, replica: int) -> str | None:
        """Why a call may not start a child now (the backend failed in this worker), or None."""
        failed = self._failed.get((name, replica))
        if failed is None:
            return None
        retry_at, error = failed
        backend = self._backends[name]
        return (f"backend '{name}' failed: {backend.max_failures} exits within {backend.failure_window:g}s "
                f"(last: {error}); next attempt in {max(0.0, retry_at - time.monotonic()):.0f}s")

    def started(self, backend: StdioBackend, replica: int, session: BackendSession) -> None:
        """A child of ours answered initialize: watch it."""
        key = (backend.name, replica)
        if key not in self._policies or self._backends.get(backend.name) != backend:
            return  # a config change raced the start; the pool closes that session
        began = time.monotonic()
        pid = getattr(session.transport, "pid", None)
        if isinstance(pid, int):
            self._pids[key] = pid
        session.on_closed = lambda exc: self._exited(backend, replica, began, str(exc) if exc else "exited")

    def _exited(self, backend: StdioBackend, replica: int, began: float, error: str) -> None:
        key = (backend.name, replica)
        self._pids.pop(key, None)
        policy = self._policies.get(key)
        if policy is None:
            return  # removed or changed: not restarted
        delay, failed = policy.exited(began, time.monotonic())
        if failed:
            self._failed[key] = (time.monotonic() + delay, error)
            log.error("backend '%s' failed in this worker: %d exits within %gs (last: %s); next attempt in %gs",
                      backend.name, backend.max_failures, backend.failure_window, error, delay)
        else:
            log.warning("backend '%s' %s; restarting in %.1fs", backend.name, error, delay)
        self._schedule(backend, replica, delay)

    def _schedule(self, backend: StdioBackend, replica: int, delay: float) -> None:
        key = (backend.name, replica)
        if key not in self._tasks:
            self._tasks[key] = watched(asyncio.get_running_loop().create_task(
                self._restart(backend, replica, delay), name=f"child-{backend.name}-{replica}"))

    async def _restart(self, backend: StdioBackend, replica: int, delay: float) -> None:
        key = (backend.name, replica)
        await asyncio.sleep(delay)
        self._failed.pop(key, None)
        # From here an exit schedules the next start itself (two starts at once share the pool's one).
        if self._tasks.get(key) is asyncio.current_task():
            del self._tasks[key]
        began = time.monotonic()
        try:
            await self._start(backend.name, replica)  # the pool calls started() on success
        except BackendError as exc:
            self._exited(backend, replica, began, exc.message.removeprefix(f"backend '{backend.name}' "))

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for key in list(self._policies):
            self._forget(key)
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
