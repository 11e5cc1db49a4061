"""Running a stdio backend's child process, and the transport that talks to one directly over its pipes.

The stdio host runs shared children (one per replica, reached by every worker over a Unix socket); a
backend with ``per_worker: true`` has each worker run its own child through ``ChildTransport`` instead.
Both start, log and stop children the same way, and back off the same way when a child keeps exiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import resource
import signal
from collections import deque
from collections.abc import Mapping
from typing import Any

from only1mcp.background import watched
from only1mcp.backoff import Backoff
from only1mcp.config.models import StdioBackend
from only1mcp.process import child_setup

from .base import BackendUnavailable
from .lines import LINE_LIMIT, LineChannel, LineTransport
from .pipes import StdoutLines, exec_child

__all__ = ["CHILD_CAPABILITIES", "INHERITED_ENV", "ChildTransport", "RestartPolicy", "child_environment", "spawn_child",
           "stop_child"]

log = logging.getLogger("only1mcp.stdio")

# What the gateway declares to a stdio child. Roots are per client and a child serves many clients, so
# roots are not offered; sampling and elicitation are relayed to the client whose call caused them.
CHILD_CAPABILITIES: dict[str, Any] = {"sampling": {}, "elicitation": {"form": {}, "url": {}}}
_LONG_RUN = 10.0  # a child that ran this long before exiting is restarted at once


class RestartPolicy:
    """When to start a child again after it exited: at once after a long run, backing off (0.2 s
    doubling to 30 s) while it keeps exiting; after ``max_failures`` exits within ``failure_window``
    seconds the backend is failed and tried again only after ``failed_retry`` seconds."""

    __slots__ = ("_backoff", "_exits", "failed_retry", "failure_window", "max_failures")

    def __init__(self, max_failures: int, failure_window: float, failed_retry: float) -> None:
        self.max_failures = max_failures
        self.failure_window = failure_window
        self.failed_retry = failed_retry
        self._exits: deque[float] = deque()
        # No jitter: each replica of each backend has a policy of its own, and a child's own exit code is
        # what usually repeats, so children rarely fail in step.
        self._backoff = Backoff(base=0.2, cap=30.0, jitter=0.0)

    @classmethod
    def of(cls, backend: StdioBackend) -> RestartPolicy:
        return cls(backend.max_failures, backend.failure_window, backend.failed_retry)

    def exited(self, started: float, now: float) -> tuple[float, bool]:
        """Record an exit of a child started at ``started``; returns (seconds to wait, failed)."""
        self._exits.append(now)
        while self._exits and self._exits[0] < now - self.failure_window:
            self._exits.popleft()
        if len(self._exits) >= self.max_failures:
            self._exits.clear()
            return self.failed_retry, True
        if now - started > _LONG_RUN:
            return 0.0, False
        return self._backoff.delay_for(len(self._exits) - 1), False

    @property
    def recent_exits(self) -> int:
        return len(self._exits)


# What the official MCP SDKs pass to a stdio server from their own environment, plus the locale.
INHERITED_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG")


def child_environment(backend: StdioBackend, environ: Mapping[str, str]) -> dict[str, str]:
    """The minimal inherited environment, what ``env_allow`` adds (names or fnmatch patterns), then ``env``.
    Anything else the gateway holds (its session secret, other backends' tokens) stays out."""
    patterns = (*INHERITED_ENV, *backend.env_allow)
    inherited = {name: value for name, value in environ.items()
                 if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)}
    return {**inherited, **backend.env}


