"""The life of one stdio child in the stdio host: start it when wanted, initialize it once, restart it when
it exits (or not: a session's child), stop it when idle, and pass its lines to its multiplexer.

It knows nothing of links or clients: ``ChildMux`` (stdio_child.py) owns one and is told, through the
``ChildEvents`` it implements, when the child is ready, what it wrote, and when it ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from only1mcp import __version__
from only1mcp.backends.base import BackendUnavailable
from only1mcp.backends.child import CHILD_CAPABILITIES, RestartPolicy, spawn_child, stop_child
from only1mcp.backends.lines import LineChannel
from only1mcp.background import watched
from only1mcp.bus.messages import ChildState
from only1mcp.config.models import StdioBackend
from only1mcp.protocol import jsonrpc
from only1mcp.protocol.versions import LATEST

__all__ = ["ChildEvents", "ChildPolicy", "ChildProcess"]

log = logging.getLogger("only1mcp.stdio")


@dataclass(frozen=True, slots=True)
class ChildPolicy:
    start_now: bool  # start when the backend starts (else on the first call)
    restart: bool  # start again after an exit (a session's child is not: the session's next call starts one)
    idle_after: float | None  # stop after this many seconds without calls


class ChildEvents(Protocol):
    """What the child's owner hears."""

    def child_ready(self, restarted: bool) -> None: ...

    def child_line(self, raw: bytes, message: dict[str, Any]) -> None: ...

    def child_ended(self, reason: str, restarting: bool) -> None: ...

    def child_state(self, state: ChildState) -> None: ...

    def child_idle(self) -> bool:
        """Whether nothing is in flight or waiting (an idle child may be stopped)."""


