"""Start the real supervisor (and its real workers) as a subprocess and talk to it."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from .waiting import wait_until

_READY = re.compile(r"ready url=(\S+) workers=(\d+)")


class Gateway:
    """One ``only1mcp-supervisor`` process in its own session, with its log captured line by line."""

    def __init__(self, *args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
        command = [sys.executable, "-m", "only1mcp.supervisor.main", *args]
        full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full_env, cwd=cwd,
            start_new_session=True,
        )
        self.lines: list[str] = []
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

    def wait_ready(self, timeout: float = 30.0) -> str:
        def ready() -> str | None:
            if self.process.poll() is not None:
                raise AssertionError(f"supervisor exited with {self.process.returncode}:\n{self.log}")
            found = _READY.search(self.log)
            return found.group(1) if found else None

        self.url = wait_until(ready, timeout, "the supervisor to report ready")
        return self.url

    def wait_log(self, pattern: str, timeout: float = 10.0, after: int = 0) -> re.Match[str]:
        regex = re.compile(pattern)

        def found() -> re.Match[str] | None:
            with self._lock:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
            return None

        return wait_until(found, timeout, f"log line matching {pattern!r}\n--- log so far:\n{self.log}")

    def get(self, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """One request on a new connection."""
        request = urllib.request.Request(self.url + path, headers={"Connection": "close"})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def status(self) -> dict[str, Any]:
        code, body = self.get("/api/v1/admin/status")
        assert code == 200, body
        return body

    def try_status(self, timeout: float = 1.0) -> dict[str, Any] | None:
        """The admin status, or None when this connection reached a worker that is stopped or dying."""
        try:
            code, body = self.get("/api/v1/admin/status", timeout)
        except OSError:
            return None
        return body if code == 200 else None

    def worker_pids(self) -> list[int]:
        return [w["pid"] for w in self.status()["workers"] if w["pid"]]

    def signal(self, sig: int) -> None:
        self.process.send_signal(sig)

    def wait_exit(self, timeout: float = 30.0) -> int:
        return self.process.wait(timeout)

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


def elapsed(start: float) -> float:
    return time.monotonic() - start
