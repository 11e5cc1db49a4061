"""A stdio child's pipes: its stdout cut into lines as the pipe delivers it.

asyncio's subprocess streams hand stdout to a ``StreamReader``, and a task awaiting ``readline`` copies each
line out of it: a task wake-up, two coroutine frames and the reader's buffer bookkeeping for every message
a child writes (on the shared stdio path that is every call's answer). Here the pipe's bytes are split
where they arrive and each line is handed on at once. stdin and stderr stay asyncio's streams.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

__all__ = ["StdoutLines", "exec_child"]

log = logging.getLogger("only1mcp.backend")

_STDOUT = 1


class StdoutLines:
    """The lines a child writes, each with its newline, to ``on_line`` as they complete; then the end to
    ``on_end`` once: None at EOF (a last line without a newline is handed on first), the pipe's error, or a
    ``LineTooLong`` for a line of more than ``limit`` bytes (nothing is read after it). What arrives before
    ``attach`` is kept for it; after ``detach`` nothing is handed on."""

    __slots__ = ("_buffer", "_done", "_end", "_ended", "_limit", "_on_end", "_on_line")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._buffer = bytearray()  # the start of a line whose newline has not arrived (or, before attach, all)
        self._on_line: Callable[[bytes], None] | None = None
        self._on_end: Callable[[BaseException | None], None] | None = None
        self._done = False  # detached, or the end was handed on
        self._ended = False  # the pipe ended before anyone was attached: _end says how
        self._end: BaseException | None = None

    def attach(self, on_line: Callable[[bytes], None], on_end: Callable[[BaseException | None], None]) -> None:
        if self._done or self._on_line is not None:
            raise RuntimeError("a child's stdout is read once")
        self._on_line, self._on_end = on_line, on_end
        early, self._buffer = bytes(self._buffer), bytearray()
        if early:
            self._lines(early, on_line)
        if self._ended and not self._done:
            self._finish(self._end)

    def detach(self) -> None:
        """Hand nothing on any more (the reader is closing)."""
        self._done = True
        self._on_line = self._on_end = None

    def feed(self, data: bytes) -> None:
        """Bytes from the pipe."""
        on_line = self._on_line
        if on_line is None:
            if not self._done:
                self._buffer += data  # not attached yet
            return
        buffer = self._buffer
        if buffer:
            buffer += data
            if data.find(b"\n") < 0:  # still no end to the line: only its length to check
                if len(buffer) > self._limit:
                    self._finish(LineTooLong(f"a line over {self._limit} bytes"))
                return
            data = bytes(buffer)
            buffer.clear()
        self._lines(data, on_line)

    def _lines(self, data: bytes, on_line: Callable[[bytes], None]) -> None:
        start = 0
        end = data.find(b"\n")
        while end >= 0:
            if end - start > self._limit:
                self._finish(LineTooLong(f"a line over {self._limit} bytes"))
                return
            on_line(data[start:end + 1])
            if self._done:
                return  # its reader closed
            start = end + 1
            end = data.find(b"\n", start)
        if start < len(data):
            self._buffer += data[start:] if start else data
            if len(self._buffer) > self._limit:
                self._finish(LineTooLong(f"a line over {self._limit} bytes"))

    def end(self, exc: BaseException | None) -> None:
        """The pipe closed (``exc``: why, when it broke)."""
        if self._done or self._ended:
            return
        if self._on_line is None:
            self._ended, self._end = True, exc  # told to whoever attaches
            return
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        on_line, on_end = self._on_line, self._on_end
        last, self._buffer = bytes(self._buffer), bytearray()
        self.detach()
        if exc is None and last and on_line is not None:
            on_line(last)  # a last line without its newline
        if on_end is not None:
            on_end(exc)


class LineTooLong(ValueError):
    """A child wrote a line longer than its limit (its reader stops there)."""


class _ChildProtocol(asyncio.subprocess.SubprocessStreamProtocol):
    """asyncio's subprocess protocol (stdin and stderr as streams, exit, wait), with stdout going to
    ``lines`` instead of a StreamReader."""

    def __init__(self, lines: StdoutLines, limit: int, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(limit=limit, loop=loop)
        self.lines = lines

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        if fd == _STDOUT:
            self.lines.feed(data)  # type: ignore[arg-type]
        else:
            super().pipe_data_received(fd, data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        if fd == _STDOUT:
            self.lines.end(exc)
        super().pipe_connection_lost(fd, exc)  # its bookkeeping of open pipes, for wait()


async def exec_child(program: str, *args: str, limit: int, **kwargs: Any) -> tuple[asyncio.subprocess.Process,
                                                                                   StdoutLines]:
    """``asyncio.create_subprocess_exec`` with stdin, stdout and stderr piped, whose stdout is read as
    ``StdoutLines`` of at most ``limit`` bytes (``process.stdout`` stays empty)."""
    loop = asyncio.get_running_loop()
    lines = StdoutLines(limit)
    # What create_subprocess_exec does, with the protocol above (the stdlib's own classes: same Process).
    transport, protocol = await loop.subprocess_exec(
        lambda: _ChildProtocol(lines, limit, loop), program, *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, **kwargs)
    return asyncio.subprocess.Process(transport, protocol, loop), lines
