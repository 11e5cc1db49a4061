"""A reload applies what it says it applies, on the running gateway (settings that a running process once
read only at start: the log level, the session TTL, page size, body limit), and reports what needs a
restart instead of silently ignoring it."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiohttp
import pytest

from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)


def _config(server: str, proxy: str, sessions: str) -> str:
    command = stdio_command("feature_server", "--name", "files", "--tools", "12")
    return (f"server: {{port: 0, {server}}}\nproxy: {{{proxy}}}\nsessions: {{{sessions}}}\n"
            f"backends:\n  - name: files\n    command: {command[0]}\n    args: {command[1:]}\n    cwd: {ROOT}\n")


async def test_a_reload_applies_live_settings_and_reports_restart_ones(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(_config("workers: 2, log_level: info", "page_size: 100", "ttl: 3600"))
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        before = RawMcp(http, gateway.url)
        await before.initialize()
        first = await before.call("tools/list")
        assert len(first["result"]["tools"]) > 5 and "nextCursor" not in first["result"]

        config.write_text(_config("log_level: debug, max_body_size: 2048, workers: 3", "page_size: 5", "ttl: 2"))
        gateway.signal(signal.SIGHUP)
        async with http.get(gateway.url + "/api/v1/admin/wait?config_version=2&timeout=20") as response:
            assert response.status == 200
        status = await gateway.fetch_status()
        assert status["config"]["needs_restart"] == ["server.workers"]
        assert len(status["workers"]) == 2  # kept until a restart, and said so

        async def on_every_worker() -> bool:
            current = await gateway.fetch_status()
            return {w["config_version"] for w in current["workers"]} == {2}

        await eventually(on_every_worker, 20, "config version 2 on both workers")
        fresh = RawMcp(http, gateway.url)
        await fresh.initialize()
        for _ in range(4):  # new connections reach both workers: each serves pages of the new size
            page = await fresh.call("tools/list")
            assert len(page["result"]["tools"]) == 5 and page["result"]["nextCursor"]
            status_code, body, _ = await fresh.post_raw(json.dumps({
                "jsonrpc": "2.0", "id": 1, "method": "tools/call",
                "params": {"name": "files_echo", "arguments": {"text": "x" * 3000}}}).encode())
            assert status_code == 413 and "2048-byte limit" in body["error"]["message"]

        await fresh.post_raw(b'{"jsonrpc":"2.0","method":"notifications/unheard_of"}')
        await gateway.log_line(r"DEBUG ignored client notification notifications/unheard_of")

        async def expired() -> dict | None:  # the session issued before the reload outlives the new 2 s TTL
            status_code, body, _ = await before.post_raw(b'{"jsonrpc":"2.0","id":2,"method":"tools/list"}')
            return body if status_code == 404 else None

        body = await eventually(expired, 20, "the earlier session to expire under the reloaded TTL")
        assert body["error"]["message"] == "session expired; initialize a new session", body


async def test_a_reloaded_drain_timeout_is_the_one_a_stop_uses(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1, drain_timeout: 30}\n")
    gateway = await launch_gateway("--config", str(config))
    config.write_text("server: {port: 0, workers: 1, drain_timeout: 2}\n")
    gateway.signal(signal.SIGHUP)
    async with aiohttp.ClientSession() as http, http.get(
            gateway.url + "/api/v1/admin/wait?config_version=2&timeout=20") as response:
        assert response.status == 200
    gateway.signal(signal.SIGTERM)
    assert await gateway.exited() == 0
    assert "SIGTERM: draining workers (up to 2s)" in gateway.log
    assert "draining (up to 2s)" in gateway.log.split("SIGTERM", 1)[1]  # the worker's own drain, too
