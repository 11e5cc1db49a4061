"""What a worker's request handlers share: its identity, the state replica and change notification."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable

from only1mcp.bus import Replica, State
from only1mcp.spec import WorkerSpec

__all__ = ["WorkerContext"]


class WorkerContext:
    """Read by every handler; written only by the state replica's change callback."""

    __slots__ = ("_changed", "in_flight", "pid", "replica", "requests", "spec", "started_at", "state")

    def __init__(self, spec: WorkerSpec, replica: Replica) -> None:
        self.spec = spec
        self.replica = replica
        self.pid = os.getpid()
        self.started_at = time.time()
        self.state = replica.state
        self.in_flight = 0  # requests being handled now (drain and load visibility)
        self.requests = 0  # requests handled since start
        self._changed = asyncio.Event()

    def on_state(self, state: State) -> None:
        self.state = state
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # wakes every waiter; later waiters wait on the new event

    async def wait_for_config(self, version: int, timeout: float) -> bool:
        """Wait until this worker holds config ``version`` or later; False on timeout."""
        return await self.wait_for(lambda: self.state.config_version >= version, timeout)

    async def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Wait until ``predicate`` holds, checked after each state change here; False on timeout."""
        deadline = time.monotonic() + timeout
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return predicate()
        return True
