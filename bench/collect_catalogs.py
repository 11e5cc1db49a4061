"""Record the tool catalogs of real MCP servers as fixtures (tests/fixtures/catalogs/<backend>.json).

    cd bench/catalog_servers && npm ci --ignore-scripts   # the npm reference servers (package.json)
    pip install -e '.[bench]'                            # mcp-server-time, mcp-server-git, mcp-server-fetch
    python -m bench.collect_catalogs                     # needs redis-server (apt-get install redis-server)

Each server is started over stdio, initialized, and its tools/list read page by page; the tools are stored as
the server sent them (parsed JSON, nothing dropped), so the property test and bench/context.py work on what a
client of the gateway receives. No tool is called: servers that need an API key get a placeholder one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["FIXTURES", "Server", "collect", "servers"]

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "catalogs"
NPM = ROOT / "bench" / "catalog_servers" / "node_modules" / "@modelcontextprotocol"
_TIMEOUT = 30.0
_PLACEHOLDER = "placeholder-not-used"  # read at start by some servers; no tool is called


@dataclass(frozen=True, slots=True)
class Server:
    """One real server: the backend name it gets in the merged catalog, and how to start it."""

    backend: str
    package: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


def _node(package: str, *args: str) -> list[str]:
    return ["node", str(NPM / package / "dist" / "index.js"), *args]


def servers(scratch: Path, redis_port: int) -> list[Server]:
    """The fifteen servers, in the order their backends are configured in the bench's merged catalog."""
    repo = scratch / "repo"
    if not repo.exists():
        repo.mkdir()
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return [
        Server("everything", "@modelcontextprotocol/server-everything", _node("server-everything", "stdio")),
        Server("filesystem", "@modelcontextprotocol/server-filesystem", _node("server-filesystem", str(scratch))),
        Server("memory", "@modelcontextprotocol/server-memory", _node("server-memory"),
               {"MEMORY_FILE_PATH": str(scratch / "memory.json")}),
        Server("thinking", "@modelcontextprotocol/server-sequential-thinking", _node("server-sequential-thinking")),
        Server("github", "@modelcontextprotocol/server-github", _node("server-github"),
               {"GITHUB_PERSONAL_ACCESS_TOKEN": _PLACEHOLDER}),
        Server("gitlab", "@modelcontextprotocol/server-gitlab", _node("server-gitlab"),
               {"GITLAB_PERSONAL_ACCESS_TOKEN": _PLACEHOLDER}),
        Server("slack", "@modelcontextprotocol/server-slack", _node("server-slack"),
               {"SLACK_BOT_TOKEN": _PLACEHOLDER, "SLACK_TEAM_ID": _PLACEHOLDER}),
        Server("maps", "@modelcontextprotocol/server-google-maps", _node("server-google-maps"),
               {"GOOGLE_MAPS_API_KEY": _PLACEHOLDER}),
        Server("brave", "@modelcontextprotocol/server-brave-search", _node("server-brave-search"),
               {"BRAVE_API_KEY": _PLACEHOLDER}),
        Server("postgres", "@modelcontextprotocol/server-postgres",
               _node("server-postgres", "postgresql://127.0.0.1:1/unused")),
        Server("puppeteer", "@modelcontextprotocol/server-puppeteer", _node("server-puppeteer")),
        Server("redis", "@modelcontextprotocol/server-redis", _node("server-redis", f"redis://127.0.0.1:{redis_port}")),
        Server("time", "mcp-server-time", [sys.executable, "-m", "mcp_server_time", "--local-timezone", "UTC"]),
        Server("git", "mcp-server-git", [sys.executable, "-m", "mcp_server_git", "--repository", str(repo)]),
        Server("fetch", "mcp-server-fetch", [sys.executable, "-m", "mcp_server_fetch"]),
    ]


class _Stdio:
    """Newline-delimited JSON-RPC with one child, just enough to list its tools."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self._next = 0

    async def request(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        self._next += 1
        await self._send({"jsonrpc": "2.0", "id": self._next, "method": method, "params": params})
        assert self._process.stdout is not None
        while True:
            line = await asyncio.wait_for(self._process.stdout.readline(), _TIMEOUT)
            if not line:
                raise RuntimeError(f"the server closed its stdout before answering {method}")
            message = json.loads(line)
            if message.get("id") == self._next and "method" not in message:
                if "error" in message:
                    raise RuntimeError(f"{method} failed: {message['error']}")
                return message["result"]

    async def _send(self, message: dict[str, Any]) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps(message).encode() + b"\n")
        await self._process.stdin.drain()

    async def notify(self, method: str) -> None:
        await self._send({"jsonrpc": "2.0", "method": method})


async def collect(server: Server) -> dict[str, Any]:
    """The server's identity and every tool it lists."""
    process = await asyncio.create_subprocess_exec(
        *server.command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL, env={"PATH": "/usr/local/bin:/usr/bin:/bin", **server.env})
    try:
        rpc = _Stdio(process)
        hello = await rpc.request("initialize", {"protocolVersion": "2025-06-18", "capabilities": {},
                                                 "clientInfo": {"name": "only1mcp-catalog", "version": "1"}})
        await rpc.notify("notifications/initialized")
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        while True:
            page = await rpc.request("tools/list", {"cursor": cursor} if cursor else {})
            tools += page.get("tools", [])
            cursor = page.get("nextCursor")
            if not cursor:
                break
    finally:
        if process.returncode is None:
            process.kill()
        await process.wait()
    return {"backend": server.backend, "package": server.package, "serverInfo": hello.get("serverInfo", {}),
            "tools": tools}


@contextlib.contextmanager
def _redis() -> Iterator[int]:
    """A throwaway redis-server on a loopback port: the Redis server connects before it answers initialize."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                                "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield port
    finally:
        process.terminate()
        process.wait(10)


async def main() -> None:
    FIXTURES.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="only1mcp-catalogs-") as scratch, _redis() as redis_port:
        for server in servers(Path(scratch), redis_port):
            catalog = await collect(server)
            path = FIXTURES / f"{server.backend}.json"
            path.write_text(json.dumps(catalog, indent=1, ensure_ascii=False) + "\n")
            print(f"{server.backend:12} {len(catalog['tools']):3} tools  {catalog['serverInfo']}")


if __name__ == "__main__":
    asyncio.run(main())
