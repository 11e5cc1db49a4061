"""The processes the supervisor starts and keeps: worker slots, standby workers and the stdio host.

One watcher for all of them. Each is spawned with the ``spawn`` start method and watched through its
``Process.sentinel`` (an fd in the event loop; never ``waitpid(-1)``, which would adopt unrelated children
such as multiprocessing's resource tracker). It proves it is alive with heartbeats sent from its own
event loop; one silent for longer than the heartbeat deadline (hung, or stopped with SIGSTOP) is killed,
and its exit is then handled like any other. An exit is classified: a boot error (the process could not
start serving: exit code 3, which the child uses for any exception during boot) stops the gateway
instead of restarting forever; anything else is restarted with capped, jittered backoff, the first time
at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.process import BaseProcess
from typing import Any

from only1mcp.backoff import Backoff
from only1mcp.bus.messages import ProcessReport
from only1mcp.process import run_entry
from only1mcp.spec import EXIT_BOOT

from .procinfo import rss_bytes

__all__ = ["Exit", "Watched", "describe_exit", "restart_backoff"]

log = logging.getLogger("only1mcp.supervisor")

_REAP_RETRY = 0.005  # the sentinel closes a moment before the child can be reaped


def restart_backoff() -> Backoff:
    """A one-off crash costs no downtime; repeated ones wait 0.1 s doubling to 30 s, 50-100% of it so
    processes that failed together do not restart in step; 10 s of stable running starts over."""
    return Backoff(base=0.1, cap=30.0, jitter=0.5, first=0.0, stable_after=10.0)


def describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown status"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


@dataclass(frozen=True, slots=True)
class Exit:
    code: int | None
    uptime: float
    ready: bool  # it had reported that it serves
    pid: int

    @property
    def boot_error(self) -> bool:
        return self.code == EXIT_BOOT

    def describe(self) -> str:
        return describe_exit(self.code)


class Watched:
    """One supervised place (a worker slot, a standby, the stdio host): the process in it now, its
    liveness as the supervisor sees it, and its restart backoff."""

    __slots__ = ("_gone", "_mp", "_on_exit", "backoff", "boot_error", "heard_from", "last_heartbeat", "name",
                 "process", "ready", "report", "restart_at", "restarts", "started_at", "started_mono")

    def __init__(self, name: str, on_exit: Callable[[Watched, Exit], None],
                 mp: multiprocessing.context.SpawnContext) -> None:
        self.name = name
        self._on_exit = on_exit
        self._mp = mp
        self.process: BaseProcess | None = None
        self._gone = asyncio.Event()
        self._gone.set()
        self.started_at = 0.0  # wall clock, for display
        self.started_mono = 0.0
        self.last_heartbeat = 0.0
        self.heard_from = False  # a first heartbeat came: its event loop runs, so it is past booting
        self.ready = False
        self.report: ProcessReport | None = None  # its latest
        self.boot_error = ""  # what it reported before exiting with a boot error
        self.restarts = 0
        self.restart_at: float | None = None  # monotonic time a replacement is due
        self.backoff = restart_backoff()

    @property
    def alive(self) -> bool:
        return self.process is not None

    @property
    def pid(self) -> int:
        return (self.process.pid or 0) if self.process is not None else 0

    def start(self, entry: str, spec: Any) -> None:
        """Spawn ``entry`` (``module:function``, run by only1mcp.process.run_entry) with ``spec``."""
        process = self._mp.Process(target=run_entry, args=(entry, spec), name=f"only1mcp-{self.name.replace(' ', '-')}")
        process.start()
        self.adopt(process)

    def adopt(self, process: BaseProcess, booted: bool = False) -> None:
        """Watch ``process`` in this place (a standby handed over is already booted)."""
        self.process = process
        self.started_at = time.time()
        self.started_mono = self.last_heartbeat = time.monotonic()
        self.heard_from = booted
        self.ready = booted
        self.report = None
        self.boot_error = ""
        self.restart_at = None
        self._gone.clear()
        asyncio.get_running_loop().add_reader(process.sentinel, self._sentinel, process)

    def release(self) -> BaseProcess | None:
        """Stop watching the process without stopping it (it moves to another place)."""
        process, self.process = self.process, None
        if process is not None:
            asyncio.get_running_loop().remove_reader(process.sentinel)
        self._gone.set()
        return process

    def heard(self, report: ProcessReport | None = None) -> None:
        self.last_heartbeat = time.monotonic()
        self.heard_from = True
        if report is not None:
            self.report = report

    def silent_for(self, now: float) -> float:
        return now - self.last_heartbeat if self.alive else 0.0

    def signal(self, sig: int) -> None:
        if self.process is not None and self.process.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, sig)

    def schedule_restart(self, uptime: float) -> float:
        delay = self.backoff.next_delay(uptime)
        self.restart_at = time.monotonic() + delay
        return delay

    def due(self, now: float) -> bool:
        return not self.alive and self.restart_at is not None and self.restart_at <= now

    def _sentinel(self, process: BaseProcess) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(process.sentinel)
        process.join(0)
        if process.exitcode is None:
            loop.call_later(_REAP_RETRY, self._reap, process)
            return
        self._reap(process)

    def _reap(self, process: BaseProcess) -> None:
        process.join(0)
        if process.exitcode is None:
            asyncio.get_running_loop().call_later(_REAP_RETRY, self._reap, process)
            return
        code = process.exitcode
        pid = process.pid or 0
        process.close()
        if self.process is not process:
            return  # released meanwhile
        self.process = None
        self._gone.set()
        exit_ = Exit(code, time.monotonic() - self.started_mono, self.ready, pid)
        self.ready = False
        self._on_exit(self, exit_)

    async def wait_gone(self, timeout: float) -> bool:
        """Until the process has exited and been reaped (True) or ``timeout`` passed (False)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._gone.wait(), timeout)
        return not self.alive

    def kill_now(self) -> None:
        """SIGKILL and reap synchronously (the last resort of a stop that timed out)."""
        process = self.process
        if process is None:
            return
        self.signal(signal.SIGKILL)
        process.join(5)
        if self.process is process and process.exitcode is not None:
            self._reap(process)

    def describe(self) -> dict[str, Any]:
        report = self.report
        return {
            "pid": self.pid or None,
            "rss_bytes": rss_bytes(self.pid) if self.pid and self.alive else None,
            "ready": self.ready and self.alive,
            "started_at": self.started_at,
            "restarts": self.restarts,
            "heartbeat_age": round(time.monotonic() - self.last_heartbeat, 3) if self.alive else None,
            "seq": report.seq if report else 0,
            "config_version": report.config_version if report else 0,
            "requests": report.requests if report else 0,
            "in_flight": report.in_flight if report else 0,
            "waiting_on_clients": report.waiting if report else 0,
            "children": report.children if report and self.alive else {},
        }
