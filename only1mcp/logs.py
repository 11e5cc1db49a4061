"""Logging setup: one line per event, naming the process that wrote it."""

from __future__ import annotations

import logging
import sys
import time

__all__ = ["set_level", "set_role", "setup_logging"]


class _Formatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        line = (f"{stamp}.{int(record.msecs):03d}Z {self.role}[{record.process}] {record.levelname} "
                f"{record.getMessage()}")
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


def setup_logging(role: str, level: str) -> None:
    """Configure the root logger of this process (called once, at process start)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter(role))
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
