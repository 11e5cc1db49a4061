"""Warm standby workers: booted and following state, not bound, ready to take a dead worker's slot.

A worker's boot is mostly imports (0.7 s of CPU here); under load on a small machine that becomes
seconds. A standby pays it in advance, so failover costs one bus message and a bind.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from .slots import Backoff

__all__ = ["StandbyPool"]

log = logging.getLogger("only1mcp.supervisor")


class _Standby:
    __slots__ = ("process", "ready", "started")

    def __init__(self, process: BaseProcess) -> None:
        self.process = process
        self.ready = False
        self.started = time.monotonic()


class StandbyPool:
    """Keeps ``size`` standby processes; ``take()`` hands over a ready one (its exit is then the slot's)."""

    __slots__ = ("_backoff", "_members", "_retry_at", "_spawn", "_stopping", "_wake", "size")

    def __init__(self, size: int, spawn: Callable[[], BaseProcess], wake: Callable[[], None]) -> None:
        self.size = size
        self._spawn = spawn
        self._wake = wake
        self._members: dict[int, _Standby] = {}
        self._backoff = Backoff()
        self._retry_at = 0.0
        self._stopping = False

    def fill(self, stopping: bool) -> None:
        self._stopping = self._stopping or stopping
        if self._stopping or time.monotonic() < self._retry_at:
            return
        while len(self._members) < self.size:
            process = self._spawn()
            member = _Standby(process)
            self._members[process.pid or 0] = member
            asyncio.get_running_loop().add_reader(process.sentinel, self._on_exit, member)
            log.info("standby worker started (pid %d)", process.pid)

    def mark_ready(self, pid: int) -> None:
        member = self._members.get(pid)
        if member is not None:
            member.ready = True

    def take(self) -> BaseProcess | None:
        for pid, member in self._members.items():
            if member.ready and member.process.is_alive():
                del self._members[pid]
                asyncio.get_running_loop().remove_reader(member.process.sentinel)
                return member.process
        return None

    def _on_exit(self, member: _Standby) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(member.process.sentinel)
        member.process.join(0)
        if member.process.exitcode is None:
            loop.call_later(0.005, self._on_exit, member)
            return
        pid = member.process.pid or 0
        if self._members.pop(pid, None) is None:
            return
        code = member.process.exitcode
        member.process.close()
        self._wake()
        if self._stopping:
            return
        delay = self._backoff.next_delay(time.monotonic() - member.started)
        self._retry_at = time.monotonic() + delay
        log.warning("standby worker (pid %d) exited with code %s; replacing it in %.2fs", pid, code, delay)

    def processes(self) -> list[BaseProcess]:
        return [m.process for m in self._members.values()]

    def describe(self) -> list[dict[str, Any]]:
        return [{"pid": pid, "ready": m.ready} for pid, m in self._members.items()]
