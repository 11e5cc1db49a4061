"""One worker: follow shared state, bind the shared port, serve, heartbeat, drain on SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

import zmq.asyncio
from aiohttp import web

from only1mcp.bus import Kind, Replica, Reporter, State
from only1mcp.spec import EXIT_OK, EXIT_WORKER_BOOT, WorkerSpec

from .context import WorkerContext
from .web_app import build_app

__all__ = ["Worker"]

log = logging.getLogger("only1mcp.worker")

_BOOT_TIMEOUT = 30.0


class Worker:
    """Binds the port only after the first state snapshot, so it never serves a request without state."""

    __slots__ = ("_ctx", "_reporter", "_stop", "context", "spec")

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._stop = asyncio.Event()
        self._ctx: zmq.asyncio.Context | None = None
        self._reporter: Reporter | None = None
        self.context: WorkerContext | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        self._ctx = zmq.asyncio.Context()
        self._reporter = Reporter(self._ctx, self.spec.endpoints, self.spec.slot)
        heartbeat = asyncio.create_task(self._heartbeats(), name="heartbeat")
        replica: Replica | None = None
        runner: web.AppRunner | None = None
        try:
            try:
                replica = Replica(self._ctx, self.spec.endpoints, on_change=self._on_state)
                self.context = WorkerContext(self.spec, replica)
                await asyncio.wait_for(replica.start(), _BOOT_TIMEOUT)
                runner = web.AppRunner(build_app(self.context), handle_signals=False, access_log=None,
                                       shutdown_timeout=self.spec.drain_timeout)
                await runner.setup()
                site = web.TCPSite(runner, self.spec.host, self.spec.port, reuse_port=True, backlog=1024)
                await site.start()
            except (OSError, TimeoutError) as exc:
                return self._boot_failed(exc)
            self._report(Kind.WORKER_READY)
            log.info("serving on %s:%d", self.spec.host, self.spec.port)
            await self._stop.wait()
            log.info("draining (up to %.0fs)", self.spec.drain_timeout)
            await runner.cleanup()
            runner = None
            return EXIT_OK
        finally:
            heartbeat.cancel()
            if runner is not None:
                await runner.cleanup()
            if replica is not None:
                replica.close()
            self._reporter.close()
            self._ctx.term()

    def _boot_failed(self, exc: BaseException) -> int:
        if isinstance(exc, TimeoutError):
            message = f"no state snapshot from the supervisor within {_BOOT_TIMEOUT:.0f}s"
        else:
            reason = os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno else str(exc)
            message = f"cannot listen on {self.spec.host}:{self.spec.port}: {reason}"
        log.error("boot failed: %s", message)
        self._report(Kind.WORKER_BOOT_ERROR, error=message)
        return EXIT_WORKER_BOOT

    def _report(self, kind: Kind, **extra: object) -> None:
        assert self._reporter is not None
        state = self.context.state if self.context is not None else State()
        config = state.get("config") or {}
        self._reporter.report(kind, {"pid": os.getpid(), "seq": state.seq,
                                     "config_version": config.get("version", 0), **extra})

    def _on_state(self, state: State) -> None:
        if self.context is not None:
            self.context.on_state(state)
        self._report(Kind.STATE_APPLIED)

    async def _heartbeats(self) -> None:
        """Prove liveness from the event loop itself: a stuck loop stops the heartbeats and gets replaced."""
        while True:
            self._report(Kind.WORKER_HEARTBEAT)
            if os.getppid() != self.spec.supervisor_pid:
                log.warning("supervisor (pid %d) is gone; shutting down", self.spec.supervisor_pid)
                self._stop.set()
            await asyncio.sleep(self.spec.heartbeat_interval)
