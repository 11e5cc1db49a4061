"""Start fixture MCP servers as real processes on OS-chosen loopback ports."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from .waiting import eventually, wait_until

ROOT = Path(__file__).resolve().parents[2]
_LISTENING = re.compile(r"listening on ((?:http|ws)://\S+)")


class FixtureServer:
    """``python -m tests.fixtures.<module> --transport http --port 0 …``; ``url`` is its /mcp endpoint.

    It starts on a port the OS chooses. A test that needs the server back where the gateway expects it
    after stopping it calls ``relaunch()``, which starts the same command on the same port (the fixtures
    bind with SO_REUSEADDR, so the old connections in TIME_WAIT do not block it); if another process took
    the port meanwhile, that fails at once with a message saying so.

    The constructor waits until the server listens; async tests use ``await FixtureServer.launch(...)``.
    """

    def __init__(self, module: str, *args: str, port: int = 0, transport: str = "http",
                 wait: bool = True) -> None:
        self.module, self.args, self.transport, self.requested_port = module, args, transport, port
        command = [sys.executable, "-m", f"tests.fixtures.{module}", "--transport", transport, "--port", str(port),
                   *args]
        self.process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                        start_new_session=True)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = ""
        if wait:
            self.url = wait_until(self._url, 30, f"fixture {module} to listen")

    @classmethod
    async def launch(cls, module: str, *args: str, port: int = 0, transport: str = "http") -> FixtureServer:
        server = cls(module, *args, port=port, transport=transport, wait=False)
        server.url = await eventually(server._url, 30, f"fixture {module} to listen")
        return server

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None, self.url
        return port

    async def relaunch(self) -> FixtureServer:
        """The same server started again on this one's port (stop this one first)."""
        return await FixtureServer.launch(self.module, *self.args, port=self.port, transport=self.transport)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def _url(self) -> str | None:
        if self.process.poll() is not None:
            output = "\n".join(self.lines)
            if self.requested_port and "address already in use" in output.lower():
                raise AssertionError(f"fixture {self.module} cannot listen on port {self.requested_port} again: "
                                     "another process took it after the fixture stopped\n" + output)
            raise AssertionError(f"fixture {self.module} exited with {self.process.returncode}:\n" + output)
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

    async def aclose(self) -> None:
        """``close()`` for async tests."""
        await asyncio.to_thread(self.close)


def stdio_command(module: str, *args: str) -> list[str]:
    """A fixture's stdio command line, for a backend entry in a gateway config."""
    return [sys.executable, "-m", f"tests.fixtures.{module}", "--transport", "stdio", *args]
