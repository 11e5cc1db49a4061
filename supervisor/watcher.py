"""Watch the config file and reload when it changes.

inotify watches the file's directory, not the file: editors save by writing a new file and renaming it
over the old one, which a watch on the old inode would miss. Events for the file's name are debounced
(500 ms after the last one), so a burst of saves costs one reload, which validates before anything
changes.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from inotify_simple import INotify, flags

from only1mcp.background import Background

__all__ = ["ConfigWatcher"]

log = logging.getLogger("only1mcp.supervisor")

DEBOUNCE = 0.5
_MASK = flags.CLOSE_WRITE | flags.MOVED_TO | flags.CREATE | flags.DELETE | flags.MODIFY | flags.ATTRIB


class ConfigWatcher:
    __slots__ = ("_debounce", "_inotify", "_name", "_pending", "_reload", "_tasks", "events")

    def __init__(self, path: str | os.PathLike[str], reload: Callable[[], Awaitable[None]], tasks: Background,
                 debounce: float = DEBOUNCE) -> None:
        self._tasks = tasks
        target = Path(path).resolve()
        self._name = target.name
        self._reload = reload
        self._debounce = debounce
        self._pending: asyncio.TimerHandle | None = None
        self._inotify = INotify(nonblocking=True)
        self._inotify.add_watch(str(target.parent), _MASK)
        self.events = 0
        asyncio.get_running_loop().add_reader(self._inotify.fileno(), self._on_events)
        log.info("watching %s for changes", target)

    def _on_events(self) -> None:
        relevant = [e for e in self._inotify.read(timeout=0) if e.name == self._name]
        if not relevant:
            return
        self.events += len(relevant)
        loop = asyncio.get_running_loop()
        if self._pending is not None:
            self._pending.cancel()
        self._pending = loop.call_later(self._debounce, self._fire)

    def _fire(self) -> None:
        self._pending = None
        self._tasks.spawn(self._reload(), "reload")  # a failed reload is logged, not lost

    def close(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
        asyncio.get_running_loop().remove_reader(self._inotify.fileno())
        self._inotify.close()
