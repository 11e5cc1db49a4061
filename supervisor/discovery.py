"""Catalog discovery: the supervisor asks every backend what it offers and publishes the merged catalog.

One long-lived discovery session per backend (replica 0) also hears its list changes; a backend that is
down is retried with backoff and, per ``proxy.unavailable_backends``, its last entries are kept or dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from only1mcp.backends.base import BackendError, Message
from only1mcp.backends.credentials import Credentials
from only1mcp.backends.factory import AnyBackend, make_transport, runs_per_worker
from only1mcp.backends.session import BackendSession, Pending
from only1mcp.background import Background
from only1mcp.backoff import Backoff
from only1mcp.bus.messages import ChildState, ChildStatus, LinkPurpose, Sender
from only1mcp.catalog.merge import Discovery, merge
from only1mcp.config.models import Settings, StdioBackend
from only1mcp.http.client import Http1Pool

__all__ = ["CatalogBuilder"]

log = logging.getLogger("only1mcp.discovery")

DISCOVERY_CLIENT = {"name": "only1mcp-discovery", "version": "1"}
_LISTS = (("tools", "tools/list", "tools"), ("prompts", "prompts/list", "prompts"),
          ("resources", "resources/list", "resources"),
          ("templates", "resources/templates/list", "resourceTemplates"))
_CAPABILITY = {"tools": "tools", "prompts": "prompts", "resources": "resources", "templates": "resources"}
_MAX_RETRY = 60.0
_MAX_PAGES = 1000
_LONG_SESSION = 10.0  # seconds: a discovery session that lasted this long is reopened at once when it closes


class _Watch:
    """Discovery state of one backend."""

    __slots__ = ("backend", "changed", "discovery", "error", "host_error", "host_running", "hosted", "opened",
                 "own_child", "session", "since", "state", "task")

    def __init__(self, backend: AnyBackend) -> None:
        self.backend = backend
        self.session: BackendSession | None = None
        self.opened = 0.0  # when its session opened (monotonic)
        self.discovery: Discovery | None = None
        self.state = "starting"
        self.error = ""
        self.since = time.time()
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None
        # shared stdio only: what the stdio host last reported about replica 0's child (a per_worker
        # backend's discovery runs a child of its own for as long as it takes, through its transport)
        self.own_child = runs_per_worker(backend)
        self.hosted = isinstance(backend, StdioBackend) and not self.own_child
        self.host_running = False
        self.host_error = ""


class CatalogBuilder:
    """Runs one discovery loop per enabled backend; calls ``publish`` with each new catalog."""

    def __init__(self, runtime_dir: Path, publish: Callable[[dict[str, Any]], None], sender: Sender,
                 credentials: Callable[[str], Credentials | None] = lambda _name: None) -> None:
        self._runtime_dir = runtime_dir
        self._credentials = credentials  # a backend's oauth token for discovery (None: it has none)
        self._sender = sender
        self._publish = publish
        self._watches: dict[str, _Watch] = {}
        self._settings: Settings | None = None
        self._http: Http1Pool | None = None
        self._first_round = asyncio.Event()
        self._tasks = Background("discovery")
        self._shaping_logged: set[tuple[tuple[str, str], ...]] = set()  # problems already logged

    async def apply(self, settings: Settings) -> None:
        """Start watching added backends, stop removed or changed ones, then republish."""
        self._settings = settings
        if self._http is None:
            self._http = Http1Pool()
        wanted = {b.name: b for b in settings.enabled_backends()}
        for name, watch in list(self._watches.items()):
            if wanted.get(name) != watch.backend:
                await self._stop(watch)
                del self._watches[name]
        for name, backend in wanted.items():
            if name not in self._watches:
                watch = _Watch(backend)
                self._watches[name] = watch
                watch.task = self._tasks.spawn(self._watch(watch), f"discover-{name}")
        self._rebuild()
        if not wanted:
            self._first_round.set()

    async def wait_first_round(self, timeout: float) -> None:
        """Until every backend was discovered or failed once (bounded by ``timeout``)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._first_round.wait(), timeout)

    def backend_changed(self, name: str) -> None:
        watch = self._watches.get(name)
        if watch is not None:
            watch.changed.set()

    def stdio_status(self, status: ChildStatus) -> None:
        """The stdio host's report on a child: discovery of stdio backends follows it."""
        watch = self._watches.get(status.backend)
        if watch is None or status.replica != 0 or status.state is ChildState.STARTING:
            return
        # an idle on-demand child starts when asked
        watch.host_running = status.state in (ChildState.RUNNING, ChildState.IDLE)
        watch.host_error = "" if watch.host_running else status.last_error or status.state.value
        watch.changed.set()

    async def _watch(self, watch: _Watch) -> None:
        # Backends that went down together (a network blip) are retried spread apart, not in step.
        retry = Backoff(base=self._retry_base(), cap=_MAX_RETRY, jitter=0.2)
        while True:
            if watch.hosted and not watch.host_running:
                if watch.host_error:
                    self._set_state(watch, "down", watch.host_error)
                watch.changed.clear()
                await watch.changed.wait()  # the stdio host reports when the child runs (or fails)
                continue
            try:
                await self._discover_until_change(watch)
                retry.reset()
                continue
            except BackendError as exc:
                self._set_state(watch, "down", exc.message)
            except (OSError, TimeoutError) as exc:
                self._set_state(watch, "down", str(exc) or type(exc).__name__)
            if watch.session is not None:
                await watch.session.close()
                watch.session = None
            watch.changed.clear()
            retry.base = self._retry_base()  # proxy.discovery_retry may have been reloaded
            retry.cap = max(retry.base, _MAX_RETRY)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(watch.changed.wait(), retry.next_delay())

    async def _discover_until_change(self, watch: _Watch) -> None:
        """Discover the backend, then wait until something calls for discovering it again (raises when it
        cannot be reached, or its session keeps closing soon after it opened)."""
        if watch.session is None or watch.session.closed:
            watch.session = await self._connect(watch)
            watch.opened = time.monotonic()
        watch.discovery = await self._discover(watch.backend, watch.session)
        self._set_state(watch, "ok", "")
        watch.changed.clear()
        if watch.own_child:
            # A per_worker backend's child here would serve no call: stop it, and discover again when a
            # worker's child announces a list change (reported over the bus).
            await watch.session.close()
            watch.session = None
            await watch.changed.wait()
        elif not await self._wait_for_change(watch):
            # Its session closed (a stream ended, a connection dropped). After a long run, connect again at
            # once; a session that keeps closing soon after it opened is retried with backoff.
            if time.monotonic() - watch.opened <= _LONG_SESSION:
                raise BackendError(-32003, f"backend '{watch.backend.name}' closed its connection")
            await watch.session.close()
            watch.session = None
            log.info("backend '%s': discovery session closed; connecting again", watch.backend.name)
            return
        log.info("backend '%s' announced a list change; discovering again", watch.backend.name)

    def _retry_base(self) -> float:
        return self._settings.proxy.discovery_retry if self._settings else 5.0

    async def _wait_for_change(self, watch: _Watch) -> bool:
        """Until the backend announces a list change (then debounce briefly: True) or its session closes
        (False)."""
        session = watch.session
        assert session is not None
        closed = asyncio.Event()
        session.on_closed = lambda _exc: (closed.set(), watch.changed.set())
        await watch.changed.wait()
        await asyncio.sleep(0.05)  # several list_changed at once (tools, prompts) cost one rediscovery
        watch.changed.clear()
        return not closed.is_set()

    async def _connect(self, watch: _Watch) -> BackendSession:
        assert self._http is not None
        backend = watch.backend
        transport = make_transport(backend, 0, self._runtime_dir, self._http, self._sender, LinkPurpose.DISCOVERY,
                                   self._credentials(backend.name))

        def on_notification(message: Message, _related: Pending | None, _caller: str | None) -> None:
            if str(message.get("method", "")).endswith("/list_changed"):
                watch.changed.set()

        session = BackendSession(transport, backend.name, {}, on_notification=on_notification,
                                 startup_timeout=backend.timeouts.startup, client_info=DISCOVERY_CLIENT)
        try:
            await asyncio.wait_for(session.start(), backend.timeouts.startup + 1)
        except BaseException:
            await session.close()  # closes its connection, or stops the child a per_worker transport started
            raise
        return session

    async def _discover(self, backend: AnyBackend, session: BackendSession) -> Discovery:
        found = Discovery(backend.name, backend.effective_prefix, session.capabilities, session.server_info,
                          session.protocol_version, session.instructions)
        for attribute, method, key in _LISTS:
            if _CAPABILITY[attribute] not in session.capabilities:
                continue
            items: list[dict[str, Any]] = []
            cursor: str | None = None
            for _ in range(_MAX_PAGES):
                params = {"cursor": cursor} if cursor else None
                result = await session.call(method, params, backend.timeouts.call)
                items.extend(i for i in (result or {}).get(key, []) if isinstance(i, dict))
                cursor = (result or {}).get("nextCursor")
                if not cursor:
                    break
            setattr(found, attribute, items)
        return found

    def _set_state(self, watch: _Watch, state: str, error: str) -> None:
        if (watch.state, watch.error) != (state, error):
            watch.state, watch.error, watch.since = state, error, time.time()
            if state == "down":
                log.warning("backend '%s' is unavailable: %s", watch.backend.name, error)
            else:
                log.info("backend '%s' discovered: %d tools, %d prompts, %d resources, %d templates",
                         watch.backend.name, *(len(getattr(watch.discovery, a[0])) for a in _LISTS))
        self._rebuild()
        if all(w.state != "starting" for w in self._watches.values()):
            self._first_round.set()

    def _rebuild(self) -> None:
        if self._settings is None:
            return
        keep = self._settings.proxy.unavailable_backends == "keep"
        discoveries = []
        status: dict[str, Any] = {}
        for name, watch in self._watches.items():
            status[name] = {"state": watch.state, "error": watch.error, "since": watch.since,
                            "transport": watch.backend.transport,
                            "capabilities": watch.discovery.capabilities if watch.discovery else {}}
            if watch.discovery is not None and (watch.state == "ok" or keep):
                discoveries.append(watch.discovery)
        shaping = {b.name: (b.tools, b.prompts) for b in self._settings.enabled_backends()}
        catalog = merge(discoveries, self._settings.proxy.separator, status, shaping)
        self._report_shaping(catalog.get("shaping", []))
        self._publish(catalog)

    def _report_shaping(self, problems: list[dict[str, str]]) -> None:
        """Log each shaping override that cannot be applied once (the catalog is merged again on every
        backend state change); admin status lists them all under catalog.shaping."""
        current = {tuple(sorted(p.items())) for p in problems}
        for problem in problems:
            if tuple(sorted(problem.items())) not in self._shaping_logged:
                what = "tool" if "tool" in problem else "prompt"
                log.warning("backend '%s' %s '%s': %s (see backends[].%ss.overrides)", problem["backend"], what,
                            problem[what], problem["problem"], what)
        self._shaping_logged = current

    async def _stop(self, watch: _Watch) -> None:
        if watch.task is not None:
            watch.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch.task
        if watch.session is not None:
            await watch.session.close()

    async def close(self) -> None:
        for watch in self._watches.values():
            await self._stop(watch)
        await self._tasks.close()
        if self._http is not None:
            self._http.close()
