"""Logging setup: one line per event, naming the process that wrote it, with repeats held back.

An event that repeats (every call failing while a backend is down, every malformed request of a broken
client) is written at most ``BURST`` times per ``WINDOW`` seconds per pattern; then one line says how
many more were suppressed. A 5-second backend outage under load wrote 45,863 lines before this.

Lines are text (``logging.format: text``) or JSON objects (``json``); a line written while a request is
served names it (``only1mcp.observe.scope``). The access log's lines are never held back: their sampling
bounds them.

This module holds logging's global state (the root handler it installs); nothing else does.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Callable
from typing import Any

from .audit.line import SessionHashes
from .observe.scope import RequestScope, current
from .protocol.codec import dumps

__all__ = ["ACCESS_LOGGER", "BURST", "WINDOW", "RepeatLimiter", "set_format", "set_level", "set_role",
           "setup_logging"]

ACCESS_LOGGER = "only1mcp.access"

WINDOW = 10.0  # seconds
BURST = 5  # lines of one pattern written per window
_PATTERNS_KEPT = 1000  # a bound on memory when messages keep varying in more than their numbers
_NUMBERS = re.compile(r"\d+")


_SLOTTED = re.compile(r"(.+?)-(-?\d+)")  # worker-3; a standby is worker--1 until it adopts a slot


def _stamp(record: logging.LogRecord) -> str:
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(record.created))}.{int(record.msecs):03d}Z"


class _Formatter(logging.Formatter):
    """Text: time, process, level, message, and the request id of a line a request caused (at the end, so
    what reads the start of a line is not disturbed)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_stamp(record)} {self.role}[{record.process}] {record.levelname} {record.getMessage()}"
        scope = _scope_of(record)
        if scope is not None:
            line += f" rid={scope.rid}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class _JsonFormatter(_Formatter):
    """One JSON object per line. ``process`` and ``slot`` come from the role (``worker-3``: worker, 3)."""

    def __init__(self, role: str) -> None:
        super().__init__(role)
        self._hashes = SessionHashes()

    def format(self, record: logging.LogRecord) -> str:
        slotted = _SLOTTED.fullmatch(self.role)
        line: dict[str, Any] = {
            "time": _stamp(record), "level": record.levelname.lower(),
            "process": slotted.group(1) if slotted else self.role, "slot": int(slotted.group(2)) if slotted else None,
            "pid": record.process, "logger": record.name, "message": record.getMessage(),
        }
        scope = _scope_of(record)
        if scope is not None:
            line["request_id"] = scope.rid
            if scope.sid is not None:
                line["session"] = self._hashes.of(scope.sid)
            if scope.backend is not None:
                line["backend"] = scope.backend
            if scope.span is not None:
                line["trace_id"] = scope.span.trace_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            line.update((key, value) for key, value in fields.items() if key not in line)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return dumps(line).decode()


def _scope_of(record: logging.LogRecord) -> RequestScope | None:
    """The request a line belongs to: none for a summary of suppressed lines, which is written along with
    whatever line comes next."""
    return None if getattr(record, "summary", False) else current()


_FORMATTERS: dict[str, type[_Formatter]] = {"text": _Formatter, "json": _JsonFormatter}


class _Window:
    """One pattern's current window: what the summary needs (not the record, which may hold a traceback)."""

    __slots__ = ("example", "level", "lineno", "name", "pathname", "started", "suppressed", "written")

    def __init__(self, started: float, record: logging.LogRecord, example: str) -> None:
        self.started = started
        self.written = 1
        self.suppressed = 0
        self.example = example
        self.name, self.level, self.pathname, self.lineno = record.name, record.levelno, record.pathname, record.lineno


class RepeatLimiter:
    """Decides which records are written. A pattern is the logger, the level and the message with its
    numbers masked (request ids, ports, counts), so "tools/call 7 failed" and "tools/call 8 failed" are
    one pattern while different messages, such as a backend's stderr lines, stay apart."""

    __slots__ = ("_burst", "_clock", "_window", "_windows")

    def __init__(self, window: float = WINDOW, burst: int = BURST,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._burst = burst
        self._clock = clock
        self._windows: dict[tuple[str, int, str], _Window] = {}  # oldest window first

    def admit(self, record: logging.LogRecord) -> tuple[bool, list[logging.LogRecord]]:
        """(whether to write ``record``, the summary lines of windows that ended before it)."""
        now = self._clock()
        summaries = self.expired(now)
        message = record.getMessage()
        key = (record.name, record.levelno, _NUMBERS.sub("#", message))
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= _PATTERNS_KEPT:
                self._windows.pop(next(iter(self._windows)))  # its suppressed count, if any, is lost
            self._windows[key] = _Window(now, record, message)
            return True, summaries
        if window.written < self._burst:
            window.written += 1
            return True, summaries
        window.suppressed += 1
        return False, summaries

    def expired(self, now: float | None = None) -> list[logging.LogRecord]:
        """End the windows that are over; a summary record for each that suppressed something."""
        now = self._clock() if now is None else now
        summaries: list[logging.LogRecord] = []
        windows = self._windows
        while windows:
            key = next(iter(windows))
            window = windows[key]
            if now - window.started < self._window:
                break  # windows are kept in the order they started, so the rest are newer
            del windows[key]
            if window.suppressed:
                summaries.append(self._summary(window))
        return summaries

    def _summary(self, window: _Window) -> logging.LogRecord:
        record = logging.LogRecord(window.name, window.level, window.pathname, window.lineno,
                                   "suppressed %d more lines like this in %.0fs: %s",
                                   (window.suppressed, self._window, window.example), None)
        record.summary = True
        return record


class _Handler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr, through the repeat limiter. A window's summary is written with the next line the process
    logs after the window ends, or when logging shuts down at exit."""

    def __init__(self, limiter: RepeatLimiter) -> None:
        super().__init__(sys.stderr)
        self.limiter = limiter

    def handle(self, record: logging.LogRecord) -> bool:
        if not self.filter(record):
            return False
        self.acquire()
        try:
            if record.name == ACCESS_LOGGER:  # sampled already; held back, it would be one pattern
                self.emit(record)
                return True
            write, summaries = self.limiter.admit(record)
            for summary in summaries:
                self.emit(summary)
            if write:
                self.emit(record)
        finally:
            self.release()
        return write

    def close(self) -> None:
        self.acquire()
        try:
            for summary in self.limiter.expired(float("inf")):
                self.emit(summary)
        finally:
            self.release()
        super().close()


def setup_logging(role: str, level: str, form: str = "text") -> None:
    """Configure the root logger of this process (called once, at process start); ``form``: text or json."""
    handler = _Handler(RepeatLimiter())
    handler.setFormatter(_FORMATTERS[form](role))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


def set_role(role: str) -> None:
    """Rename this process in its log lines (a standby worker becomes worker-N when it adopts slot N)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, _Formatter):
            handler.formatter.role = role


def set_level(level: str) -> None:
    """Apply a reloaded ``server.log_level`` to this process."""
    root = logging.getLogger()
    wanted = logging.getLevelName(level.upper())
    if root.level != wanted:
        root.setLevel(wanted)


def set_format(form: str) -> None:
    """Apply a reloaded ``logging.format`` (text or json) to this process."""
    for handler in logging.getLogger().handlers:
        formatter = handler.formatter
        if isinstance(formatter, _Formatter) and type(formatter) is not _FORMATTERS[form]:
            handler.setFormatter(_FORMATTERS[form](formatter.role))
