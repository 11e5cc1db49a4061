"""What a worker's request handlers share: its identity, the state replica and change notification."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

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
        self._changed = asyncio.Condition()

    @property
    def config(self) -> dict[str, Any]:
        return self.state.get("config") or {}

    def on_state(self, state: State) -> None:
        self.state = state
        asyncio.get_running_loop().create_task(self._notify())

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_for_config(self, version: int, timeout: float) -> bool:
        """Wait until this worker holds config ``version`` or later; False on timeout."""
        return await self.wait_for_state(lambda state: (state.get("config") or {}).get("version", 0) >= version,
                                         timeout)

    async def wait_for_state(self, predicate: Callable[[State], bool], timeout: float) -> bool:
        """Wait until the state this worker holds satisfies ``predicate``; False on timeout."""
        if predicate(self.state):
            return True
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: predicate(self.state)), timeout)
            except TimeoutError:
                return False
        return True
