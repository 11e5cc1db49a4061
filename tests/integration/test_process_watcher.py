"""One watcher for every process the supervisor keeps: a hung stdio host is replaced with its children,
and a worker that cannot even be imported stops the gateway instead of restarting forever."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import aiohttp
import pytest

from only1mcp.spec import EXIT_BOOT
from tests.support.gateway import Gateway, pid_alive
from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _config(tmp_path: Path, extra_server: str = "") -> Path:
    command = stdio_command("feature_server", "--name", "files")
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 1, heartbeat_interval: 0.5, worker_timeout: 3{extra_server}}}\n"
                      f"backends:\n  - name: files\n    command: {command[0]}\n    args: {command[1:]}\n"
                      f"    cwd: {ROOT}\n")
    return config


async def _whoami(gateway: Gateway) -> str | None:
    """The stdio backend's answer through the gateway, or None while it cannot answer."""
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        _, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":1,"method":"tools/call",'
                                        b'"params":{"name":"files_whoami","arguments":{}}}')
        if isinstance(body, list):
            body = body[-1]
        return body["result"]["content"][0]["text"] if "result" in body else None


async def test_a_hung_stdio_host_is_replaced_with_its_children(launch_gateway, tmp_path: Path) -> None:
    gateway: Gateway = await launch_gateway("--config", str(_config(tmp_path)))
    assert await _whoami(gateway) == "files"
    status = await gateway.fetch_status()
    host = status["stdio_host"]["pid"]
    child = status["stdio"][0]["pid"]
    assert host and child and pid_alive(host) and pid_alive(child)

    os.kill(host, signal.SIGSTOP)  # hung: alive, but its event loop sends nothing
    await eventually(lambda: not pid_alive(host), 15, "the silent stdio host to be killed (worker_timeout is 3s)")
    await eventually(lambda: not pid_alive(child), 10, "the hung host's child to go with it")
    assert f"stdio host (pid {host}) sent no heartbeat" in gateway.log

    async def replaced() -> bool:
        current = await gateway.fetch_status()
        running = [s for s in current["stdio"] if s["state"] == "running"]
        return bool(current["stdio_host"]["pid"] not in (None, host) and running and running[0]["pid"] != child)

    await eventually(replaced, 20, "a new stdio host with a new child")
    answer = await eventually(lambda: _whoami(gateway), 20, "calls to the shared stdio backend to work again")
    assert answer == "files"
    status = await gateway.fetch_status()
    assert status["stdio_host"]["restarts"] == 1
    assert all(w["ready"] for w in status["workers"]), "workers are untouched by the host's replacement"


async def test_a_worker_that_cannot_be_imported_stops_the_gateway_without_a_restart_loop(
        start_gateway, tmp_path: Path) -> None:
    broken = str(FIXTURES / "broken_worker_import")
    env = {"PYTHONPATH": os.pathsep.join([broken, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    gateway = start_gateway("--port", "0", "--workers", "2", env=env, ready=False)  # starting does not wait
    code = await gateway.exited(60)
    assert code == EXIT_BOOT
    log = gateway.log
    assert "only1mcp.workers.main is broken in this installation" in log  # the cause, once per process
    assert "failed to boot" in log and "stopping instead of restarting it" in log
    # Each place was started once: nothing was restarted after the boot error.
    assert log.count("worker 0 started") == 1 and log.count("worker 1 started") == 1
    assert "restarting in" not in log and "replacing it in" not in log
