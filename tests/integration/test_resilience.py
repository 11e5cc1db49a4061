"""Breakers, replicas under load, and hot reload, with real gateways and real backends."""

from __future__ import annotations

import asyncio
import http.client
import json
import statistics
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.processes import ROOT, FixtureServer, free_port, stdio_command
from tests.support.rawmcp import RawMcp
from tests.support.waiting import async_wait_until, wait_until

pytestmark = pytest.mark.timeout(180)


def _text(body: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in body.get("result", {}).get("content", []))


def _web_gateway(start_gateway: Any, tmp_path: Path, settings: str) -> tuple[Any, FixtureServer, int]:
    """A gateway (2 workers) in front of one HTTP fixture on a port it can come back on after a restart."""
    port = free_port()
    web = FixtureServer("feature_server", "--name", "web", port=port)
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nbackends:\n  - name: web\n    url: {web.url}\n{settings}")
    return start_gateway("--config", str(config)), web, port


async def test_breaker_opens_fails_fast_and_closes_again(start_gateway, tmp_path: Path) -> None:
    gateway, web, port = _web_gateway(start_gateway, tmp_path, "    breaker: {failures: 3, cooldown: 1, "
                                      "max_cooldown: 2}\n    health: {interval: 60}\n")
    try:
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            assert _text(await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})) == "web"
            web.close()

            async def fails_fast() -> bool:
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                assert body["error"]["code"] == -32003, body
                return "circuit open" in body["error"]["message"]

            await async_wait_until(fails_fast, 10, "the breaker to open on every worker")
            routes = gateway.status()["routes"]["web"][0]
            assert routes["breaker"] == "open" and "consecutive failures" in routes["reason"]

            # Round trips on a lean keep-alive client pinned to each worker, so the figure is the gateway's.
            timings, messages = await asyncio.to_thread(_fail_fast_round_trips, gateway.url, mcp.session_id or "")
            assert statistics.median(timings) < 0.005, timings
            assert all(m.startswith("backend 'web' is unavailable: circuit ") and "next attempt in" in m
                       for m in messages), messages

            web = FixtureServer("feature_server", "--name", "web", port=port)  # the backend comes back

            async def recovered() -> bool:
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                return _text(body) == "web"

            await async_wait_until(recovered, 15, "a trial call to close the breaker")
            wait_until(lambda: gateway.status()["routes"]["web"][0]["breaker"] == "closed", 5, "closed")
            for _ in range(8):  # every worker agrees
                assert _text(await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})) == "web"
        gateway.wait_log(r"backend 'web' replica 0 breaker open: 3 consecutive failures")
        gateway.wait_log(r"backend 'web' replica 0 breaker half_open")
        gateway.wait_log(r"backend 'web' replica 0 breaker closed: a trial call succeeded")
    finally:
        web.close()


def _fail_fast_round_trips(url: str, session_id: str) -> tuple[list[float], list[str]]:
    host, port = url.removeprefix("http://").split(":")
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                       "params": {"name": "web_whoami", "arguments": {}}})
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream",
               "Mcp-Session-Id": session_id}
    timings: list[float] = []
    messages: list[str] = []
    pids: set[int] = set()
    for _ in range(64):  # until both workers were measured
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        connection.request("GET", "/health")
        pid = json.loads(connection.getresponse().read())["pid"]
        if pid in pids:
            connection.close()
            continue
        pids.add(pid)
        for _ in range(10):
            started = time.perf_counter()
            connection.request("POST", "/mcp", body, headers)
            answer = json.loads(connection.getresponse().read())
            timings.append(time.perf_counter() - started)
            messages.append(answer["error"]["message"])
        connection.close()
        if len(pids) == 2:
            break
    assert len(pids) == 2
    return timings, messages


