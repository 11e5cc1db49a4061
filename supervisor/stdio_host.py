"""The stdio host process: runs every stdio backend's children and serves each on a Unix socket.

Spawned and watched by the supervisor like a worker, but it never serves clients: workers (and the
supervisor's discovery) connect to it. It follows the config over the state bus and reconciles: start
added backends, stop removed ones, restart changed ones, leave the rest running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path
from typing import Any

import uvloop
import zmq.asyncio

from only1mcp.bus import Kind, Replica, Reporter, State
from only1mcp.config.models import StdioBackend
from only1mcp.logs import setup_logging
from only1mcp.process import die_with_parent, tune_gc
from only1mcp.spec import EXIT_OK, HostSpec, stdio_socket

from .stdio_mux import SharedChild

__all__ = ["StdioHost", "serve"]

log = logging.getLogger("only1mcp.stdio")

HOST_IDENTITY = "stdio-host"


class StdioHost:
    __slots__ = ("_children", "_configs", "_ctx", "_reconciling", "_reporter", "_spec", "_stop")

    def __init__(self, spec: HostSpec) -> None:
        self._spec = spec
        self._children: dict[tuple[str, int], SharedChild] = {}
        self._configs: dict[str, StdioBackend] = {}
        self._stop = asyncio.Event()
        self._reconciling: asyncio.Lock = asyncio.Lock()
        self._ctx: zmq.asyncio.Context | None = None
        self._reporter: Reporter | None = None

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self._stop.set)
        self._ctx = zmq.asyncio.Context()
        self._reporter = Reporter(self._ctx, self._spec.endpoints, HOST_IDENTITY)
        replica = Replica(self._ctx, self._spec.endpoints, on_change=self._on_state)
        try:
            state = await replica.start()
            await self._reconcile(state)
            tune_gc()  # it relays every call to a shared child
            watchdog = loop.create_task(self._watch_parent())
            await self._stop.wait()
            watchdog.cancel()
        finally:
            await asyncio.gather(*(child.stop() for child in self._children.values()))
            replica.close()
            self._reporter.close()
            self._ctx.term()
        return EXIT_OK

    async def _watch_parent(self) -> None:
        while True:
            if os.getppid() != self._spec.supervisor_pid:
                log.warning("supervisor is gone; stopping stdio backends")
                self._stop.set()
            await asyncio.sleep(1.0)

    def _on_state(self, state: State) -> None:
        asyncio.get_running_loop().create_task(self._reconcile(state))

    async def _reconcile(self, state: State) -> None:
        settings = (state.get("config") or {}).get("settings") or {}
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
            for name, backend in wanted.items():
                if name not in self._configs:
                    await self._start_backend(backend)

    async def _start_backend(self, backend: StdioBackend) -> None:
        self._configs[backend.name] = backend
        for replica in range(backend.replicas):
            path = stdio_socket(Path(self._spec.runtime_dir), backend.name, replica)
            child = SharedChild(backend, replica, path, self._report)
            self._children[(backend.name, replica)] = child
            try:
                await child.start()
            except OSError as exc:
                log.error("backend '%s': cannot serve its socket %s: %s", backend.name, path, exc)
                self._report({"backend": backend.name, "replica": replica, "state": "failed",
                              "last_error": f"cannot serve its socket: {exc}"})

    async def _stop_backend(self, name: str, backend: StdioBackend) -> None:
        del self._configs[name]
        for replica in range(backend.replicas):
            child = self._children.pop((name, replica), None)
            if child is not None:
                await child.stop(drain=backend.timeouts.call)
        self._report({"backend": name, "state": "removed"})

    def _report(self, status: dict[str, Any]) -> None:
        if self._reporter is not None:
            self._reporter.report(Kind.BACKEND_STATUS, status)


def serve(spec: HostSpec) -> int:
    setup_logging("stdio-host", spec.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if not die_with_parent(spec.supervisor_pid):
        return EXIT_OK
    return uvloop.run(StdioHost(spec).run())
