"""The Supervisor: owns the lifecycle of one Only1MCP instance and is the single writer of shared state.

Signal handlers only queue the signal; the main loop dispatches each to ``handle_<name>``. The loop reads
as three verbs: wait, ``fleet.murder()`` (kill the silent), ``fleet.manage()`` (fill empty places). What
the processes report arrives through one table (``reports``) that each subsystem registers its kinds in.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import time
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from only1mcp.audit.sinks import check_destination
from only1mcp.background import Background
from only1mcp.bus import Endpoints, Kind, MessageRouter, Namespace, ReportSink, Role, Sender, StatePublisher
from only1mcp.bus.endpoints import create_runtime_dir
from only1mcp.bus.messages import RELAYED, AdminResult, Request, Status
from only1mcp.bus.relay import RelayPublisher
from only1mcp.bus.state import BackendRoutes, CatalogState, SessionKeys
from only1mcp.config.models import Settings
from only1mcp.logs import set_format, set_level
from only1mcp.metrics import Metrics, prepare_dir
from only1mcp.spec import EXIT_BOOT, EXIT_CONFIG, EXIT_OK, HostSpec, WorkerSpec

from .admin_actions import AdminActions
from .backend_tokens import BackendTokens
from .config_store import ConfigStore
from .discovery import CatalogBuilder
from .fleet import Fleet, Specs
from .health import HealthManager
from .jwks import IssuerKeys
from .listener import ListenError, prepare_listener
from .mailbox import Mailboxes
from .metrics_recorder import SupervisorMetrics
from .procinfo import rss_bytes
from .quotas import Quotas
from .revocation_log import RevocationLog, default_state_dir
from .revocations import RevocationList
from .stdio_children import StdioChildren
from .summary import startup_summary
from .watcher import ConfigWatcher

__all__ = ["Supervisor"]

log = logging.getLogger("only1mcp.supervisor")

_KILL_GRACE = 5.0  # seconds after the drain timeout before stragglers are killed
_HOUSEKEEPING = 30.0  # seconds between expiring idle mailboxes and old revocations
_FIRST_CATALOG_WAIT = 60.0  # at most this long before "ready" without every backend discovered
_SIGNAL_NAMES = {signal.SIGTERM: "term", signal.SIGINT: "int", signal.SIGHUP: "hup"}


class _Parts:
    """What exists only while the supervisor runs (built in ``_setup``)."""

    def __init__(self, runtime_dir: Path, endpoints: Endpoints, ctx: zmq.asyncio.Context,
                 publisher: StatePublisher, relay: RelayPublisher, sink: ReportSink, config: ConfigStore,
                 mailboxes: Mailboxes, revocations: RevocationList, catalog: CatalogBuilder, health: HealthManager,
                 children: StdioChildren, fleet: Fleet, keys: IssuerKeys, tokens: BackendTokens,
                 actions: AdminActions, quotas: Quotas, metrics: SupervisorMetrics) -> None:
        self.runtime_dir = runtime_dir
        self.endpoints = endpoints
        self.ctx = ctx
        self.publisher = publisher
        self.relay = relay
        self.sink = sink
        self.config = config
        self.mailboxes = mailboxes
        self.revocations = revocations
        self.catalog = catalog
        self.health = health
        self.children = children
        self.fleet = fleet
        self.keys = keys
        self.tokens = tokens
        self.actions = actions
        self.quotas = quotas
        self.metrics = metrics


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
        self.worker_count = settings.server.workers or os.cpu_count() or 1
        self._signals: asyncio.Queue[int] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._forced = asyncio.Event()
        self._stopping = False
        self._exit_code = EXIT_OK
        self._announced = False
        self._started_at = time.time()
        self._sender = Sender(Role.SUPERVISOR, -1, os.getpid())
        self._tasks = Background("supervisor")
        self._port_holder: socket.socket | None = None
        self.port = settings.server.port
        self._parts: _Parts | None = None
        self._watcher: ConfigWatcher | None = None
        self._reloading = asyncio.Lock()
        self._catalog_ready = False
        self.reports = MessageRouter("supervisor reports")

    @property
    def parts(self) -> _Parts:
        assert self._parts is not None, "the supervisor is not running"
        return self._parts

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
        fleet = self.parts.fleet
        try:
            fleet.start()
            while not self._stopping:
                await self._wait()
                await self._dispatch_signals()
                fleet.murder(self.settings.server.worker_timeout)
                fleet.manage()
                self.parts.metrics.sample(fleet, self.parts.config)
        finally:
            await self._stop()
            for sig in _SIGNAL_NAMES:
                loop.remove_signal_handler(sig)
            self._teardown()
        log.info("supervisor exiting with code %d", self._exit_code)
        return self._exit_code

    def _setup(self) -> None:
        server = self.settings.server
        check_destination(self.settings.audit)  # workers write the trail; refuse to start if they could not
        self.port, self._port_holder = prepare_listener(server.host, server.port)
        runtime_dir = create_runtime_dir(server.runtime_dir)
        endpoints = Endpoints.in_dir(runtime_dir)
        metrics = Metrics(prepare_dir(runtime_dir))  # every process's metric files, in the private directory
        metrics.enabled = self.settings.metrics.enabled
        recorder = SupervisorMetrics(metrics)
        ctx = zmq.asyncio.Context()
        relay = RelayPublisher(ctx, endpoints)
        sessions = self.settings.sessions
        mailboxes = Mailboxes(relay, self._sender, sessions.event_buffer, sessions.event_buffer_bytes, sessions.ttl)
        publisher = StatePublisher(ctx, endpoints, self._sender, requests={
            Kind.STATUS_REQUEST: self._status_request,
            Kind.REPLAY_REQUEST: mailboxes.replay,  # type: ignore[dict-item]
            Kind.ADMIN_ACTION: self._admin_action,  # the actions are built below, with the parts they act on
        })
        sink = ReportSink(ctx, endpoints, self.reports)
        # Sessions survive worker restarts; with a configured secret they also survive gateway restarts
        # and are valid on every host that shares it.
        secret = sessions.secret.encode() if sessions.secret else os.urandom(32)
        publisher.set(Namespace.SESSIONS, "", SessionKeys(secret, sessions.ttl))
        config = ConfigStore(self.settings, self._source, self._config_path, self._overrides, self._environ,
                             publisher)
        tokens = BackendTokens(publisher)
        catalog = CatalogBuilder(runtime_dir, self._publish_catalog, self._sender, tokens.credentials)

        def publish_routes(name: str, routes: BackendRoutes | None) -> None:
            publisher.set(Namespace.ROUTES, name, routes)
            recorder.routes(name, routes)

        health = HealthManager(runtime_dir, publish_routes, self._sender, tokens.credentials)
        children = StdioChildren([catalog.stdio_status, health.stdio_status, recorder.child_status])
        fleet = Fleet(self.worker_count, server.standby_workers, Specs(self._worker_spec, self._host_spec),
                      relay, self._sender, halt=self._boot_error, wake=self._wake.set,
                      on_ready=self._announce_if_ready, host_exited=children.host_gone)
        record = self._revocation_log(secret) if sessions.secret else None  # else sessions end with the gateway
        revocations = RevocationList(publisher, mailboxes.drop, record)
        revocations.load()
        keys = IssuerKeys(publisher)
        actions = AdminActions(publisher, health, config, self.reload, lambda: self.settings)
        quotas = Quotas(relay, self._sender, self.settings.rate_limits)
        self._parts = _Parts(runtime_dir, endpoints, ctx, publisher, relay, sink, config, mailboxes, revocations,
                             catalog, health, children, fleet, keys, tokens, actions, quotas, recorder)
        for part in (fleet, children, mailboxes, revocations, health, keys, tokens, quotas):
            part.register(self.reports)
        for kind in sorted(RELAYED - {Kind.SESSION_EVENT, Kind.ADOPT, Kind.LEASE_GRANT}):  # those are ours to send
            self.reports.register(kind, relay.publish)
        self.reports.register(Kind.BACKEND_CHANGED, lambda envelope: catalog.backend_changed(
            envelope.payload.backend))  # type: ignore[attr-defined]
        if self._config_path is not None:
            self._watcher = ConfigWatcher(self._config_path, self._file_changed, self._tasks)
        self._tasks.spawn(publisher.serve(), "bus-serve")
        self._tasks.spawn(publisher.run_heartbeats(server.heartbeat_interval), "bus-heartbeat")
        self._tasks.spawn(sink.serve(), "bus-reports")
        self._tasks.spawn(self._housekeeping(), "housekeeping")
        self._tasks.spawn(quotas.sweep(), "rate-limit-leases")
        self._tasks.spawn(self._first_catalog(), "first-catalog")
        if record is not None:
            self._tasks.spawn(revocations.follow(), "revocation-log")
        log.info("starting %d workers for %s:%d (config %s, runtime dir %s)", self.worker_count, server.host,
                 self.port, self._source, runtime_dir)

    def _revocation_log(self, secret: bytes) -> RevocationLog:
        sessions = self.settings.sessions
        directory = sessions.state_dir or default_state_dir()
        try:
            return RevocationLog(directory, secret, sessions.ttl)
        except OSError as exc:
            raise ValueError(f"cannot keep session state in {directory}: {exc.strerror or exc}; set "
                             "sessions.state_dir to a directory this user can write") from None

    def _worker_spec(self, slot: int, standby: bool) -> WorkerSpec:
        server = self.settings.server
        parts = self.parts
        return WorkerSpec(slot=slot, host=server.host, port=self.port, endpoints=parts.endpoints,
                          heartbeat_interval=server.heartbeat_interval, drain_timeout=server.drain_timeout,
                          log_level=server.log_level, supervisor_pid=os.getpid(),
                          runtime_dir=str(parts.runtime_dir), standby=standby,
                          log_format=self.settings.logging.format)

    def _host_spec(self) -> HostSpec:
        server = self.settings.server
        return HostSpec(self.parts.endpoints, str(self.parts.runtime_dir), server.log_level, os.getpid(),
                        server.heartbeat_interval, self.settings.logging.format)

    def _teardown(self) -> None:
        if self._watcher is not None:
            self._watcher.close()
        parts = self._parts
        if parts is not None:
            for closable in (parts.publisher, parts.sink, parts.relay):
                closable.close()
            parts.ctx.term()
            shutil.rmtree(parts.runtime_dir, ignore_errors=True)
        if self._port_holder is not None:
            self._port_holder.close()

    async def _wait(self) -> None:
        timeout = self.settings.server.heartbeat_interval
        due = self.parts.fleet.next_due()
        if due is not None:
            timeout = max(0.0, min(timeout, due - time.monotonic()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()

    async def _stop(self) -> None:
        parts = self._parts
        if parts is not None:
            await parts.fleet.stop(self.settings.server.drain_timeout + _KILL_GRACE, self._forced)
            await parts.catalog.close()
            await parts.health.close()
            await parts.keys.close()
            await parts.tokens.close()
        await self._tasks.close()

    # ------------------------------------------------------------ signals

    def _on_signal(self, sig: int) -> None:
        if self._stopping and sig in (signal.SIGTERM, signal.SIGINT):
            log.warning("second %s while draining: killing workers now", signal.Signals(sig).name)
            self._forced.set()
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
        await self.reload("signal")

    async def _file_changed(self) -> None:
        log.info("config file changed: reloading")
        await self.reload("file change")

    async def reload(self, trigger: str) -> bool:
        """Validate the config again; on success apply the difference (added backends start, removed ones
        drain and stop, changed ones restart, the rest are untouched) and publish it. False: the config is
        invalid and the running one stays."""
        parts = self.parts
        async with self._reloading:
            started = time.monotonic()
            if not parts.config.reload(trigger):
                parts.metrics.sample(parts.fleet, parts.config)  # the failure counted now, not at the next turn
                return False
            self.settings = parts.config.settings
            self._apply_live(parts)
            parts.keys.apply(self.settings.auth.jwt)
            parts.tokens.apply(self.settings)  # before discovery and probes, which may need a new token
            await parts.catalog.apply(self.settings)
            await parts.health.apply(self.settings)
            parts.actions.configure(self.settings)
            parts.fleet.want_host(self._needs_host())
            parts.config.last_apply_ms = round((time.monotonic() - started) * 1000, 2)
            parts.config.history[-1]["apply_ms"] = parts.config.last_apply_ms
            parts.metrics.sample(parts.fleet, parts.config)  # the reload counted now, not at the next turn
            return True

    def _apply_live(self, parts: _Parts) -> None:
        """What the supervisor itself does with reloaded settings (workers and the stdio host apply theirs
        from the published config)."""
        settings = self.settings
        set_level(settings.server.log_level)
        parts.metrics.enable(settings.metrics.enabled)
        set_format(settings.logging.format)
        sessions = settings.sessions
        parts.mailboxes.configure(sessions.event_buffer, sessions.event_buffer_bytes, sessions.ttl)
        parts.revocations.ttl = sessions.ttl
        parts.quotas.configure(settings.rate_limits)
        keys = parts.publisher.get(Namespace.SESSIONS)
        if isinstance(keys, SessionKeys) and keys.ttl != sessions.ttl:
            parts.publisher.set(Namespace.SESSIONS, "", SessionKeys(keys.secret, sessions.ttl))

    def _boot_error(self, message: str) -> None:
        if self._exit_code == EXIT_OK:
            log.error("%s", message)
            self._exit_code = EXIT_BOOT
        self._stopping = True
        self._wake.set()

    # ------------------------------------------------------------ catalog, sessions, stdio host

    def _needs_host(self) -> bool:
        return any(b.transport == "stdio" and not getattr(b, "per_worker", False)
                   for b in self.settings.enabled_backends())

    async def _first_catalog(self) -> None:
        parts = self.parts
        parts.fleet.want_host(self._needs_host())
        parts.keys.apply(self.settings.auth.jwt)
        parts.tokens.apply(self.settings)  # discovery of a backend with oauth waits for its first token
        await parts.catalog.apply(self.settings)
        await parts.health.apply(self.settings)
        await parts.catalog.wait_first_round(_FIRST_CATALOG_WAIT)
        await parts.tokens.wait_first(_FIRST_CATALOG_WAIT)
        # Tokens are checked from the first request on: the first fetch of the issuer's keys is tried before
        # "ready" (an issuer that is down does not hold the start: its keys keep being retried).
        await parts.keys.wait_first(_FIRST_CATALOG_WAIT)
        self._catalog_ready = True
        self._announce_if_ready()

    def _publish_catalog(self, catalog: dict[str, Any]) -> None:
        publisher = self.parts.publisher
        current = publisher.get(Namespace.CATALOG)
        if isinstance(current, CatalogState) and current.catalog == catalog:
            return
        version = current.version + 1 if isinstance(current, CatalogState) else 1
        publisher.set(Namespace.CATALOG, "", CatalogState(version, catalog))

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(_HOUSEKEEPING)
            self.parts.mailboxes.expire()
            self.parts.revocations.expire()

    def _announce_if_ready(self) -> None:
        if self._announced or not self._catalog_ready or not self.parts.fleet.all_ready:
            return
        self._announced = True
        host = self.settings.server.host
        shown = f"[{host}]" if ":" in host else host
        log.info("ready url=http://%s:%d workers=%d", shown, self.port, self.worker_count)
        current = self.parts.publisher.get(Namespace.CATALOG)
        startup_summary(self.settings, current.catalog if isinstance(current, CatalogState) else {},
                        f"http://{shown}:{self.port}", self.worker_count)

    # ------------------------------------------------------------ status

    def _admin_action(self, request: Any) -> Awaitable[tuple[Kind, AdminResult]]:
        return self.parts.actions.handle(request)

    def _status_request(self, request: Any) -> tuple[Kind, Status]:
        assert isinstance(request, Request)
        return Kind.STATUS, Status(request.request_id, self.status())

    def status(self) -> dict[str, Any]:
        """The supervisor's view, served to the admin API through the bus."""
        parts = self.parts
        fleet = parts.fleet.describe()
        return {
            "supervisor": {"pid": os.getpid(), "rss_bytes": rss_bytes(os.getpid()), "started_at": self._started_at,
                           "uptime": round(time.time() - self._started_at, 3)},
            "config": parts.config.describe(),
            "state_seq": parts.publisher.seq,
            "workers": fleet["workers"],
            "standby": fleet["standby"],
            "stdio_host": fleet["stdio_host"],
            "catalog": self._catalog_summary(),
            "routes": parts.health.describe(),
            "operator": parts.actions.describe(),
            "stdio": parts.children.describe(),
            "sessions": {**parts.mailboxes.describe(), "revoked": len(parts.revocations)},
            "jwks": parts.keys.describe(),
            "oauth": parts.tokens.describe(),
            "rate_limits": parts.quotas.describe(),
            "bus": {"reports": self.reports.describe(), "background_failures": self._tasks.failures},
        }

    def _catalog_summary(self) -> dict[str, Any]:
        current = self.parts.publisher.get(Namespace.CATALOG)
        if not isinstance(current, CatalogState):
            return {"version": 0}
        catalog = current.catalog
        return {"version": current.version, "backends": catalog.get("backends", {}),
                "tools": len(catalog.get("tools", [])), "prompts": len(catalog.get("prompts", [])),
                "resources": len(catalog.get("resources", [])), "templates": len(catalog.get("templates", [])),
                "collisions": catalog.get("collisions", []), "shaping": catalog.get("shaping", [])}

