"""Breakers, replicas under load, and hot reload, with real gateways and real backends."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.gateway import Gateway
from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.rawmcp import RawMcp, pinned
from tests.support.waiting import eventually, holds

pytestmark = pytest.mark.timeout(180)


def _text(body: dict[str, Any]) -> str:
    return "".join(c.get("text", "") for c in body.get("result", {}).get("content", []))


async def _web_gateway(launch_gateway: Any, tmp_path: Path, settings: str) -> tuple[Gateway, FixtureServer]:
    """A gateway (2 workers) in front of one HTTP fixture (restart it with ``relaunch()``: same port)."""
    web = await FixtureServer.launch("feature_server", "--name", "web")
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nbackends:\n  - name: web\n    url: {web.url}\n{settings}")
    try:
        return await launch_gateway("--config", str(config)), web
    except BaseException:
        await web.aclose()
        raise


async def test_breaker_opens_fails_fast_and_closes_again(launch_gateway, tmp_path: Path) -> None:
    gateway, web = await _web_gateway(launch_gateway, tmp_path, "    breaker: {failures: 3, cooldown: 1, "
                                      "max_cooldown: 2}\n    health: {interval: 60}\n")
    try:
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            assert _text(await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})) == "web"
            await web.aclose()

            async def fails_fast() -> bool:
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                assert body["error"]["code"] == -32003, body
                return "circuit open" in body["error"]["message"]

            await eventually(fails_fast, 10, "the breaker to open on every worker")
            routes = (await gateway.fetch_status())["routes"]["web"][0]
            assert routes["breaker"] == "open" and "consecutive failures" in routes["reason"]

            # Every worker refuses at once, naming the open circuit, instead of trying the dead backend (that
            # would answer "cannot reach"). How fast it refuses is measured by bench.failover.
            messages = await _answers_on_each_worker(gateway, mcp.session_id or "")
            assert all(m.startswith("backend 'web' is unavailable: circuit ") and "next attempt in" in m
                       for answers in messages.values() for m in answers), messages

            web = await web.relaunch()  # the backend comes back

            async def recovered() -> bool:
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                return _text(body) == "web"

            await eventually(recovered, 15, "a trial call to close the breaker")

            async def closed() -> bool:
                return (await gateway.fetch_status())["routes"]["web"][0]["breaker"] == "closed"

            await eventually(closed, 5, "the breaker to be reported closed")
            for _ in range(8):  # every worker agrees
                assert _text(await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})) == "web"
        await gateway.log_line(r"backend 'web' replica 0 breaker open: 3 consecutive failures")
        await gateway.log_line(r"backend 'web' replica 0 breaker half_open")
        await gateway.log_line(r"backend 'web' replica 0 breaker closed: a trial call succeeded")
    finally:
        await web.aclose()


async def _answers_on_each_worker(gateway: Gateway, session_id: str) -> dict[str, list[str]]:
    """The error messages of ten calls on a keep-alive connection to each of the two workers (``pinned``
    finds a connection held by each)."""
    first, first_pid = await pinned(gateway.url)
    second, _ = await pinned(gateway.url, avoid=first_pid)
    messages: dict[str, list[str]] = {}
    for name, http in (("first", first), ("second", second)):
        async with http:
            mcp = RawMcp(http, gateway.url, keep_alive=True)
            mcp.session_id = session_id
            answers = [await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}}) for _ in range(10)]
        messages[name] = [a.get("error", {}).get("message", f"not an error: {a}") for a in answers]
    return messages


async def _load(url: str, session_id: str, tool: str, stop: asyncio.Event, go: asyncio.Event,
                results: list[dict[str, Any]]) -> None:
    async with aiohttp.ClientSession() as http:  # keep-alive: a steady stream of calls
        mcp = RawMcp(http, url, keep_alive=True)
        mcp.session_id = session_id
        n = 0
        while not stop.is_set():
            await go.wait()
            n += 1
            results.append(await mcp.call("tools/call", {"name": tool, "arguments": {"text": str(n)}}))


async def test_losing_a_replica_under_load(launch_gateway, tmp_path: Path) -> None:
    replicas = [await FixtureServer.launch("feature_server", "--name", f"r{i}") for i in range(3)]
    config = tmp_path / "only1mcp.yaml"
    urls = "".join(f"      - {r.url}\n" for r in replicas)
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n  - name: rep\n    transport: http\n"
                      f"    replicas:\n{urls}    idempotent_tools: [echo]\n"
                      "    breaker: {failures: 2, cooldown: 30}\n    health: {interval: 60}\n"
                      "    timeouts: {call: 5}\n")  # see below: a call can wait for its timeout
    try:
        gateway = await launch_gateway("--config", str(config))
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            session_id = mcp.session_id or ""
            for tool, victim in (("rep_echo", 1), ("rep_whoami", 2)):
                stop, go = asyncio.Event(), asyncio.Event()
                go.set()
                results: list[dict[str, Any]] = []
                loops = [asyncio.create_task(_load(gateway.url, session_id, tool, stop, go, results))
                         for _ in range(6)]
                await eventually(lambda results=results: len(results) >= 100, 20, f"{tool}: load to be flowing")
                # No new calls start while the replica shuts down; the calls in flight go on. A call that reaches
                # a replica as it shuts down can be accepted and never answered (its response stream ends without
                # the result), and the gateway then waits for timeouts.call before it fails the call or retries
                # it elsewhere: 5 s here instead of the default 60 s, so that window costs little when it is hit.
                go.clear()
                await replicas[victim].aclose()
                go.set()
                before = len(results)
                await eventually(lambda results=results, before=before: len(results) >= before + 300, 30,
                                 f"{tool}: load to go on after replica {victim} was stopped")
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
        status = (await gateway.fetch_status())["routes"]["rep"]
        # The dead replicas' breakers are open (or already half-open, trying again after the cooldown).
        assert status[0]["breaker"] == "closed" and all(r["breaker"] != "closed" for r in status[1:]), status
    finally:
        for replica in replicas:
            await replica.aclose()


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


async def _catalog_everywhere(gateway: Gateway, version: int) -> bool:
    """True once both workers serve catalog ``version`` or later (new connections spread over them)."""
    seen: dict[int, int] = {}
    for _ in range(12):
        _, body = await gateway.fetch("/health")
        seen[body["pid"]] = body["catalog_version"]
    return len(seen) == 2 and all(v >= version for v in seen.values())


def _reloads(status: dict[str, Any]) -> int:
    reloads = status["config"]["reloads"]
    return reloads["ok"] + reloads["failed"]


async def test_hot_reload_adds_a_backend_on_every_worker(launch_gateway, tmp_path: Path) -> None:
    web = await FixtureServer.launch("feature_server", "--name", "web")
    try:
        config = _config(tmp_path, _stdio_entry("local"))
        gateway = await launch_gateway("--config", str(config))
        before = (await gateway.fetch_status())["catalog"]["version"]
        _config(tmp_path, _stdio_entry("local") + f"  - name: web\n    url: {web.url}\n")

        async def web_tools_everywhere() -> bool:
            catalog = (await gateway.fetch_status())["catalog"]
            web_ready = (catalog.get("backends") or {}).get("web", {}).get("state") == "ok"
            return web_ready and catalog["version"] > before and await _catalog_everywhere(gateway, catalog["version"])

        # Save to every worker takes about 0.55 s (bench.failover, 'reload'); the deadline only catches a
        # change that never arrives.
        await eventually(web_tools_everywhere, 15, "the new backend's tools on every worker")
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
            assert _text(body) == "web", body
        await gateway.log_line(r"config file changed: reloading")
    finally:
        await web.aclose()


async def test_hot_reload_keeps_serving_on_an_invalid_save(launch_gateway, tmp_path: Path) -> None:
    config = _config(tmp_path, _stdio_entry("local"))
    gateway = await launch_gateway("--config", str(config))
    mark = gateway.mark()
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n  - name: local\n    comand: x\n")
    await gateway.log_line(rf"{config}:4:5: error: .*unknown key 'comand'; did you mean 'command'", after=mark)
    assert (await gateway.fetch_status())["config"]["reloads"]["failed"] == 1
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        assert _text(await mcp.call("tools/call", {"name": "local_whoami", "arguments": {}})) == "local"


async def test_hot_reload_debounces_a_burst_of_saves(launch_gateway, tmp_path: Path) -> None:
    config = _config(tmp_path, _stdio_entry("local"))
    gateway = await launch_gateway("--config", str(config))
    done = _reloads(await gateway.fetch_status())
    mark = gateway.mark()
    for i in range(20):  # 20 saves within about 300 ms (the debounce is 500 ms): one reload
        _config(tmp_path, _stdio_entry("local").replace("cwd:", f"env: {{N: '{i}'}}\n    cwd:"))
        await asyncio.sleep(0.015)  # the pace of the saves, not a wait for anything

    async def reloaded() -> bool:
        return _reloads(await gateway.fetch_status()) > done

    await eventually(reloaded, 10, "the debounced reload")

    # A second reload from the same burst would follow within one debounce period (500 ms): watch for
    # twice that long.
    async def still_one() -> bool:
        return _reloads(await gateway.fetch_status()) == done + 1

    await holds(still_one, 1.0, "one reload for the whole burst")
    assert sum("config file changed: reloading" in line for line in gateway.lines_since(mark)) == 1


async def test_removing_a_backend_lets_its_call_in_flight_finish(launch_gateway, tmp_path: Path) -> None:
    config = _config(tmp_path, _stdio_entry("local") + _stdio_entry("other"))
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        call = asyncio.create_task(mcp.call("tools/call", {"name": "local_slow",
                                                           "arguments": {"seconds": 2, "steps": 2}}))

        async def in_flight() -> bool:  # the /health probe is itself one request in flight
            _, body = await gateway.fetch("/health")
            return body["in_flight"] >= 2 or call.done()

        await eventually(in_flight, 5, "the slow call to be in flight")
        assert not call.done(), f"the 2 s call finished before the backend was removed: {call.result()}"
        _config(tmp_path, _stdio_entry("other"))  # remove 'local' while its call runs
        body = await call
        assert "error" not in body, body
        version = (await gateway.fetch_status())["catalog"]["version"]

        async def gone() -> bool:
            listed = await mcp.call("tools/list")
            return not any(t["name"].startswith("local_") for t in listed["result"]["tools"])

        await eventually(gone, 10, "the removed backend's tools to leave the catalog")
        assert (await gateway.fetch_status())["catalog"]["version"] >= version

    # The stdio host reports the child gone once it has drained and stopped it.
    async def child_stopped() -> bool:
        return json.dumps((await gateway.fetch_status())["stdio"]).count('"local"') == 0

    await eventually(child_stopped, 10, "the child to be stopped")


async def _route(gateway: Gateway) -> dict[str, Any]:
    return (await gateway.fetch_status())["routes"]["web"][0]


async def test_health_probes_take_an_idle_dead_replica_out_and_back(launch_gateway, tmp_path: Path) -> None:
    gateway, web = await _web_gateway(launch_gateway, tmp_path, "    health: {interval: 0.2, timeout: 1, "
                                      "unhealthy_threshold: 2, healthy_threshold: 2}\n")
    try:
        await web.aclose()  # no calls at all: only the probes can notice
        await eventually(lambda: _health_is(gateway, "unhealthy"), 10, "the probes to mark it unhealthy")
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()

            async def skipped() -> bool:
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                return "failing health checks" in body.get("error", {}).get("message", "")

            await eventually(skipped, 5, "workers to skip the unhealthy replica")
            web = await web.relaunch()
            await eventually(lambda: _health_is(gateway, "healthy"), 10, "the probes to mark it healthy again")

            async def served() -> bool:
                return _text(await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})) == "web"

            await eventually(served, 5, "calls to reach it again")
        await gateway.log_line(r"backend 'web' replica 0 is unhealthy")
        await gateway.log_line(r"backend 'web' replica 0 is healthy")
    finally:
        await web.aclose()


async def _health_is(gateway: Gateway, health: str) -> bool:
    return (await _route(gateway))["health"] == health
