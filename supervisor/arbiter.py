"""The Supervisor: owns the process lifecycle of one Only1MCP instance.

Signal handlers only queue the signal; the main loop dispatches each to ``handle_<name>``. The loop reads
as three verbs: wait, ``murder_workers()`` (kill the silent), ``manage_workers()`` (fill empty slots).
It is the single writer of shared state (config, and in later layers catalog and health), which workers
receive over the state bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import os
import shutil
import signal
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from only1mcp.bus import Endpoints, Envelope, Kind, ObservationSink, StatePublisher
from only1mcp.bus.endpoints import create_runtime_dir
from only1mcp.bus.relay import BROADCAST, STANDBY, RelayPublisher, worker_topic
from only1mcp.config.models import Settings
from only1mcp.process import run_entry
from only1mcp.spec import (
    EXIT_CONFIG,
    EXIT_OK,
    EXIT_WORKER_BOOT,
    STDIO_HOST_ENTRY,
    WORKER_ENTRY,
    HostSpec,
    WorkerSpec,
)

from .config_store import ConfigStore
from .discovery import CatalogBuilder
from .health import HealthManager
from .listener import ListenError, prepare_listener
from .mailbox import Mailboxes
from .slots import Backoff, WorkerSlot
from .standby import StandbyPool
from .watcher import ConfigWatcher

__all__ = ["Supervisor"]

log = logging.getLogger("only1mcp.supervisor")

_KILL_GRACE = 5.0  # seconds after the drain timeout before stragglers are killed
_HOUSEKEEPING = 30.0  # seconds between expiring idle mailboxes and old revocations
_FIRST_CATALOG_WAIT = 60.0  # at most this long before "ready" without every backend discovered
_SIGNAL_NAMES = {signal.SIGTERM: "term", signal.SIGINT: "int", signal.SIGHUP: "hup"}


class Supervisor:
    """Spawns N workers (``spawn`` start method) that share one port, watches them through their
    sentinels and heartbeats, restarts the dead with backoff, reloads config on SIGHUP, drains on SIGTERM."""

    def __init__(
        self,
        settings: Settings,
        source: str,
        config_path: str | os.PathLike[str] | None,
        overrides: Mapping[str, Any],
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._source = source
        self._config_path = config_path
        self._overrides = overrides
        self._environ = environ
        count = settings.server.workers or os.cpu_count() or 1
        self.slots = [WorkerSlot(index) for index in range(count)]
        self._signals: asyncio.Queue[int] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._stopping = False
        self._force_stop = False
        self._exit_code = EXIT_OK
        self._announced = False
        self._started_at = time.time()
        self._mp = multiprocessing.get_context("spawn")
        self._tasks: list[asyncio.Task[None]] = []
        self._port_holder: socket.socket | None = None
        self.port = settings.server.port
        self.runtime_dir: Path | None = None
        self._ctx: zmq.asyncio.Context | None = None
        self._publisher: StatePublisher | None = None
        self._sink: ObservationSink | None = None
        self.config: ConfigStore | None = None
        self._endpoints: Endpoints | None = None
        self._relay: RelayPublisher | None = None
        self._mailboxes: Mailboxes | None = None
        self._catalog: CatalogBuilder | None = None
        self._health: HealthManager | None = None
        self._watcher: ConfigWatcher | None = None
        self._reloading = asyncio.Lock()
        self._catalog_version = 0
        self._catalog_ready = False
        self._host: multiprocessing.process.BaseProcess | None = None
        self._host_backoff = Backoff()
        self._host_restart_at: float | None = None
        self._host_started = 0.0
        self._stdio_status: dict[str, dict[str, Any]] = {}
        self._standby = StandbyPool(settings.server.standby_workers, self._spawn_standby, self._wake.set)

    # ------------------------------------------------------------ lifecycle

    async def run(self) -> int:
        """Run until stopped; returns the process exit code."""
        loop = asyncio.get_running_loop()
        try:
            self._setup()
        except (ListenError, ValueError, PermissionError) as exc:
            log.error("cannot start: %s", exc)
            self._teardown()
            return EXIT_CONFIG
        for sig in _SIGNAL_NAMES:
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            for slot in self.slots:
                self._spawn(slot)
            self._standby.fill(self._stopping)
            while not self._stopping:
                await self._wait()
                await self._dispatch_signals()
                self.murder_workers()
                self.manage_workers()
        finally:
            await self._stop_workers()
            for sig in _SIGNAL_NAMES:
                loop.remove_signal_handler(sig)
            self._teardown()
        log.info("supervisor exiting with code %d", self._exit_code)
        return self._exit_code

    def _setup(self) -> None:
        server = self.settings.server
        self.port, self._port_holder = prepare_listener(server.host, server.port)
        self.runtime_dir = create_runtime_dir(server.runtime_dir)
        self._endpoints = Endpoints.in_dir(self.runtime_dir)
        self._ctx = zmq.asyncio.Context()
        self._relay = RelayPublisher(self._ctx, self._endpoints)
        sessions = self.settings.sessions
        self._mailboxes = Mailboxes(self._relay, sessions.event_buffer, sessions.ttl)
        self._publisher = StatePublisher(self._ctx, self._endpoints, requests={
            Kind.STATUS_REQUEST: (Kind.STATUS, lambda _request: self.status()),
            Kind.REPLAY_REQUEST: (Kind.REPLAY, self._mailboxes.replay),
        })
        self._sink = ObservationSink(self._ctx, self._endpoints, self._on_report)
        # Sessions survive worker restarts; with a configured secret they also survive gateway restarts
        # and are valid on every host that shares it.
        secret = sessions.secret.encode() if sessions.secret else os.urandom(32)
        self._publisher.set("sessions", {"secret": secret, "ttl": sessions.ttl})
        self.config = ConfigStore(self.settings, self._source, self._config_path, self._overrides,
                                  self._environ, self._publisher)
        self._catalog = CatalogBuilder(self.runtime_dir, self._publish_catalog)
        self._health = HealthManager(self.runtime_dir, self._publisher.set)
        if self._config_path is not None:
            self._watcher = ConfigWatcher(self._config_path, self._file_changed)
        self._tasks = [
            asyncio.create_task(self._publisher.serve(), name="bus-serve"),
            asyncio.create_task(self._publisher.run_heartbeats(server.heartbeat_interval), name="bus-heartbeat"),
            asyncio.create_task(self._sink.serve(), name="bus-observe"),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
            asyncio.create_task(self._first_catalog(), name="first-catalog"),
        ]
        log.info("starting %d workers for %s:%d (config %s, runtime dir %s)", len(self.slots), server.host,
                 self.port, self._source, self.runtime_dir)

    def _teardown(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        for task in self._tasks:
            task.cancel()
        for closable in (self._publisher, self._sink, self._relay):
            if closable is not None:
                closable.close()
        if self._ctx is not None:
            self._ctx.term()
        if self._port_holder is not None:
            self._port_holder.close()
        if self.runtime_dir is not None:
            shutil.rmtree(self.runtime_dir, ignore_errors=True)

    async def _wait(self) -> None:
        timeout = self.settings.server.heartbeat_interval
        due = [s.restart_at for s in self.slots if s.restart_at is not None]
        if due:
            timeout = max(0.0, min(timeout, min(due) - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    # ------------------------------------------------------------ signals

    def _on_signal(self, sig: int) -> None:
        if self._stopping and sig in (signal.SIGTERM, signal.SIGINT):
            log.warning("second %s while draining: killing workers now", signal.Signals(sig).name)
            self._force_stop = True
        else:
            self._signals.put_nowait(sig)
        self._wake.set()

    async def _dispatch_signals(self) -> None:
        while not self._signals.empty():
            sig = self._signals.get_nowait()
            await getattr(self, f"handle_{_SIGNAL_NAMES[sig]}")()

    async def handle_term(self) -> None:
        log.info("SIGTERM: draining workers (up to %.0fs)", self.settings.server.drain_timeout)
        self._stopping = True

    async def handle_int(self) -> None:
        log.info("SIGINT: draining workers (up to %.0fs); press Ctrl-C again to stop at once",
                 self.settings.server.drain_timeout)
        self._stopping = True

    async def handle_hup(self) -> None:
        log.info("SIGHUP: reloading config")
        await self.reload()

    async def _file_changed(self) -> None:
        log.info("config file changed: reloading")
        await self.reload()

    async def reload(self) -> None:
        """Validate the config again; on success apply the difference (added backends start, removed ones
        drain and stop, changed ones restart, the rest are untouched) and publish it."""
        assert self.config is not None and self._catalog is not None and self._health is not None
        async with self._reloading:
            started = time.monotonic()
            if self.config.reload():
                self.settings = self.config.settings
                await self._catalog.apply(self.settings)
                await self._health.apply(self.settings)
                self._ensure_host()
                self.config.last_apply_ms = round((time.monotonic() - started) * 1000, 2)

    # ------------------------------------------------------------ catalog, sessions, stdio host

    async def _first_catalog(self) -> None:
        assert self._catalog is not None
        self._ensure_host()
        await self._catalog.apply(self.settings)
        assert self._health is not None
        await self._health.apply(self.settings)
        await self._catalog.wait_first_round(_FIRST_CATALOG_WAIT)
        self._catalog_ready = True
        self._announce_if_ready()

    def _publish_catalog(self, catalog: dict[str, Any]) -> None:
        assert self._publisher is not None
        current = self._publisher.data.get("catalog")
        if current is not None and {**current, "version": 0} == {**catalog, "version": 0}:
            return
        self._catalog_version += 1
        self._publisher.set("catalog", {**catalog, "version": self._catalog_version})

    def _ensure_host(self) -> None:
        """Run the stdio host while any stdio backend is configured."""
        needed = any(b.transport == "stdio" for b in self.settings.enabled_backends())
        if needed and self._host is None and self._host_restart_at is None and not self._stopping:
            self._spawn_host()

    def _spawn_host(self) -> None:
        assert self._endpoints is not None and self.runtime_dir is not None
        spec = HostSpec(self._endpoints, str(self.runtime_dir), self.settings.server.log_level, os.getpid())
        process = self._mp.Process(target=run_entry, args=(STDIO_HOST_ENTRY, spec), name="only1mcp-stdio-host")
        process.start()
        self._host = process
        self._host_started = time.monotonic()
        self._host_restart_at = None
        asyncio.get_running_loop().add_reader(process.sentinel, self._on_host_exit, process)
        log.info("stdio host started (pid %d)", process.pid)

    def _on_host_exit(self, process: multiprocessing.process.BaseProcess) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(process.sentinel)
        process.join(0)
        if process.exitcode is None:
            loop.call_later(0.005, self._on_host_exit, process)
            return
        code = process.exitcode
        process.close()
        self._host = None
        self._wake.set()
        if self._stopping:
            return
        delay = self._host_backoff.next_delay(time.monotonic() - self._host_started)
        self._host_restart_at = time.monotonic() + delay
        log.error("stdio host died (%s); restarting in %.2fs", _describe_exit(code), delay)

    async def _housekeeping(self) -> None:
        assert self._mailboxes is not None and self._publisher is not None
        while True:
            await asyncio.sleep(_HOUSEKEEPING)
            self._mailboxes.expire()
            now = time.time()
            for key, expires in list(self._publisher.data.items()):
                if key.startswith("revoked/") and isinstance(expires, int | float) and expires < now:
                    self._publisher.set(key, None)

    # ------------------------------------------------------------ workers

    def _spawn(self, slot: WorkerSlot) -> None:
        process = self._start_process(slot.index, standby=False)
        self._occupy(slot, process)
        log.info("worker %d started (pid %d)", slot.index, slot.pid)

    def _spawn_standby(self) -> multiprocessing.process.BaseProcess:
        return self._start_process(-1, standby=True)

    def _occupy(self, slot: WorkerSlot, process: multiprocessing.process.BaseProcess) -> None:
        slot.started(process)
        asyncio.get_running_loop().add_reader(process.sentinel, self._on_exit, slot, process)

    def _start_process(self, index: int, standby: bool) -> multiprocessing.process.BaseProcess:
        assert self._endpoints is not None
        server = self.settings.server
        spec = WorkerSpec(
            slot=index,
            host=server.host,
            port=self.port,
            endpoints=self._endpoints,
            heartbeat_interval=server.heartbeat_interval,
            drain_timeout=server.drain_timeout,
            log_level=server.log_level,
            supervisor_pid=os.getpid(),
            runtime_dir=str(self.runtime_dir),
            standby=standby,
        )
        name = "only1mcp-standby" if standby else f"only1mcp-worker-{index}"
        process = self._mp.Process(target=run_entry, args=(WORKER_ENTRY, spec), name=name)
        process.start()
        return process

    def _on_exit(self, slot: WorkerSlot, process: multiprocessing.process.BaseProcess) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(process.sentinel)
        process.join(0)
        if process.exitcode is None:
            # The sentinel closes a moment before the child can be reaped; look again shortly.
            loop.call_later(0.005, self._on_exit, slot, process)
            return
        code = process.exitcode
        process.close()
        if slot.process is not process:
            return
        uptime = time.monotonic() - slot.started_mono
        slot.process = None
        slot.ready = False
        self._wake.set()
        if self._stopping:
            log.info("worker %d (pid %d) exited with code %s", slot.index, slot.pid, code)
            return
        if code == EXIT_WORKER_BOOT:
            self._halt(EXIT_WORKER_BOOT, f"worker {slot.index} (pid {slot.pid}) failed to boot; stopping")
            return
        spare = self._standby.take()
        if spare is not None:
            assert self._relay is not None
            log.error("worker %d (pid %d) died (%s) after %.1fs; standby pid %d takes its slot", slot.index,
                      slot.pid, _describe_exit(code), uptime, spare.pid)
            dead = slot.pid
            slot.restarts += 1
            self._occupy(slot, spare)
            slot.last_heartbeat = time.monotonic()
            self._relay.publish(STANDBY, Envelope(Kind.ADOPT, 0, str(spare.pid), {"slot": slot.index,
                                                                                   "replaces": dead}))
            return
        delay = slot.backoff.next_delay(uptime)
        slot.restart_at = time.monotonic() + delay
        log.error("worker %d (pid %d) died (%s) after %.1fs; restarting in %.2fs", slot.index, slot.pid,
                  _describe_exit(code), uptime, delay)

    def _on_report(self, envelope: Envelope) -> None:
        kind, value = envelope.kind, envelope.value if isinstance(envelope.value, dict) else {}
        if kind is Kind.RELAY:
            assert self._relay is not None
            target = value.get("target")
            topic = BROADCAST if target == "*" else worker_topic(int(target or 0))
            self._relay.publish(topic, Envelope(Kind.RELAYED, 0, envelope.key, value.get("payload")))
            return
        if kind is Kind.SESSION_SEND:
            assert self._mailboxes is not None
            self._mailboxes.send(str(value.get("sid")), value.get("message"))
            return
        if kind is Kind.SESSION_REVOKE:
            assert self._publisher is not None and self._mailboxes is not None
            self._publisher.set(f"revoked/{value.get('sid')}", float(value.get("expires") or time.time()))
            self._mailboxes.drop(str(value.get("sid")))
            return
        if kind is Kind.CALL_OUTCOMES:
            assert self._health is not None
            self._health.outcomes(value)
            return
        if kind is Kind.BACKEND_CHANGED:
            assert self._catalog is not None
            self._catalog.backend_changed(str(value.get("backend")))
            return
        if envelope.key.startswith("standby-"):
            if kind is Kind.STANDBY_READY:
                self._standby.mark_ready(int(value.get("pid") or 0))
            return
        if kind is Kind.BACKEND_STATUS:
            self._stdio_status[f"{value.get('backend')}#{value.get('replica', 0)}"] = value
            args = (str(value.get("backend")), int(value.get("replica") or 0), str(value.get("state")),
                    str(value.get("last_error") or ""))
            if self._catalog is not None:
                self._catalog.stdio_status(*args)
            if self._health is not None:
                self._health.stdio_status(*args)
            if value.get("state") == "removed":
                for key in [k for k in self._stdio_status if k.startswith(f"{value.get('backend')}#")]:
                    del self._stdio_status[key]
            return
        self._worker_report(envelope)

    def _worker_report(self, envelope: Envelope) -> None:
        index = int(envelope.key)
        if not 0 <= index < len(self.slots):
            log.warning("report from unknown worker slot %s", envelope.key)
            return
        slot = self.slots[index]
        report = envelope.value if isinstance(envelope.value, dict) else {}
        if report.get("pid") != slot.pid:
            return  # a report from the previous occupant of this slot
        slot.last_heartbeat = time.monotonic()
        if "seq" in report:
            slot.seq = int(report["seq"])
        if "config_version" in report:
            slot.config_version = int(report["config_version"])
        if "requests" in report:
            slot.requests = int(report["requests"])
        if isinstance(report.get("children"), dict):
            slot.children = report["children"]
        if envelope.kind is Kind.WORKER_READY:
            slot.ready = True
            self._announce_if_ready()
        elif envelope.kind is Kind.WORKER_BOOT_ERROR:
            self._halt(EXIT_WORKER_BOOT, f"worker {index} (pid {slot.pid}) failed to boot: {report.get('error')}")

    def _announce_if_ready(self) -> None:
        if self._announced or not self._catalog_ready or not all(s.ready for s in self.slots):
            return
        self._announced = True
        host = self.settings.server.host
        shown = f"[{host}]" if ":" in host else host
        log.info("ready url=http://%s:%d workers=%d", shown, self.port, len(self.slots))

    def _halt(self, code: int, message: str) -> None:
        if self._exit_code == EXIT_OK:
            log.error("%s", message)
            self._exit_code = code
        self._stopping = True
        self._wake.set()

    def murder_workers(self) -> None:
        """Kill workers whose event loop stopped heartbeating; their exit then refills the slot."""
        limit = self.settings.server.worker_timeout
        now = time.monotonic()
        for slot in self.slots:
            if slot.alive and now - slot.last_heartbeat > limit:
                log.error("worker %d (pid %d) sent no heartbeat for %.1fs; killing it", slot.index, slot.pid,
                          now - slot.last_heartbeat)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                slot.last_heartbeat = now  # one kill per timeout, even if the exit is slow to show

    def manage_workers(self) -> None:
        """Start a replacement in every empty slot (and the stdio host) whose backoff has passed."""
        now = time.monotonic()
        if self._host is None and self._host_restart_at is not None and self._host_restart_at <= now:
            self._host_restart_at = None
            self._ensure_host()
        self._standby.fill(self._stopping)
        for slot in self.slots:
            if not slot.alive and slot.restart_at is not None and slot.restart_at <= now:
                slot.restarts += 1
                self._spawn(slot)

    async def _stop_host(self) -> None:
        process = self._host
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self._host is process and time.monotonic() < deadline:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
        if self._host is process:
            log.warning("stdio host did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            await asyncio.to_thread(process.join)
            self._on_host_exit(process)

    async def _stop_workers(self) -> None:
        await self._stop_slots()
        await self._stop_host()
        if self._catalog is not None:
            await self._catalog.close()
        if self._health is not None:
            await self._health.close()

    async def _stop_slots(self) -> None:
        self._standby.fill(stopping=True)
        live = [s for s in self.slots if s.alive]
        spares = self._standby.processes()
        for pid in [s.pid for s in live] + [p.pid or 0 for p in spares]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.settings.server.drain_timeout + _KILL_GRACE
        while (any(s.alive for s in self.slots) or self._standby.processes()) and time.monotonic() < deadline \
                and not self._force_stop:
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, deadline - time.monotonic()))
        for slot in self.slots:
            if slot.alive and slot.process is not None:
                log.warning("worker %d (pid %d) did not stop in time; killing it", slot.index, slot.pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(slot.pid, signal.SIGKILL)
                process = slot.process
                await asyncio.to_thread(process.join)
                if slot.process is process:
                    self._on_exit(slot, process)

    # ------------------------------------------------------------ status

    def status(self) -> dict[str, Any]:
        """The supervisor's view, served to the admin API through the bus."""
        assert self.config is not None
        return {
            "supervisor": {"pid": os.getpid(), "started_at": self._started_at,
                           "uptime": round(time.time() - self._started_at, 3)},
            "config": self.config.describe(),
            "state_seq": self._publisher.seq if self._publisher else 0,
            "workers": [slot.describe() for slot in self.slots],
            "standby": self._standby.describe(),
            "catalog": self._catalog_summary(),
            "routes": self._health.describe() if self._health else {},
            "stdio": sorted(self._stdio_status.values(), key=lambda s: (str(s.get("backend")), s.get("replica", 0))),
            "sessions": {"mailboxes": len(self._mailboxes) if self._mailboxes else 0},
        }

    def _catalog_summary(self) -> dict[str, Any]:
        catalog = self._publisher.data.get("catalog") if self._publisher else None
        if not catalog:
            return {"version": 0}
        return {"version": catalog["version"], "backends": catalog.get("backends", {}),
                "tools": len(catalog.get("tools", [])), "prompts": len(catalog.get("prompts", [])),
                "resources": len(catalog.get("resources", [])), "templates": len(catalog.get("templates", [])),
                "collisions": catalog.get("collisions", [])}


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "unknown status"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"