async def _load(url: str, session_id: str, tool: str, stop: asyncio.Event, results: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as http:  # keep-alive: a steady stream of calls
        mcp = RawMcp(http, url, keep_alive=True)
        mcp.session_id = session_id
        n = 0
        while not stop.is_set():
            n += 1
            results.append(await mcp.call("tools/call", {"name": tool, "arguments": {"text": str(n)}}))


async def test_losing_a_replica_under_load(start_gateway, tmp_path: Path) -> None:
    replicas = [FixtureServer("feature_server", "--name", f"r{i}") for i in range(3)]
    config = tmp_path / "only1mcp.yaml"
    urls = "".join(f"      - {r.url}\n" for r in replicas)
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n  - name: rep\n    transport: http\n"
                      f"    replicas:\n{urls}    idempotent_tools: [echo]\n"
                      "    breaker: {failures: 2, cooldown: 30}\n    health: {interval: 60}\n")
    gateway = start_gateway("--config", str(config))
    try:
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            session_id = mcp.session_id or ""
            for tool, victim in (("rep_echo", 1), ("rep_whoami", 2)):
                stop = asyncio.Event()
                results: list[dict[str, Any]] = []
                loops = [asyncio.create_task(_load(gateway.url, session_id, tool, stop, results)) for _ in range(6)]

                async def calls_done(count: int, results: list[dict[str, Any]] = results) -> bool:
                    await asyncio.sleep(0.01)
                    return len(results) >= count

                await async_wait_until(lambda: calls_done(100), 20, "load to be flowing")
                replicas[victim].close()
                before = len(results)
                await async_wait_until(lambda b=before: calls_done(b + 300), 30, "load to go on after the kill")
                stop.set()
                await asyncio.gather(*loops)
                failed = [r for r in results if "error" in r]
                if tool == "rep_echo":
                    # Idempotent: a call that failed on the dead replica was retried on another one.
                    assert failed == [], failed[:3]
                else:
                    # Not idempotent: only calls in flight on the dead replica may fail (at most one per loop),
                    # never a call that was refused before reaching it.
                    assert len(failed) <= len(loops), failed
                    assert all("cannot reach" not in r["error"]["message"] for r in failed), failed
        status = gateway.status()["routes"]["rep"]
        # The dead replicas' breakers are open (or already half-open, trying again after the cooldown).
        assert status[0]["breaker"] == "closed" and all(r["breaker"] != "closed" for r in status[1:]), status
    finally:
        for replica in replicas:
            replica.close()


# ---------------------------------------------------------------- hot reload


def _config(tmp_path: Path, backends: str) -> Path:
    config = tmp_path / "only1mcp.yaml"
    text = f"server: {{port: 0, workers: 2}}\nbackends:\n{backends}"
    tmp = tmp_path / "only1mcp.yaml.tmp"
    tmp.write_text(text)
    tmp.replace(config)  # save by rename, as editors do
    return config


def _stdio_entry(name: str) -> str:
    command = stdio_command("feature_server", "--name", name)
    return f"  - name: {name}\n    command: {command[0]}\n    args: {command[1:]}\n    cwd: {ROOT}\n"


async def _catalog_everywhere(gateway: Any, version: int) -> bool:
    seen: dict[int, int] = {}
    for _ in range(12):
        _, body = gateway.get("/health")
        seen[body["pid"]] = body["catalog_version"]
    return len(seen) == 2 and all(v >= version for v in seen.values())


async def test_hot_reload_adds_backend_on_every_worker_within_1s(start_gateway, tmp_path: Path) -> None:
    web = FixtureServer("feature_server", "--name", "web")
    try:
        config = _config(tmp_path, _stdio_entry("local"))
        gateway = start_gateway("--config", str(config))
        before = gateway.status()["catalog"]["version"]
        saved = time.monotonic()
        _config(tmp_path, _stdio_entry("local") + f"  - name: web\n    url: {web.url}\n")

        async def web_tools_everywhere() -> bool:
            catalog = gateway.status()["catalog"]
            web_ready = (catalog.get("backends") or {}).get("web", {}).get("state") == "ok"
            return web_ready and catalog["version"] > before and await _catalog_everywhere(gateway, catalog["version"])

        await async_wait_until(web_tools_everywhere, 5, "the new backend's tools on every worker")
        took = time.monotonic() - saved
        assert took < 1.0, f"{took:.2f}s from save to every worker"
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
            assert _text(body) == "web", body
        gateway.wait_log(r"config file changed: reloading")
    finally:
        web.close()


