"""Slow clients on purpose: connections that send part of a request and then nothing, held open until the
server closes them. Used by the slow-client tests and by bench/slowloris.py."""

from __future__ import annotations

import asyncio
import contextlib
import time
from urllib.parse import urlsplit

__all__ = ["Slowloris", "Victim"]


class Victim:
    """One attacking connection: when its last byte went out, when the server closed it, what it said."""

    __slots__ = ("answer", "closed_at", "sent_at")

    def __init__(self) -> None:
        self.sent_at = 0.0
        self.closed_at = 0.0
        self.answer = b""  # the first bytes the server sent before closing (a 408, say)


class Slowloris:
    """``heads`` connections that send half a request head, ``bodies`` that send a whole head announcing
    ``body_size`` bytes and then half of them; each waits for the server to close it (and with
    ``again``, opens another at once, as an attacker keeping up the pressure would)."""

    def __init__(self, url: str, heads: int, bodies: int, body_size: int = 4 * 1024 * 1024,
                 path: str = "/mcp", again: bool = False) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.heads = [Victim() for _ in range(heads)]
        self.bodies = [Victim() for _ in range(bodies)]
        head = (f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: application/json, text/event-stream\r\n"
                f"Content-Type: application/json\r\nContent-Length: {body_size}\r\n\r\n").encode()
        self._partial_head = head[:len(head) // 2]
        self._partial_body = head + b" " * (body_size // 2)
        self._again = again
        self.reopened = 0
        self._opening = asyncio.Semaphore(200)  # connections being opened at once
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def victims(self) -> list[Victim]:
        return self.heads + self.bodies

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._hold(v, self._partial_head)) for v in self.heads]
        self._tasks += [loop.create_task(self._hold(v, self._partial_body)) for v in self.bodies]

    def open(self) -> int:
        """Connections that have sent their part and are not closed yet."""
        return sum(1 for v in self.victims if v.sent_at and not v.closed_at)

    async def _hold(self, victim: Victim, data: bytes) -> None:
        await self._hold_once(victim, data)
        while self._again:
            self.reopened += 1
            await self._hold_once(victim, data)

    async def _hold_once(self, victim: Victim, data: bytes) -> None:
        victim.closed_at = 0.0
        async with self._opening:
            reader, writer = await asyncio.open_connection(self.host, self.port)
            writer.write(data)
            await writer.drain()
            victim.sent_at = time.monotonic()
        try:
            while chunk := await reader.read(65536):
                victim.answer = (victim.answer + chunk)[:256]
        except ConnectionResetError:
            pass  # closed with unread data in its buffers: still closed by the server
        victim.closed_at = time.monotonic()
        writer.close()

    async def closed(self, timeout: float) -> None:
        """Until every connection was closed by the server; TimeoutError after ``timeout`` seconds."""
        await asyncio.wait_for(asyncio.gather(*self._tasks), timeout)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
