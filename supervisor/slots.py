"""One worker slot: the process in it, its health as the supervisor sees it, and its restart backoff."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from typing import Any

__all__ = ["Backoff", "WorkerSlot"]


@dataclass(slots=True)
class Backoff:
    """Capped exponential backoff with jitter; a worker that stayed up ``stable_after`` resets it.

    The first failure restarts at once (a one-off crash should cost no extra downtime); repeated failures
    wait base, 2*base, 4*base ... up to cap, each scaled by a random 50-100% so slots do not restart in step.
    """

    base: float = 0.1
    cap: float = 30.0
    stable_after: float = 10.0
    failures: int = 0

    def next_delay(self, uptime: float) -> float:
        if uptime >= self.stable_after:
            self.failures = 0
        failures = self.failures
        self.failures += 1
        if failures == 0:
            return 0.0
        return min(self.cap, self.base * (2 ** (failures - 1))) * random.uniform(0.5, 1.0)


@dataclass(slots=True)
class WorkerSlot:
    index: int
    process: BaseProcess | None = None
    pid: int = 0
    started_at: float = 0.0  # wall clock, for display
    started_mono: float = 0.0
    last_heartbeat: float = 0.0
    ready: bool = False
    seq: int = 0
    config_version: int = 0
    requests: int = 0  # as of the worker's last heartbeat
    restarts: int = 0
    restart_at: float | None = None  # monotonic time a replacement is due
    backoff: Backoff = field(default_factory=Backoff)
    children: dict[str, Any] = field(default_factory=dict)  # its per_worker stdio children, as last reported

    @property
    def alive(self) -> bool:
        return self.process is not None

    def started(self, process: BaseProcess) -> None:
        self.process = process
        self.pid = process.pid or 0
        self.started_at = time.time()
        self.started_mono = self.last_heartbeat = time.monotonic()
        self.ready = False
        self.seq = 0
        self.requests = 0
        self.restart_at = None
        self.children = {}

    def describe(self) -> dict[str, Any]:
        return {
            "slot": self.index,
            "pid": self.pid if self.alive else None,
            "seq": self.seq,
            "config_version": self.config_version,
            "requests": self.requests,
            "ready": self.ready and self.alive,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "heartbeat_age": round(time.monotonic() - self.last_heartbeat, 3) if self.alive else None,
            "children": self.children if self.alive else {},  # its own per_worker stdio children
        }