class ChildProcess:
    __slots__ = (
        "_channel",
        "_events",
        "_idled",
        "_ids",
        "_init_waiter",
        "_overlong",
        "_process",
        "_ready",
        "_restart_policy",
        "_runner",
        "_stopping",
        "_wanted",
        "_watchdog",
        "backend",
        "init_result",
        "label",
        "last_activity",
        "last_error",
        "policy",
        "ready",
        "restarts",
        "state",
    )

    def __init__(self, backend: StdioBackend, label: str, policy: ChildPolicy, restart_policy: RestartPolicy,
                 events: ChildEvents) -> None:
        self.backend = backend
        self.label = label
        self.policy = policy
        self._restart_policy = restart_policy
        self._events = events
        self._ids = itertools.count(1)
        self._process: asyncio.subprocess.Process | None = None
        self._channel: LineChannel | None = None
        self._init_waiter: tuple[int, asyncio.Future[dict[str, Any]]] | None = None
        self._ready = asyncio.Event()
        self.ready = False  # _ready as a plain flag: read for every call
        self._wanted = asyncio.Event()
        self._idled = False
        self._stopping = False
        self._overlong = ""  # why the child was stopped for a line over the limit
        self._runner: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self.init_result: dict[str, Any] | None = None
        self.last_activity = time.monotonic()  # of the last call (for the idle shutdown)
        self.restarts = 0
        self.state = ChildState.STARTING
        self.last_error = ""
        if policy.start_now:
            self._wanted.set()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def want(self) -> None:
        """A call needs the child: start it if it sleeps."""
        self._wanted.set()

    async def wait_ready(self, timeout: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._ready.wait(), timeout)
        return self._ready.is_set()

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._runner = loop.create_task(self._run(), name=f"child {self.label}")
        self._runner.add_done_callback(self._runner_ended)
        if self.policy.idle_after is not None:
            self._watchdog = watched(loop.create_task(self._watch_idle(self.policy.idle_after),
                                                      name=f"idle {self.label}"))
        if not self.policy.start_now:
            self._set_state(ChildState.IDLE)

    async def stop(self) -> None:
        self._stopping = True
        self._wanted.set()  # let the runner see it is stopping
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._runner is not None:
            self._runner.cancel()
        await self._kill()

    async def _run(self) -> None:
        """Start the child when wanted; with ``restart``, start it again when it exits (at once after a long
        run, backing off while it keeps exiting; failed for ``failed_retry`` after ``max_failures`` exits
        within ``failure_window``); an idle shutdown waits for the next call."""
        while not self._stopping:
            await self._wanted.wait()
            if self._stopping:
                return
            started = time.monotonic()
            self._idled = False
            await self._one_run()
            self._ready.clear()
            self.ready = False
            if self._idled:
                await self._kill()
                self._set_state(ChildState.IDLE)
                log.info("backend '%s' stopped after %gs without calls; it starts again on the next call",
                         self.label, self.policy.idle_after or 0)
                if not self.policy.restart:
                    return
                continue
            self.init_result = None
            self._events.child_ended(self.last_error, self.policy.restart)
            await self._kill()
            if self._stopping or not await self._after_exit(started):
                return

    async def _one_run(self) -> None:
        """Start, initialize and wait for the child to exit; ``last_error`` says how it ended."""
        try:
            await self._spawn()
            await self._initialize()
            self._set_state(ChildState.RUNNING)
            code = await self._process.wait() if self._process else -1
            self.last_error = self._overlong or f"exited with code {code}"
            self._overlong = ""
        except (OSError, TimeoutError, _ChildError, BackendUnavailable) as exc:
            self.last_error = await self._describe_failure(exc)  # logged once, after, with what happens next

    async def _after_exit(self, started: float) -> bool:
        """Wait as the restart policy says; False when this child is not to be started again."""
        backend = self.backend
        self.restarts += 1
        delay, failed = self._restart_policy.exited(started, time.monotonic())
        if not self.policy.restart:
            log.warning("backend '%s' %s", self.label, self.last_error)
            self._set_state(ChildState.FAILED if failed else ChildState.IDLE)
            return False
        if failed:
            self._set_state(ChildState.FAILED)
            log.error("backend '%s' failed: %d exits within %gs (last: %s); next attempt in %gs", self.label,
                      backend.max_failures, backend.failure_window, self.last_error, delay)
        else:
            self._set_state(ChildState.RESTARTING)
            log.warning("backend '%s' %s; restarting in %.1fs", self.label, self.last_error, delay)
        await asyncio.sleep(delay)
        return True

    async def _describe_failure(self, exc: BaseException) -> str:
        """The error, with the child's exit code when it is exiting anyway."""
        process = self._process
        if isinstance(exc, _ChildError) and process is not None:
            try:
                code = await asyncio.wait_for(process.wait(), 1.0)
            except TimeoutError:
                return str(exc)
            return f"exited with code {code} before answering initialize"
        return str(exc)

    async def _watch_idle(self, limit: float) -> None:
        """Stop the child after ``limit`` seconds without calls."""
        while not self._stopping:
            await asyncio.sleep(min(5.0, limit / 4))
            if self._ready.is_set() and self._events.child_idle() and time.monotonic() - self.last_activity >= limit:
                self._idled = True
                self._wanted.clear()
                await self._kill()

    async def _spawn(self) -> None:
        limit = self.backend.max_event_bytes
        self._process, lines = await spawn_child(self.backend, self.label, limit)
        assert self._process.stdin is not None
        too_long = (f"wrote a line over {limit} bytes and was stopped (raise backends[].max_event_bytes if such "
                    "messages are expected)")
        self._channel = LineChannel(f"backend '{self.label}'", lines, self._process.stdin, too_long)
        self._channel.on_line = self._line
        self._channel.on_close = self._stdout_closed
        self._channel.start()

    def _runner_ended(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            log.error("backend '%s': its supervisor loop stopped on an unexpected error; it will not be restarted "
                      "until the backend is reconfigured", self.label, exc_info=exc)
            self.last_error = f"internal error: {exc}"
            self._set_state(ChildState.FAILED)

    def _stdout_closed(self, exc: BaseException | None) -> None:
        """The child closed its stdout (it is exiting), or broke the line limit (then it is stopped, and its
        calls fail saying so): an initialize still waiting will never be answered."""
        waiter, self._init_waiter = self._init_waiter, None
        if waiter is not None and not waiter[1].done():
            waiter[1].set_exception(_ChildError("exited before answering initialize"))
        if isinstance(exc, BackendUnavailable) and self._process is not None:
            self._overlong = exc.message
            log.warning("backend '%s' %s", self.label, exc.message)
            self._process.kill()  # _run sees it exit and its owner fails the calls with the reason

    def _line(self, raw: bytes, message: dict[str, Any]) -> None:
        waiter = self._init_waiter
        if waiter is not None and "method" not in message and message.get("id") == waiter[0]:
            self._init_waiter = None
            if "error" in message:
                waiter[1].set_exception(_ChildError(f"refused initialize: {message['error']}"))
            elif not waiter[1].done():
                waiter[1].set_result(message.get("result") or {})
            return
        self._events.child_line(raw, message)

    async def _initialize(self) -> None:
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._init_waiter = (request_id, future)
        if self._channel is None or self._channel.closed:
            raise _ChildError("exited before answering initialize")
        try:
            self._channel.write(jsonrpc.request(request_id, "initialize", {
                "protocolVersion": LATEST, "capabilities": CHILD_CAPABILITIES,
                "clientInfo": {"name": "only1mcp", "version": __version__}}))
        except BackendUnavailable:
            raise _ChildError("exited before answering initialize") from None
        startup = self.backend.timeouts.startup
        try:
            result = await asyncio.wait_for(future, startup)
        except TimeoutError:
            raise _ChildError(f"did not answer initialize within {startup:g}s (timeouts.startup)") from None
        self._channel.write(jsonrpc.notification("notifications/initialized"))
        self.init_result = result
        self._ready.set()
        self.ready = True
        self._channel.on_line = self._events.child_line  # no initialize to wait for any more: straight through
        self._events.child_ready(bool(self.restarts) and self.policy.restart)

    async def _kill(self) -> None:
        process, self._process = self._process, None
        if self._channel is not None:
            self._channel.close()
            self._channel = None
        await stop_child(process)

    def _set_state(self, state: ChildState) -> None:
        self.state = state
        self._events.child_state(state)

    def write_raw(self, raw: bytes) -> None:
        """One message for the child, already JSON; dropped when it is exiting (its exit fails the calls)."""
        channel = self._channel
        if channel is not None and not channel.closed:
            try:
                channel.write_line(raw)
            except BackendUnavailable:
                log.debug("backend '%s': input closed while writing", self.label)

    def next_id(self) -> int:
        return next(self._ids)


class _ChildError(Exception):
    pass
