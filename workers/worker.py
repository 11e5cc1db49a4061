"""One worker: follow shared state, bind the shared port, serve, heartbeat, drain on SIGTERM.

A standby worker does everything up to the bind (imports, state snapshot) and then waits for the
supervisor to hand it the slot of a worker that died, so failover does not wait for a process to boot.
Any failure before the worker serves is a boot error: it says so and exits with code 3, and the supervisor
stops instead of restarting it forever.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from typing import Any

import zmq.asyncio
from aiohttp import web

from only1mcp.background import watched
from only1mcp.bus import Envelope, Kind, MessageRouter, Replica, Reporter, Role, Sender, State, Target
from only1mcp.bus.messages import ALL_WORKERS, STANDBYS, Adopt, BootError, Empty, ProcessReport
from only1mcp.bus.relay import RelaySubscriber
from only1mcp.http.aiohttp_bridge import HttpSite, runner_options
from only1mcp.http.client import Http1Pool
from only1mcp.http.memory import keep_large_buffers_mapped
from only1mcp.http.server import HttpServer
from only1mcp.logs import set_role
from only1mcp.metrics import Metrics, metrics_dir
from only1mcp.process import tune_gc
from only1mcp.spec import EXIT_BOOT, EXIT_OK, WorkerSpec

from .context import WorkerContext
from .fast_http import McpFastPath, limits_of
from .gateway import Gateway
from .metrics_routes import WorkerGauges
from .web_app import build_app

__all__ = ["Worker"]

log = logging.getLogger("only1mcp.worker")

_BOOT_TIMEOUT = 30.0


class _BootFailure(Exception):
    """The worker cannot start serving; the message says why."""


class Worker:
    """Binds the port only after the first state snapshot, so it never serves a request without state."""

    __slots__ = ("_adopted", "_ctx", "_gauges", "_http", "_reporter", "_sender", "_site", "_stop", "context",
                 "gateway", "spec")

    def __init__(self, spec: WorkerSpec) -> None:
        self.spec = spec
        self._stop = asyncio.Event()
        self._adopted: asyncio.Future[int] | None = None
        self._ctx: zmq.asyncio.Context | None = None
        self._reporter: Reporter | None = None
        self._sender = Sender(Role.STANDBY, -1, os.getpid()) if spec.standby else Sender(Role.WORKER, spec.slot,
                                                                                             os.getpid())
        self.context: WorkerContext | None = None
        self.gateway: Gateway | None = None
        self._http: HttpServer | None = None  # our HTTP server on the shared port, once listening
        self._site: HttpSite | None = None
        self._gauges: WorkerGauges | None = None  # sampled with every heartbeat once serving

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        self._ctx = zmq.asyncio.Context()
        self._reporter = Reporter(self._ctx, self.spec.endpoints, self._sender)
        heartbeat = watched(asyncio.create_task(self._heartbeats(), name="heartbeat"))
        replica: Replica | None = None
        runner: web.AppRunner | None = None
        relay: RelaySubscriber | None = None
        relay_task: asyncio.Task[None] | None = None
        http = Http1Pool()  # keep-alive connections to remote backends, shared by every session here
        try:
            try:
                replica = Replica(self._ctx, self.spec.endpoints, self._sender, on_change=self._on_state)
                self.context = WorkerContext(self.spec, replica)
                await self._first_snapshot(replica)
                if self.spec.standby and not await self._wait_for_slot(replica):
                    return EXIT_OK
                inbox = MessageRouter("worker relay")
                self.gateway = self._gateway(replica, http)
                relay = RelaySubscriber(self._ctx, self.spec.endpoints, [Target(ALL_WORKERS), Target(self.spec.slot)],
                                        os.getpid(), inbox)
                relay_task = watched(asyncio.create_task(relay.serve(), name="relay"))
                runner = await self._listen(self.gateway, inbox)
            except Exception as exc:  # noqa: BLE001 -- anything before serving is a boot error: logged once there
                return self._boot_failed(exc)
            tune_gc()
            keep_large_buffers_mapped()  # freed request and answer buffers go back to the OS
            self._report(Kind.READY)
            log.info("serving on %s:%d", self.spec.host, self.spec.port)
            await self._stop.wait()
            drain = self._drain_timeout()
            log.info("draining (up to %.0fs)", drain)
            if self._site is not None:
                self._site.drain_for(drain)
            await runner.cleanup()
            runner = None
            return EXIT_OK
        finally:
            heartbeat.cancel()
            if runner is not None:
                await runner.cleanup()
            if self.gateway is not None:
                await self.gateway.close()
                self.gateway.metrics.close()
            http.close()
            if relay_task is not None:
                relay_task.cancel()
            if relay is not None:
                relay.close()
            if replica is not None:
                replica.close()
            self._reporter.close()
            self._ctx.term()

    def _gateway(self, replica: Replica, http: Http1Pool) -> Gateway:
        assert self._reporter is not None
        # built once the slot is ours: a standby that is never adopted writes no metric files
        metrics = Metrics(metrics_dir(self.spec.runtime_dir))
        gateway = Gateway(self.spec, replica, self._reporter, http, metrics)
        gateway.on_state(replica.state)
        return gateway

    async def _first_snapshot(self, replica: Replica) -> None:
        try:
            await asyncio.wait_for(replica.start(), _BOOT_TIMEOUT)
        except TimeoutError:
            raise _BootFailure(f"no state snapshot from the supervisor within {_BOOT_TIMEOUT:.0f}s") from None

    async def _listen(self, gateway: Gateway, inbox: MessageRouter) -> web.AppRunner:
        """aiohttp's application, with our HTTP server in front of it on the shared port."""
        assert self.context is not None
        assert self._reporter is not None
        self._gauges = WorkerGauges(self.context, gateway, self._reporter)
        app, door = build_app(self.context, gateway, inbox, self._gauges)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=self.spec.drain_timeout,
                               **runner_options(limits_of(gateway.settings)))
        await runner.setup()
        fast_path = McpFastPath(door, gateway)

        def server(fallback: Any) -> HttpServer:
            self._http = HttpServer(fast_path, fallback)
            return self._http

        site = HttpSite(runner, server, self.spec.host, self.spec.port, backlog=1024,
                        drain_timeout=self.spec.drain_timeout)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._site = site
        return runner

    def _drain_timeout(self) -> float:
        """server.drain_timeout as the worker holds it now (a reload may have changed it since the spawn)."""
        settings = self.gateway.settings if self.gateway is not None else None
        return settings.server.drain_timeout if settings is not None else self.spec.drain_timeout

    async def _wait_for_slot(self, replica: Replica) -> bool:
        """Standby: report ready, then wait for an adoption order; False if told to stop instead."""
        assert self._ctx is not None and self._reporter is not None
        self._adopted = asyncio.get_running_loop().create_future()
        orders = MessageRouter("standby orders")
        orders.register(Kind.ADOPT, self._on_order)
        subscriber = RelaySubscriber(self._ctx, self.spec.endpoints, [Target(STANDBYS)], os.getpid(), orders)
        listening = watched(asyncio.create_task(subscriber.serve(), name="standby-orders"))
        self._reporter.send(Kind.STANDBY_READY, Empty())
        stopping = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait([self._adopted, stopping], return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            subscriber.close()
            stopping.cancel()
        if not self._adopted.done():
            return False
        slot = self._adopted.result()
        self.spec = dataclasses.replace(self.spec, slot=slot, standby=False)
        if self.context is not None:
            self.context.spec = self.spec
        self._sender = Sender(Role.WORKER, slot, os.getpid())
        self._reporter.sender = self._sender
        replica.sender = self._sender
        set_role(f"worker-{slot}")
        log.info("standby worker adopted slot %d", slot)
        return True

    def _on_order(self, envelope: Envelope) -> None:
        order = envelope.payload
        if isinstance(order, Adopt) and self._adopted is not None and not self._adopted.done():
            self._adopted.set_result(order.slot)

    def _boot_failed(self, exc: BaseException) -> int:
        if isinstance(exc, _BootFailure):
            message = str(exc)
        elif isinstance(exc, OSError):
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            message = f"cannot listen on {self.spec.host}:{self.spec.port}: {reason}"
        else:
            message = f"{type(exc).__name__}: {exc}"
        log.error("boot failed: %s", message, exc_info=not isinstance(exc, _BootFailure | OSError))
        assert self._reporter is not None
        self._reporter.send(Kind.BOOT_ERROR, BootError(message))
        return EXIT_BOOT

    def _report(self, kind: Kind) -> None:
        assert self._reporter is not None
        context = self.context
        state = context.state if context is not None else State()
        self._reporter.send(kind, ProcessReport(
            state.seq, state.config_version, context.requests if context is not None else 0,
            context.in_flight if context is not None else 0,
            self.gateway.pool.children() if self.gateway is not None else {},
            len(self.gateway.outstanding) if self.gateway is not None else 0))

    def _on_state(self, state: State) -> None:
        if self.context is not None:
            self.context.on_state(state)
        if self.gateway is not None:
            self.gateway.on_state(state)
        if self._http is not None:
            self._http.configure()  # a reloaded limit applies to the next request, not the next sweep
        if not self.spec.standby:
            self._report(Kind.STATE_APPLIED)

    async def _heartbeats(self) -> None:
        """Prove liveness from the event loop itself: a stuck loop stops the heartbeats and gets replaced."""
        while True:
            self._report(Kind.PROCESS_HEARTBEAT)
            if self._gauges is not None:
                self._gauges.sample()
            if os.getppid() != self.spec.supervisor_pid:
                log.warning("supervisor (pid %d) is gone; shutting down", self.spec.supervisor_pid)
                self._stop.set()
            await asyncio.sleep(self.spec.heartbeat_interval)