async def spawn_child(backend: StdioBackend, label: str,
                      line_limit: int = LINE_LIMIT) -> tuple[asyncio.subprocess.Process, StdoutLines]:
    """Start the backend's command with its environment (see ``child_environment``), working directory
    and resource limits, in its own process group, killed if this process dies; stderr goes to the log.
    Its stdout is read in lines of at most ``line_limit`` bytes (the StdoutLines returned with it)."""
    env = child_environment(backend, os.environ)
    limits = {kind: value for kind, value in (
        (resource.RLIMIT_AS, backend.limits.address_space_mb and backend.limits.address_space_mb * 1024 * 1024),
        (resource.RLIMIT_CPU, backend.limits.cpu_seconds),
        (resource.RLIMIT_NOFILE, backend.limits.open_files)) if value}
    process, lines = await exec_child(
        backend.command, *backend.args,
        cwd=str(backend.cwd) if backend.cwd else None, env=env, limit=line_limit,
        start_new_session=True,  # its own process group: npx-style launchers are killed with it
        preexec_fn=child_setup(os.getpid(), limits),
    )
    watched(asyncio.get_running_loop().create_task(_log_stderr(process, label)))
    log.info("backend '%s' started (pid %d): %s", label, process.pid, backend.command)
    return process, lines


async def _log_stderr(process: asyncio.subprocess.Process, label: str) -> None:
    assert process.stderr is not None
    while True:
        line = await process.stderr.readline()
        if not line:
            return
        log.info("backend '%s' [%d] stderr: %s", label, process.pid, line.decode("utf-8", "replace").rstrip())


async def stop_child(process: asyncio.subprocess.Process | None, grace: float = 0.5) -> None:
    """Stop a child whose stdin the caller closed: as MCP's stdio transport asks, give it ``grace``
    seconds to exit on its own, then SIGTERM its process group (also whatever it left running there),
    then SIGKILL after 3 s."""
    if process is None:
        return
    if process.returncode is None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), grace)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    if process.returncode is not None:
        return
    try:
        await asyncio.wait_for(process.wait(), 3)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()


class ChildTransport(LineTransport):
    """This process's own child of a stdio backend, spoken to over its stdin/stdout.

    ``open`` starts the child; when it exits, ``on_close`` fires with its exit code (the session fails
    the calls in flight with it) and the owner decides when to start another; ``close`` stops it.
    """

    __slots__ = ("_backend", "_label", "_process")

    def __init__(self, backend: StdioBackend, replica: int) -> None:
        super().__init__(backend.name)
        self._backend = backend
        self._label = backend.name if backend.replicas == 1 else f"{backend.name}#{replica}"
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    async def open(self) -> None:
        try:
            self._process, lines = await spawn_child(self._backend, self._label, self._backend.max_event_bytes)
        except OSError as exc:
            raise BackendUnavailable(f"backend '{self._backend.name}' could not be started: {exc}",
                                     sent=False) from None
        assert self._process.stdin is not None
        too_long = (f"backend '{self._label}' wrote a line over {self._backend.max_event_bytes} bytes; it was "
                    "stopped (raise backends[].max_event_bytes if such messages are expected)")
        self._channel = LineChannel(f"backend '{self._label}'", lines, self._process.stdin, too_long)
        self._channel.on_message = self.on_message
        self._channel.on_close = self._stdout_closed
        self._channel.start()

    def _stdout_closed(self, error: BaseException | None) -> None:
        watched(asyncio.get_running_loop().create_task(self._report_exit(error)))

    async def _report_exit(self, error: BaseException | None) -> None:
        """The child closed its stdout: it is exiting. Report how, once it is gone (bounded wait)."""
        process = self._process
        reason = str(error) if error else "closed its stdout"
        if isinstance(error, BackendUnavailable):  # it broke the line limit and still runs: stop it
            self._process = None
            if self._channel is not None:
                self._channel.close()
            await stop_child(process)
        elif process is not None:
            try:
                code = await asyncio.wait_for(process.wait(), 1.0)
                reason = f"child (pid {process.pid}) exited with code {code}"
            except TimeoutError:
                reason = f"child (pid {process.pid}) closed its stdout"
        if self.on_close is not None:
            self.on_close(BackendUnavailable(reason))

    async def close(self) -> None:
        if self._channel is not None:
            self._channel.on_close = None  # a deliberate stop is not a crash to report
            self._channel.close()
        process, self._process = self._process, None
        await stop_child(process)
