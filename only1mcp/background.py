"""Background tasks whose failures are never lost.

``asyncio`` keeps only weak references to tasks and reports an exception nobody awaited only when the
task is garbage collected, if ever. Every long-running or fire-and-forget task of the gateway is started
here instead: held until it ends, and an exception it ends with is logged once with the task's name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["Background", "watched"]

log = logging.getLogger("only1mcp.tasks")
T = TypeVar("T")


def _log_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        exc = task.exception()
        log.error("background task %s failed: %s", task.get_name(), exc, exc_info=exc)


def watched(task: asyncio.Task[T]) -> asyncio.Task[T]:
    """A task its owner holds (and cancels) itself, whose failure must still be logged, not lost."""
    task.add_done_callback(_log_failure)
    return task


class Background:
    """A set of tasks owned by one component; ``close()`` cancels what is left."""

    __slots__ = ("_name", "_tasks", "failures")

    def __init__(self, name: str) -> None:
        self._name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self.failures = 0

    def spawn(self, coroutine: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        task = asyncio.get_running_loop().create_task(coroutine, name=f"{self._name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._ended)
        return task

    def _ended(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self.failures += 1
            _log_failure(task)

    def __len__(self) -> int:
        return len(self._tasks)

    async def close(self) -> None:
        """Cancel every task still running and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
