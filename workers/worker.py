"""One worker: follow shared state, bind the shared port, serve, heartbeat, drain on SIGTERM.

A standby worker does everything up to the bind (imports, state snapshot) and then waits for the
supervisor to hand it the slot of a worker that died, so failover does not wait for a process to boot.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal

import zmq.asyncio
from aiohttp import web

from only1mcp.bus import Envelope, Kind, Replica, Reporter, State
from only1mcp.bus.relay import BROADCAST, STANDBY, RelaySubscriber, worker_topic
from only1mcp.http.aiohttp_bridge import HttpSite, runner_options
from only1mcp.http.client import Http1Pool
from only1mcp.http.memory import keep_large_buffers_mapped
from only1mcp.http.server import HttpServer
from only1mcp.logs import set_role
from only1mcp.process import tune_gc
from only1mcp.spec import EXIT_OK, EXIT_WORKER_BOOT, WorkerSpec

from .context import WorkerContext
from .fast_http import McpFastPath, limits_of
from .gateway import Gateway
from .web_app import build_app

__all__ = ["Worker"]

log = logging.getLogger("only1mcp.worker")

_BOOT_TIMEOUT = 30.0


class Worker:
    """Binds the port only after the first state snapshot, so it never serves a request without state."""

    __slots__ = ("_adopted", "_ctx", "_reporter", "_stop", "context", "gateway", "spec")

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._stop = asyncio.Event()
        self._adopted: asyncio.Future[int] | None = None
        self._ctx: zmq.asyncio.Context | None = None
        self._reporter: Reporter | None = None
        self.context: WorkerContext | None = None
        self.gateway: Gateway | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        self._ctx = zmq.asyncio.Context()
        identity = f"standby-{os.getpid()}" if self.spec.standby else str(self.spec.slot)
        self._reporter = Reporter(self._ctx, self.spec.endpoints, identity)
        heartbeat = asyncio.create_task(self._heartbeats(), name="heartbeat")
        replica: Replica | None = None
        runner: web.AppRunner | None = None
        relay: RelaySubscriber | None = None
        relay_task: asyncio.Task[None] | None = None
        http = Http1Pool()  # keep-alive connections to remote backends, shared by every session here
        try:
            try:
                replica = Replica(self._ctx, self.spec.endpoints, on_change=self._on_state)
                self.context = WorkerContext(self.spec, replica)
                await asyncio.wait_for(replica.start(), _BOOT_TIMEOUT)
                if self.spec.standby and not await self._wait_for_slot():
                    return EXIT_OK
                self.gateway = Gateway(self.spec, replica, self._reporter, http)
                self.gateway.on_state(replica.state)
                relay = RelaySubscriber(self._ctx, self.spec.endpoints, [BROADCAST, worker_topic(self.spec.slot)],
                                        self.gateway.on_relayed)
                relay_task = asyncio.create_task(relay.serve(), name="relay")
                runner = await self._listen(self.gateway)
            except (OSError, TimeoutError) as exc:
                return self._boot_failed(exc)
            tune_gc()
            keep_large_buffers_mapped()  # freed request and answer buffers go back to the OS
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
            if self.gateway is not None:
                await self.gateway.close()
            http.close()
            if relay_task is not None:
                relay_task.cancel()
            if relay is not None:
                relay.close()
            if replica is not None:
                replica.close()
            self._reporter.close()
            self._ctx.term()

    async def _listen(self, gateway: Gateway) -> web.AppRunner:
        """aiohttp's application, with our HTTP server in front of it on the shared port."""
        assert self.context is not None
        app, door = build_app(self.context, gateway)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=self.spec.drain_timeout,
                               **runner_options(limits_of(gateway.settings)))
        await runner.setup()
        fast_path = McpFastPath(door, gateway)
        site = HttpSite(runner, lambda fallback: HttpServer(fast_path, fallback), self.spec.host, self.spec.port,
                        backlog=1024, drain_timeout=self.spec.drain_timeout)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        return runner

    async def _wait_for_slot(self) -> bool:
        """Standby: report ready, then wait for an adoption order; False if told to stop instead."""
        assert self._ctx is not None and self._reporter is not None
        self._adopted = asyncio.get_running_loop().create_future()
        orders = RelaySubscriber(self._ctx, self.spec.endpoints, [STANDBY], self._on_order)
        listening = asyncio.create_task(orders.serve(), name="standby-orders")
        self._report(Kind.STANDBY_READY)
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait([self._adopted, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            orders.close()
            stopping.cancel()
        if not self._adopted.done():
            return False
        slot = self._adopted.result()
        self.spec = dataclasses.replace(self.spec, slot=slot, standby=False)
        if self.context is not None:
            self.context.spec = self.spec
        self._reporter.identity = str(slot)
        set_role(f"worker-{slot}")
        log.info("standby worker adopted slot %d", slot)
        return True

    def _on_order(self, envelope: Envelope) -> None:
        if envelope.kind is Kind.ADOPT and envelope.key == str(os.getpid()) and self._adopted is not None \
                and not self._adopted.done():
            self._adopted.set_result(int((envelope.value or {}).get("slot", 0)))

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
        requests = self.context.requests if self.context is not None else 0
        children = self.gateway.pool.children() if self.gateway is not None else {}
        self._reporter.report(kind, {"pid": os.getpid(), "seq": state.seq, "requests": requests,
                                     "config_version": config.get("version", 0), "children": children, **extra})

    def _on_state(self, state: State) -> None:
        if self.context is not None:
            self.context.on_state(state)
        if self.gateway is not None:
            self.gateway.on_state(state)
        self._report(Kind.STATE_APPLIED)

    async def _heartbeats(self) -> None:
        """Prove liveness from the event loop itself: a stuck loop stops the heartbeats and gets replaced."""
        while True:
            self._report(Kind.WORKER_HEARTBEAT)
            if os.getppid() != self.spec.supervisor_pid:
                log.warning("supervisor (pid %d) is gone; shutting down", self.spec.supervisor_pid)
                self._stop.set()
            await asyncio.sleep(self.spec.heartbeat_interval)
