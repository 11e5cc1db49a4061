"""stdio backends with `per_worker: true`: each worker runs its own child, restarts it, and takes it along
when it stops; the stdio host runs none of them."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from tests.support.gateway import Gateway, pid_alive
from tests.support.processes import ROOT, stdio_command
from tests.support.procfs import children, parent
from tests.support.rawmcp import RawMcp, pinned
from tests.support.sdk import text_of
from tests.support.waiting import eventually, holds

pytestmark = pytest.mark.timeout(180)

NAME = "perworker"
FOLDER_VARIABLE = "PER_WORKER_TEST_FOLDER"


def _own_children(gateway: Gateway) -> dict[int, int]:
    """Live children of this test's backend: pid -> parent pid. Told apart by the test's folder in their
    environment (the backend's ``env``), not by their command line alone: another run of this file on the
    machine, or an earlier test's orphan, has children with the same one."""
    found = {}
    tag = f"{FOLDER_VARIABLE}={gateway.folder}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                if (b"tests.fixtures.feature_server" in command and NAME.encode() in command
                        and tag in (entry / "environ").read_bytes().split(b"\0")):
                    found[int(entry.name)] = parent(int(entry.name))
            except (OSError, IndexError):
                continue
    return found


def _children_of(gateway: Gateway, of: int) -> list[int]:
    return [pid for pid, ppid in _own_children(gateway).items() if ppid == of]


@pytest.fixture
def gateway(start_gateway, tmp_path: Path):
    command = stdio_command("feature_server", "--name", NAME)
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nbackends:\n"
                      f"  - name: {NAME}\n    command: {command[0]}\n    args: {command[1:]}\n    cwd: {ROOT}\n"
                      f"    per_worker: true\n    env: {{{FOLDER_VARIABLE}: '{tmp_path}'}}\n")
    return start_gateway("--config", str(config))


