"""The stdio host process: runs every shared stdio backend's children and serves each on a Unix socket.

Spawned and watched by the supervisor like a worker (it heartbeats from its event loop; a hung host is
killed and replaced, its children with it), but it never serves clients: workers (and the supervisor's
discovery and probes) connect to it. It follows the config over the state bus and reconciles: start added
backends, stop removed ones, restart changed ones, leave the rest running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import uvloop
import zmq.asyncio

from only1mcp.background import Background
from only1mcp.bus import Kind, Replica, Reporter, Role, Sender, State
from only1mcp.bus.messages import BackendRemoved, BootError, ChildState, ChildStatus, ProcessReport
from only1mcp.config.models import StdioBackend
from only1mcp.logs import set_format, set_level, setup_logging
from only1mcp.process import die_with_parent, tune_gc
from only1mcp.spec import EXIT_BOOT, EXIT_OK, HostSpec, stdio_socket

from .stdio_replica import ReplicaServer

__all__ = ["StdioHost", "serve"]

log = logging.getLogger("only1mcp.stdio")

_BOOT_TIMEOUT = 30.0


class StdioHost:
    __slots__ = ("_children", "_configs", "_reconciling", "_reporter", "_restarts", "_spec", "_state", "_stop",
                 "_tasks")

    def __init__(self, spec: HostSpec) -> None:
        self._spec = spec
        self._children: dict[tuple[str, int], ReplicaServer] = {}
        self._configs: dict[str, StdioBackend] = {}
        self._restarts: dict[str, int] = {}  # the operator's restart count each running backend was started at
        self._stop = asyncio.Event()
        self._reconciling = asyncio.Lock()
        self._reporter: Reporter | None = None
        self._state = State()
        self._tasks = Background("stdio-host")

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        ctx = zmq.asyncio.Context()
        sender = Sender(Role.STDIO_HOST, -1, os.getpid())
        self._reporter = Reporter(ctx, self._spec.endpoints, sender)
        self._tasks.spawn(self._heartbeats(), "heartbeat")
        replica = Replica(ctx, self._spec.endpoints, sender, on_change=self._on_state)
        try:
            try:
                self._state = await asyncio.wait_for(replica.start(), _BOOT_TIMEOUT)
                await self._reconcile(self._state)
            except Exception as exc:  # anything before serving is a boot error: logged here, exit 3
                message = (f"no state snapshot from the supervisor within {_BOOT_TIMEOUT:.0f}s"
                           if isinstance(exc, TimeoutError) else f"{type(exc).__name__}: {exc}")
                log.error("boot failed: %s", message, exc_info=not isinstance(exc, TimeoutError))
                self._reporter.send(Kind.BOOT_ERROR, BootError(message))
                return EXIT_BOOT
            tune_gc()  # it relays every call to a shared child
            self._reporter.send(Kind.READY, self._process_report())
            await self._stop.wait()
        finally:
            await self._tasks.close()
            await asyncio.gather(*(child.stop() for child in self._children.values()))
            replica.close()
            self._reporter.close()
            ctx.term()
        return EXIT_OK

    def _process_report(self) -> ProcessReport:
        children = {f"{name}#{replica}": server.describe() for (name, replica), server in self._children.items()}
        waiting = sum(server.waiting for server in self._children.values())
        return ProcessReport(self._state.seq, self._state.config_version, 0, 0, children, waiting)

    async def _heartbeats(self) -> None:
        """Prove liveness from the event loop itself: a hung host stops heartbeating and is replaced."""
        assert self._reporter is not None
        while True:
            self._reporter.send(Kind.PROCESS_HEARTBEAT, self._process_report())
            if os.getppid() != self._spec.supervisor_pid:
                log.warning("supervisor is gone; stopping stdio backends")
                self._stop.set()
            await asyncio.sleep(self._spec.heartbeat_interval)

    def _on_state(self, state: State) -> None:
        self._state = state
        self._tasks.spawn(self._reconcile(state), "reconcile")

    async def _reconcile(self, state: State) -> None:
        settings = state.config.settings if state.config is not None else {}
        set_level(str((settings.get("server") or {}).get("log_level", "info")))
        set_format(str((settings.get("logging") or {}).get("format", "text")))
        wanted: dict[str, StdioBackend] = {}
        for raw in settings.get("backends", []):
            # per_worker backends run in each worker (and the supervisor's discovery), not here
            if raw.get("transport") == "stdio" and raw.get("enabled", True) and not raw.get("per_worker"):
                backend = StdioBackend.model_validate(raw)
                wanted[backend.name] = backend
        async with self._reconciling:
            for name, old in list(self._configs.items()):
                if wanted.get(name) != old:
                    await self._stop_backend(name, old)
            for name, backend in list(self._configs.items()):
                if _ordered_restarts(state, name) > self._restarts[name]:
                    log.warning("backend '%s': restarting its children (ordered through the admin API)", name)
                    await self._stop_backend(name, backend, removed=False)
            for name, backend in wanted.items():
                if name not in self._configs:
                    await self._start_backend(backend, _ordered_restarts(state, name))

    async def _start_backend(self, backend: StdioBackend, restarts: int) -> None:
        self._configs[backend.name] = backend
        self._restarts[backend.name] = restarts
        for replica in range(backend.replicas):
            path = stdio_socket(Path(self._spec.runtime_dir), backend.name, replica)
            child = ReplicaServer(backend, replica, path, self._report)
            self._children[(backend.name, replica)] = child
            try:
                await child.start()
            except OSError as exc:
                log.error("backend '%s': cannot serve its socket %s: %s", backend.name, path, exc)
                self._report(ChildStatus(backend.name, replica, ChildState.FAILED, None, 0,
                                         f"cannot serve its socket: {exc}"))

    async def _stop_backend(self, name: str, backend: StdioBackend, removed: bool = True) -> None:
        """Stop a backend's children, letting calls in flight finish (up to its call timeout). ``removed``:
        it is gone from the config (not about to start again)."""
        del self._configs[name]
        del self._restarts[name]
        for replica in range(backend.replicas):
            child = self._children.pop((name, replica), None)
            if child is not None:
                await child.stop(drain=backend.timeouts.call)
        if removed and self._reporter is not None:
            self._reporter.send(Kind.BACKEND_REMOVED, BackendRemoved(name))

    def _report(self, status: ChildStatus) -> None:
        if self._reporter is not None:
            self._reporter.send(Kind.CHILD_STATUS, status)


def _ordered_restarts(state: State, name: str) -> int:
    orders = state.operator.get(name)
    return orders.restarts if orders is not None else 0


def serve(spec: HostSpec) -> int:
    setup_logging("stdio-host", spec.log_level, spec.log_format)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent(spec.supervisor_pid):
        return EXIT_OK
    return uvloop.run(StdioHost(spec).run())
