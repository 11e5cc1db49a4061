"""Start the real supervisor (and its real workers) as a subprocess and talk to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from .waiting import eventually, wait_until

_READY = re.compile(r"ready url=(\S+) workers=(\d+)")


class Gateway:
    """One ``only1mcp-supervisor`` process in its own session, with its log captured line by line.

    Each blocking method has an async counterpart for async tests (``wait_ready`` / ``until_ready``,
    ``wait_log`` / ``log_line``, ``get`` / ``fetch``, ``status`` / ``fetch_status``, ``wait_exit`` /
    ``exited``): a blocking call inside an async test stops its event loop.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        command = [sys.executable, "-m", "only1mcp.supervisor.main", *args]
        # Revocations (sessions.secret) are kept in the test's folder, not in ~/.local/state, which every run
        # and every pytest-xdist worker would share.
        own_state = {"XDG_STATE_HOME": str(cwd / "state")} if cwd is not None else {}
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **own_state, **(env or {})}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=cwd,
            start_new_session=True,
        )
        self.folder = cwd  # where it runs: the test's own folder
        self.lines: list[str] = []
        self.credentials: dict[str, str] = {}  # headers sent with get/fetch once authentication is on
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self.lines.append(line.rstrip("\n"))

    @property
    def log(self) -> str:
        with self._lock:
            return "\n".join(self.lines)

    def _ready_url(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"supervisor exited with {self.process.returncode}:\n{self.log}")
        found = _READY.search(self.log)
        return found.group(1) if found else None

    def wait_ready(self, timeout: float = 30.0) -> str:
        self.url = wait_until(self._ready_url, timeout, "the supervisor to report ready")
        return self.url

    async def until_ready(self, timeout: float = 30.0) -> str:
        self.url = await eventually(self._ready_url, timeout, "the supervisor to report ready")
        return self.url

    def _finder(self, pattern: str, after: int) -> Callable[[], re.Match[str] | None]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            with self._lock:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
            return None

        return found

    def wait_log(self, pattern: str, timeout: float = 10.0, after: int = 0) -> re.Match[str]:
        try:
            return wait_until(self._finder(pattern, after), timeout, f"log line matching {pattern!r}")
        except AssertionError as exc:  # the log as it is at the deadline, not as it was at the start
            raise AssertionError(f"{exc}\n--- log so far:\n{self.log}") from None

    async def log_line(self, pattern: str, timeout: float = 10.0, after: int = 0) -> re.Match[str]:
        try:
            return await eventually(self._finder(pattern, after), timeout, f"log line matching {pattern!r}")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- log so far:\n{self.log}") from None

    def mark(self) -> int:
        """The number of log lines so far: pass it as ``after`` to look only at what comes next."""
        with self._lock:
            return len(self.lines)

    def lines_since(self, mark: int) -> list[str]:
        with self._lock:
            return self.lines[mark:]

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """One request on a new connection."""
        request = urllib.request.Request(self.url + path, headers={"Connection": "close", **self.credentials})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    async def fetch(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """``get`` for async tests: one request on a new connection."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, http.get(
            self.url + path, headers={"Connection": "close", **self.credentials}
        ) as response:
            return response.status, json.loads(await response.read() or b"{}")

    async def fetch_text(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        """``fetch`` for an answer that is not JSON (/metrics): its status and text."""
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout)) as http, http.get(
            self.url + path, headers={"Connection": "close", **self.credentials}
        ) as response:
            return response.status, await response.text()

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/v1/admin/status")
        assert code == 200, body
        return body

    async def fetch_status(self) -> dict[str, Any]:
        code, body = await self.fetch("/api/v1/admin/status")
        assert code == 200, body
        return body

    def try_status(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """The admin status, or None when this connection reached a worker that is stopped or dying."""
        try:
            code, body = self.get("/api/v1/admin/status", timeout)
        except OSError:
            return None
        return body if code == 200 else None

    def wait_backends_up(self, *names: str, timeout: float = 30.0) -> None:
        """Until backends ``names`` are discovered ("ok") and every worker serves that catalog.

        "ready" means every backend was discovered *or failed* once; a fixture shared by many tests waits for
        them all to be up, so that a slow start fails here, named, and not in whichever test comes first.
        """

        def up() -> int | None:
            catalog = self.status()["catalog"]
            states = {name: (catalog.get("backends") or {}).get(name, {}).get("state") for name in names}
            return catalog["version"] if all(state == "ok" for state in states.values()) else None

        version = wait_until(up, timeout, f"backends {', '.join(names)} to be up")
        workers = len(self.status()["workers"])
        seen: dict[int, int] = {}

        def everywhere() -> bool:  # new connections spread over the workers
            _, body = self.get("/health")
            seen[body["pid"]] = body["catalog_version"]
            return len(seen) == workers and all(v >= version for v in seen.values())

        wait_until(everywhere, timeout, f"catalog version {version} on every worker")

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.status()["workers"] if w["pid"]]

    async def fetch_worker_pids(self) -> list[int]:
        return [w["pid"] for w in (await self.fetch_status())["workers"] if w["pid"]]

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

    async def exited(self, timeout: float = 30.0) -> int:
        return await asyncio.to_thread(self.process.wait, timeout)

    def close(self) -> None:
        """Stop whatever is left: the supervisor, then its session (workers, children)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(15)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self._reader.join(5)


@contextlib.contextmanager
def running_gateway(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Iterator[Gateway]:
    """A ready gateway for a module-scoped fixture (the ``start_gateway`` fixture is per test)."""
    gateway = Gateway(*args, env=env, cwd=cwd)
    try:
        gateway.wait_ready()
        yield gateway
    finally:
        gateway.close()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def session_members(sid: int) -> list[int]:
    """Every live process in session ``sid`` (the supervisor started with start_new_session)."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            members.append(int(entry.name))
    return members
