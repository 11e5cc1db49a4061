"""The one loop that writes a queue of events to an SSE response held open by this worker (a session's GET
stream, a legacy HTTP+SSE stream, a subscriptions/listen stream), with keep-alive comments while idle."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from only1mcp.protocol.constants import SSE_KEEPALIVE

__all__ = ["pump"]

T = TypeVar("T")
_KEEPALIVE_LINE = b": keep-alive\n\n"


async def pump(queue: asyncio.Queue[T | None], write: Callable[[bytes], Awaitable[None]],
               render: Callable[[T], bytes | None], keepalive: float = SSE_KEEPALIVE) -> None:
    """Write ``render(item)`` for each item until a None arrives (``render`` may skip one by returning None);
    raises what ``write`` raises when the client is gone."""
    while True:
        try:
            item = await asyncio.wait_for(queue.get(), keepalive)
        except TimeoutError:
            await write(_KEEPALIVE_LINE)
            continue
        if item is None:
            return
        data = render(item)
        if data is not None:
            await write(data)