async def test_each_worker_runs_its_own_child(gateway: Gateway) -> None:
    workers = await gateway.fetch_worker_pids()
    assert len(workers) == 2
    # One child per worker; the supervisor stopped the one it discovered the lists with; the stdio host
    # runs none.
    await eventually(lambda: sorted(_own_children(gateway).values()) == sorted(workers), 20,
                     "one child under each worker")
    status = await gateway.fetch_status()
    assert status["catalog"]["backends"][NAME]["state"] == "ok"
    assert status["stdio"] == []  # nothing of it reported by the stdio host
    # Admin status lists each worker's own children (reported with its heartbeats).
    expected = {pid: {"pid": _children_of(gateway, pid)[0], "state": "running", "recent_exits": 0} for pid in workers}

    async def listed() -> bool:
        return {w["pid"]: w["children"].get(f"{NAME}#0") for w in (await gateway.fetch_status())["workers"]} == \
            expected

    await eventually(listed, 10, "admin status to show each worker's child")

    async def sampling(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        return types.CreateMessageResult(role="assistant", model="m",
                                         content=types.TextContent(type="text", text="sampled by the client"))

    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    # No keep-alive: the calls of this session spread over both workers.
    http = httpx2.AsyncClient(limits=httpx2.Limits(max_keepalive_connections=0), timeout=httpx2.Timeout(30))
    async with http, streamable_http_client(gateway.url + "/mcp", http_client=http) as (read, write), \
            ClientSession(read, write, sampling_callback=sampling) as session:
        await session.initialize()
        tools = [tool.name for tool in (await session.list_tools()).tools]
        assert f"{NAME}_whoami" in tools and f"{NAME}_ask_llm" in tools
        assert text_of(await session.call_tool(f"{NAME}_echo", {"text": "hi"})) == "hi"
        assert "sampled by the client" in text_of(await session.call_tool(f"{NAME}_ask_llm", {"prompt": "p"}))
        await session.call_tool(f"{NAME}_slow", {"seconds": 0.3, "steps": 3}, progress_callback=on_progress)
        assert progress == [1, 2, 3]
        # A worker's child announces a list change: the supervisor discovers again with a child of its own,
        # which it stops once done.
        mark = gateway.mark()
        await session.call_tool(f"{NAME}_add_tool", {"name": "extra"})
        await gateway.log_line(rf"backend '{NAME}' announced a list change; discovering again", after=mark)
        await eventually(lambda: sorted(_own_children(gateway).values()) == sorted(workers), 20,
                         "the supervisor's discovery child to stop")

    # Both workers answer from their own child.
    for pid in workers:
        http, _ = await pinned(gateway.url, want=pid)
        async with http:
            mcp = RawMcp(http, gateway.url, keep_alive=True)
            await mcp.initialize()
            body = await mcp.call("tools/call", {"name": f"{NAME}_whoami", "arguments": {}})
            assert body["result"]["content"][0]["text"] == NAME


async def test_a_crash_fails_that_call_only_and_the_child_is_restarted(gateway: Gateway) -> None:
    first, second = await gateway.fetch_worker_pids()
    await eventually(lambda: len(_children_of(gateway, first)) == 1 and len(_children_of(gateway, second)) == 1, 20,
                     "a child under each worker")
    (crashing,) = _children_of(gateway, first)
    near, _ = await pinned(gateway.url, want=first)
    far, _ = await pinned(gateway.url, want=second)
    async with near, far:
        near_mcp, far_mcp = RawMcp(near, gateway.url, keep_alive=True), RawMcp(far, gateway.url, keep_alive=True)
        await near_mcp.initialize()
        await far_mcp.initialize()
        # The child of the first worker dies in the middle of a call, while the other worker's serves one.
        other = asyncio.create_task(far_mcp.call("tools/call", {"name": f"{NAME}_slow",
                                                                "arguments": {"seconds": 1, "steps": 2}}))
        crashed = await near_mcp.call("tools/call", {"name": f"{NAME}_crash", "arguments": {}})
        assert crashed["error"]["code"] == -32003, crashed
        assert f"backend '{NAME}'" in crashed["error"]["message"]
        assert "exited with code 1" in crashed["error"]["message"]
        assert "error" not in await other
        await gateway.log_line(rf"worker-\d\[{first}\] WARNING backend '{NAME}' child \(pid {crashing}\) exited with "
                         r"code 1; restarting in 0\.\d+s")
        body = await near_mcp.call("tools/call", {"name": f"{NAME}_whoami", "arguments": {}})
        assert body["result"]["content"][0]["text"] == NAME
        (restarted,) = _children_of(gateway, first)
        assert restarted != crashing and not pid_alive(crashing)

        # kill -9 the other worker's child while idle: the worker starts another without waiting for a call.
        (killed,) = _children_of(gateway, second)
        os.kill(killed, signal.SIGKILL)
        await eventually(lambda: [p for p in _children_of(gateway, second) if p != killed], 10,
                         "a new child of the second worker")
        body = await far_mcp.call("tools/call", {"name": f"{NAME}_whoami", "arguments": {}})
        assert body["result"]["content"][0]["text"] == NAME


async def test_children_go_with_their_worker_and_the_gateway(gateway: Gateway) -> None:
    workers = await gateway.fetch_worker_pids()
    await eventually(lambda: all(len(_children_of(gateway, pid)) == 1 for pid in workers), 20,
                     "a child under each worker")
    (orphaned,) = _children_of(gateway, workers[0])
    os.kill(workers[0], signal.SIGKILL)  # its child dies with it; the worker that replaces it starts its own
    await eventually(lambda: not pid_alive(orphaned), 10, "the killed worker's child to exit")
    # The child can see its stdin close before the dying worker's listening socket is closed; a status
    # request queued on that socket would be reset. Once the worker is a zombie, all its sockets are closed.
    await eventually(lambda: not pid_alive(workers[0]), 10, "the killed worker to be gone")

    async def replaced_with_its_child() -> bool:
        pids = await gateway.fetch_worker_pids()
        return len(pids) == 2 and workers[0] not in pids and all(len(_children_of(gateway, pid)) == 1 for pid in pids)

    await eventually(replaced_with_its_child, 20, "the replacement worker's own child")
    children = list(_own_children(gateway))
    assert len(children) == 2
    gateway.signal(signal.SIGTERM)
    assert await gateway.exited() == 0
    assert not any(pid_alive(pid) for pid in children)


async def test_a_child_that_keeps_exiting_fails_in_its_worker_without_spinning(launch_gateway,
                                                                              tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 1}\nbackends:\n  - name: broken\n    command: sh\n"
                      "    args: ['-c', 'exit 3']\n    per_worker: true\n    max_failures: 3\n"
                      "    failure_window: 60\n    failed_retry: 300\n")
    gateway = await launch_gateway("--config", str(config))
    await gateway.log_line(r"worker-0\[\d+\] WARNING backend 'broken' .*; restarting in 0\.2s")
    await gateway.log_line(r"worker-0\[\d+\] ERROR backend 'broken' failed in this worker: 3 exits within 60s "
                           r"\(last: .*\); next attempt in 300s", timeout=20)
    mark = gateway.mark()
    status = await gateway.fetch_status()
    assert status["catalog"]["backends"]["broken"]["state"] == "down"
    (worker,) = [w["pid"] for w in status["workers"] if w["pid"]]

    async def reported_failed() -> bool:
        described = {w["pid"]: w["children"] for w in (await gateway.fetch_status())["workers"]}
        return described.get(worker, {}).get("broken#0") == {"pid": None, "state": "failed", "recent_exits": 0}

    await eventually(reported_failed, 10, "admin status to report the child failed")  # heartbeats carry it

    # Failed: no restart loop. Had it gone on backing off, the next start would have come 0.8 s after the
    # third exit: watch for longer than that. The worker's CPU meanwhile is measured by bench.failed_backend.
    async def still_failed() -> bool:
        return await reported_failed() and not children(worker)

    await holds(still_failed, 2, "the failed child is not started again")
    # (The supervisor's discovery still retries the backend with a child of its own, on its own schedule.)
    logged = [line for line in gateway.lines_since(mark) if f"worker-0[{worker}]" in line and "'broken'" in line]
    assert logged == [], logged
