"""Start fixture MCP servers as real processes on OS-chosen loopback ports."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from .waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on ((?:http|ws)://\S+)")


class FixtureServer:
    """``python -m tests.fixtures.<module> --transport http --port 0 …``; ``url`` is its /mcp endpoint."""

    def __init__(self, module: str, *args: str, port: int = 0, transport: str = "http") -> None:
        command = [sys.executable, "-m", f"tests.fixtures.{module}", "--transport", transport, "--port", str(port),
                   *args]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                        start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = wait_until(self._url, 30, f"fixture {module} to listen")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _url(self) -> str | None:
        if self.process.poll() is not None:
            raise AssertionError(f"fixture exited with {self.process.returncode}:\n" + "\n".join(self.lines))
        for line in list(self.lines):
            found = _LISTENING.search(line)
            if found:
                return found.group(1)
        return None

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def stdio_command(module: str, *args: str) -> list[str]:
    """A fixture's stdio command line, for a backend entry in a gateway config."""
    return [sys.executable, "-m", f"tests.fixtures.{module}", "--transport", "stdio", *args]


def free_port() -> int:
    """A loopback port free right now, for a fixture that must come back on the same port after a restart."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
