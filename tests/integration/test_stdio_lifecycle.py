"""stdio children: crash loops, bounds, limits, the environment, lazy start, and dying with the gateway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from tests.support.gateway import pid_alive
from tests.support.processes import ROOT, stdio_command
from tests.support.procfs import children, cpu_seconds, parent
from tests.support.rawmcp import RawMcp
from tests.support.waiting import wait_until

pytestmark = pytest.mark.timeout(180)


def _fixture(name: str, extra: str = "") -> str:
    command = stdio_command("feature_server", "--name", name)
    return f"  - name: {name}\n    command: {command[0]}\n    args: {command[1:]}\n    cwd: {ROOT}\n{extra}"


def _stdio(gateway, name: str) -> list[dict]:
    return [s for s in gateway.status()["stdio"] if s["backend"] == name]


def _wait_running(gateway, name: str, count: int) -> None:
    """Until the stdio host reports ``count`` running children of ``name`` (each reports on its own)."""
    wait_until(lambda: len({s["pid"] for s in _stdio(gateway, name) if s["state"] == "running"}) == count, 20,
               f"{count} running children of '{name}'")


async def test_child_that_exits_at_once_backs_off_then_fails_without_spinning(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1}\nbackends:\n  - name: broken\n    command: sh\n"
                      "    args: ['-c', 'exit 3']\n    max_failures: 4\n    failure_window: 60\n"
                      "    failed_retry: 300\n" + _fixture("fine"))
    gateway = start_gateway("--config", str(config))
    wait_until(lambda: [s["state"] for s in _stdio(gateway, "broken")] == ["failed"], 30, "the backend to fail")
    gateway.wait_log(r"backend 'broken' failed: 4 exits within 60s \(last: .*3.*\); next attempt in 300s")
    status = gateway.status()
    assert status["catalog"]["backends"]["broken"]["state"] == "down"
    # While failed it is not restarted in a loop: the supervisor (and the host) stay nearly idle.
    host = parent(_stdio(gateway, "fine")[0]["pid"])
    before, host_before, started = cpu_seconds(gateway.process.pid), cpu_seconds(host), time.monotonic()
    await asyncio.sleep(3)  # the window being measured, not a wait for a condition
    elapsed = time.monotonic() - started
    assert (cpu_seconds(gateway.process.pid) - before) / elapsed < 0.05
    assert (cpu_seconds(host) - host_before) / elapsed < 0.05
    async with aiohttp.ClientSession() as http:  # the other backend is unaffected
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        body = await mcp.call("tools/call", {"name": "fine_whoami", "arguments": {}})
        assert body["result"]["content"][0]["text"] == "fine"


async def test_child_count_is_bounded_by_config_not_sessions(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n" + _fixture("local", "    replicas: 2\n"))
    gateway = start_gateway("--config", str(config))
    _wait_running(gateway, "local", 2)
    pids = {s["pid"] for s in _stdio(gateway, "local")}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as http:
        async def session(i: int) -> str:
            mcp = RawMcp(http, gateway.url, keep_alive=True)
            await mcp.initialize()
            if i % 10 == 0:
                body = await mcp.call("tools/call", {"name": "local_echo", "arguments": {"text": str(i)}})
                return body["result"]["content"][0]["text"]
            return str(i)

        results = await asyncio.gather(*(session(i) for i in range(1000)))
    assert results == [str(i) for i in range(1000)]
    assert {s["pid"] for s in _stdio(gateway, "local")} == pids  # the same two children served everyone
    hosts = {parent(p) for p in pids}
    assert len(hosts) == 1
    assert sorted(children(hosts.pop(), b"feature_server")) == sorted(pids)


async def test_environment_allow_list_and_limits(start_gateway, tmp_path: Path) -> None:
    script = ("import os, resource, sys; print(os.environ.get('SECRET_TOKEN', 'absent'), os.environ.get('KEPT'), "
              "resource.getrlimit(resource.RLIMIT_NOFILE)[0], file=sys.stderr, flush=True); "
              "os.execv(sys.executable, [sys.executable, '-m', 'only1mcp.demo_server'])")
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1}\nbackends:\n  - name: boxed\n"
                      f"    command: {sys.executable}\n    args: ['-c', {json.dumps(script)}]\n"
                      "    env_allow: [PATH, HOME]\n    env: {KEPT: yes}\n    limits: {open_files: 64}\n")
    gateway = start_gateway("--config", str(config), env={"SECRET_TOKEN": "s3cret"})
    gateway.wait_log(r"backend 'boxed' \[\d+\] stderr: absent yes 64")


async def test_lazy_start_and_idle_shutdown(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1}\nbackends:\n" +
                      _fixture("sleepy", "    lazy: true\n    idle_shutdown: 1\n"))
    gateway = start_gateway("--config", str(config))
    # Discovery woke it to learn its tools; with no calls it goes back to sleep.
    wait_until(lambda: [s["state"] for s in _stdio(gateway, "sleepy")] == ["idle"] and
               gateway.status()["catalog"]["tools"] > 0, 20, "the child to stop when idle")
    gateway.wait_log(r"backend 'sleepy' stopped after 1s without calls")
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        body = await mcp.call("tools/call", {"name": "sleepy_whoami", "arguments": {}})  # wakes it
        assert body["result"]["content"][0]["text"] == "sleepy"
    wait_until(lambda: [s["state"] for s in _stdio(gateway, "sleepy")] == ["idle"], 20, "asleep again")


async def test_no_child_survives_a_killed_gateway(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n" + _fixture("local", "    replicas: 2\n"))
    gateway = start_gateway("--config", str(config))
    _wait_running(gateway, "local", 2)
    children = [s["pid"] for s in _stdio(gateway, "local")]
    assert all(pid_alive(p) for p in children)
    gateway.process.send_signal(signal.SIGKILL)
    gateway.wait_exit()
    wait_until(lambda: not any(pid_alive(p) for p in children), 10, "every stdio child to exit")


async def test_killed_child_is_restarted_and_the_next_call_works(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n" + _fixture("local"))
    gateway = start_gateway("--config", str(config))
    (first,) = [s["pid"] for s in _stdio(gateway, "local")]
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: [(s["state"], s["pid"] != first) for s in _stdio(gateway, "local")] == [("running", True)],
               15, "the child to be restarted")
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        body = await mcp.call("tools/call", {"name": "local_whoami", "arguments": {}})
        assert body["result"]["content"][0]["text"] == "local"
    assert not pid_alive(first)