async def test_hot_reload_keeps_serving_on_an_invalid_save_and_debounces(start_gateway, tmp_path: Path) -> None:
    config = _config(tmp_path, _stdio_entry("local"))
    gateway = start_gateway("--config", str(config))
    mark = len(gateway.lines)
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n  - name: local\n    comand: x\n")
    gateway.wait_log(rf"{config}:4:5: error: .*unknown key 'comand'; did you mean 'command'", after=mark)
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        assert _text(await mcp.call("tools/call", {"name": "local_whoami", "arguments": {}})) == "local"

        # 20 saves within 300 ms: one reload.
        reloads = gateway.status()["config"]["reloads"]
        done = reloads["ok"] + reloads["failed"]
        mark = len(gateway.lines)
        for i in range(20):
            _config(tmp_path, _stdio_entry("local").replace("cwd:", f"env: {{N: '{i}'}}\n    cwd:"))
            await asyncio.sleep(0.015)
        wait_until(lambda: sum(gateway.status()["config"]["reloads"][k] for k in ("ok", "failed")) > done, 5,
                   "the debounced reload")
        await asyncio.sleep(1.0)  # longer than the debounce: a second reload would have happened by now
        after = gateway.status()["config"]["reloads"]
        assert after["ok"] + after["failed"] == done + 1
        assert sum("config file changed: reloading" in line for line in gateway.lines[mark:]) == 1


async def test_removing_a_backend_lets_its_call_in_flight_finish(start_gateway, tmp_path: Path) -> None:
    config = _config(tmp_path, _stdio_entry("local") + _stdio_entry("other"))
    gateway = start_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        call = asyncio.create_task(mcp.call("tools/call", {"name": "local_slow",
                                                           "arguments": {"seconds": 2, "steps": 2}}))

        async def in_flight() -> bool:
            _, body = gateway.get("/health")
            return body["in_flight"] >= 2 or call.done()

        await async_wait_until(in_flight, 5, "the slow call to be in flight")
        _config(tmp_path, _stdio_entry("other"))  # remove 'local' while its call runs
        body = await call
        assert "error" not in body, body
        version = gateway.status()["catalog"]["version"]

        async def gone() -> bool:
            listed = await mcp.call("tools/list")
            return not any(t["name"].startswith("local_") for t in listed["result"]["tools"])

        await async_wait_until(gone, 10, "the removed backend's tools to leave the catalog")
        assert gateway.status()["catalog"]["version"] >= version
    # The stdio host reports the child gone once it has drained and stopped it.
    wait_until(lambda: json.dumps(gateway.status()["stdio"]).count('"local"') == 0, 10, "the child to be stopped")


async def test_health_probes_take_an_idle_dead_replica_out_and_back(start_gateway, tmp_path: Path) -> None:
    gateway, web, port = _web_gateway(start_gateway, tmp_path, "    health: {interval: 0.2, timeout: 1, "
                                      "unhealthy_threshold: 2, healthy_threshold: 2}\n")
    try:
        web.close()  # no calls at all: only the probes can notice
        wait_until(lambda: gateway.status()["routes"]["web"][0]["health"] == "unhealthy", 10, "unhealthy")
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()

            async def skipped() -> bool:
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                return "failing health checks" in body.get("error", {}).get("message", "")

            await async_wait_until(skipped, 5, "workers to skip the unhealthy replica")
            web = FixtureServer("feature_server", "--name", "web", port=port)
            wait_until(lambda: gateway.status()["routes"]["web"][0]["health"] == "healthy", 10, "healthy again")

            async def served() -> bool:
                return _text(await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})) == "web"

            await async_wait_until(served, 5, "calls to reach it again")
        gateway.wait_log(r"backend 'web' replica 0 is unhealthy")
        gateway.wait_log(r"backend 'web' replica 0 is healthy")
    finally:
        web.close()
