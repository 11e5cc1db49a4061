"""A raw Streamable HTTP client for tests that need to send what a well-behaved client never would."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

ACCEPT = "application/json, text/event-stream"


class RawMcp:
    def __init__(self, http: aiohttp.ClientSession, url: str, keep_alive: bool = False) -> None:
        self.http = http
        self.url = url.rstrip("/") + "/mcp"
        self.session_id: str | None = None
        self.keep_alive = keep_alive

    def headers(self, **extra: str) -> dict[str, str]:
        headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
        if not self.keep_alive:
            headers["Connection"] = "close"
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        headers.update(extra)
        return headers

    async def initialize(self, capabilities: dict[str, Any] | None = None, version: str = "2025-06-18") -> dict:
        status, body, headers = await self.post_raw(json.dumps({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": capabilities or {},
                       "clientInfo": {"name": "raw-test", "version": "1"}}}).encode())
        assert status == 200, body
        self.session_id = headers["Mcp-Session-Id"]
        await self.post_raw(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        return body

    async def post_raw(self, data: bytes, **headers: str) -> tuple[int, Any, dict[str, str]]:
        async with self.http.post(self.url, data=data, headers=self.headers(**headers)) as response:
            text = await response.text()
            kind = response.headers.get("Content-Type", "")
            if kind.startswith("text/event-stream"):
                events = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]
                return response.status, events, dict(response.headers)
            return response.status, json.loads(text) if text else None, dict(response.headers)

    async def call(self, method: str, params: dict[str, Any] | None = None, request_id: int = 1,
                   **headers: str) -> Any:
        message = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        status, body, _ = await self.post_raw(json.dumps(message).encode(), **headers)
        assert status == 200, (status, body)
        return body[-1] if isinstance(body, list) else body


async def pinned(url: str, want: int | None = None, avoid: int | None = None,
                 attempts: int = 64) -> tuple[aiohttp.ClientSession, int]:
    """A keep-alive connection held by one known worker: SO_REUSEPORT picks the worker per connection, so
    open connections until one lands where wanted. Returns the session (one connection) and that pid."""
    for _ in range(attempts):
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1, force_close=False))
        async with http.get(url.rstrip("/") + "/health") as response:
            pid = (await response.json())["pid"]
        if (want is None or pid == want) and (avoid is None or pid != avoid):
            return http, pid
        await http.close()
    raise AssertionError(f"no connection reached the wanted worker after {attempts} tries")
