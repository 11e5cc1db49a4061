"""Wait on conditions with deadlines, never on fixed sleeps.

Sync tests use ``wait_until``. Async tests use ``eventually`` (and ``holds``): ``wait_until`` sleeps with
``time.sleep``, which would stop the test's event loop, and with it every client, server or stream reader
the test runs on that loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


async def eventually(predicate: Callable[[], T | Awaitable[T]], timeout: float, what: str,
                     interval: float = 0.02) -> T:
    """``wait_until`` for async tests: ``predicate`` may be a plain or an async function, and the loop keeps
    running between polls."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(interval)


# The name this helper had before it also took plain predicates; kept for tests written against it.
async_wait_until = eventually


async def holds(predicate: Callable[[], object | Awaitable[object]], seconds: float, what: str,
                interval: float = 0.1) -> None:
    """Assert that ``predicate`` stays truthy for ``seconds``, checking every ``interval``.

    For behaviours that are the absence of something (no second reload, no restart of a failed child):
    the window is the time in which the wrong behaviour would certainly have shown, and the check fails at
    the first poll that sees it.
    """
    deadline = time.monotonic() + seconds
    while True:
        value = predicate()
        if inspect.isawaitable(value):
            value = await value
        if not value:
            raise AssertionError(f"no longer true: {what}")
        if time.monotonic() >= deadline:
            return
        await asyncio.sleep(interval)
