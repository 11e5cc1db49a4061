"""Backends failing and recovering, GET-stream replay, and messages that must cross workers.

One gateway (with its backends) serves the module; the test that restarts its HTTP backend has its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, FixtureServer, stdio_command
from tests.support.rawmcp import ACCEPT, RawMcp, pinned
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)


def _config(web: FixtureServer) -> str:
    local = stdio_command("feature_server", "--name", "local")
    return ("server: {port: 0, workers: 2}\n"
            "backends:\n"
            f"  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n"
            f"  - name: web\n    url: {web.url}\n"
            f"  - name: noisy\n    command: sh\n"
            f"    args: ['-c', 'echo hello-from-stderr >&2; exec {sys.executable} -m only1mcp.demo_server']\n")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    web = FixtureServer("feature_server", "--name", "web")
    folder = tmp_path_factory.mktemp("backends")
    config = folder / "only1mcp.yaml"
    config.write_text(_config(web))
    try:
        with running_gateway("--config", str(config), cwd=folder) as gateway:
            gateway.wait_backends_up("local", "web", "noisy")
            yield gateway
    finally:
        web.close()


def _local_restarts(status: dict[str, Any]) -> list[int]:
    return [s["restarts"] for s in status["stdio"] if s["backend"] == "local"]


async def test_stdio_crash_fails_only_that_call(gateway: Gateway) -> None:
    pids = set(await gateway.fetch_worker_pids())
    (restarts,) = _local_restarts(await gateway.fetch_status())
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        crash, other = await asyncio.gather(
            mcp.call("tools/call", {"name": "local_crash", "arguments": {}}, request_id=1),
            mcp.call("tools/call", {"name": "web_echo", "arguments": {"text": "unaffected"}}, request_id=2))
        assert crash["error"]["code"] == -32003
        assert "backend 'local' exited with code 1 during the call; it is being restarted" in crash["error"]["message"]
        assert other["result"]["content"][0]["text"] == "unaffected"

        async def local_back() -> bool:
            body = await mcp.call("tools/call", {"name": "local_echo", "arguments": {"text": "again"}})
            return body.get("result", {}).get("content", [{}])[0].get("text") == "again"

        await eventually(local_back, 15, "the restarted stdio backend to answer")
    assert set(await gateway.fetch_worker_pids()) == pids
    assert _local_restarts(await gateway.fetch_status()) == [restarts + 1]


async def test_a_stdio_childs_stderr_goes_to_the_log_with_its_name(gateway: Gateway) -> None:
    await gateway.log_line(r"backend 'noisy' \[\d+\] stderr: hello-from-stderr")


async def test_expired_http_backend_session_is_reinitialized(launch_gateway, tmp_path: Path) -> None:
    web = await FixtureServer.launch("feature_server", "--name", "web")  # its own: this test restarts it
    try:
        config = tmp_path / "only1mcp.yaml"
        config.write_text(_config(web))
        gateway = await launch_gateway("--config", str(config))
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            for _ in range(6):  # establish backend sessions on both workers
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                assert body["result"]["content"][0]["text"] == "web"
            await web.aclose()  # the backend restarts: every session it issued is unknown to it now
            web = await web.relaunch()
            for _ in range(6):  # each worker meets a 404, re-initializes, and retries the call once
                body = await mcp.call("tools/call", {"name": "web_whoami", "arguments": {}})
                assert body.get("result", {}).get("content", [{}])[0].get("text") == "web", body
        await gateway.log_line(r"backend 'web': session expired; initializing a new one")
    finally:
        await web.aclose()


async def _events(response: aiohttp.ClientResponse) -> AsyncIterator[tuple[str | None, dict[str, Any]]]:
    event_id: str | None = None
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            yield event_id, json.loads(line[6:])
            event_id = None


async def test_get_stream_replays_after_last_event_id(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        assert (await mcp.call("resources/subscribe", {"uri": "feature://counter"}))["result"] == {}

        async with http.get(mcp.url, headers=mcp.headers(Accept="text/event-stream")) as stream:
            assert stream.status == 200
            touch = asyncio.create_task(mcp.call("tools/call", {"name": "local_touch",
                                                                "arguments": {"uri": "feature://counter"}}))
            first = await asyncio.wait_for(anext(_events(stream)), 10)
            await touch
        assert first == ("1", {"jsonrpc": "2.0", "method": "notifications/resources/updated",
                               "params": {"uri": "feature://counter"}})
        # While no stream is open the event waits in the session's mailbox.
        await mcp.call("tools/call", {"name": "local_touch", "arguments": {"uri": "feature://counter"}})
        async with http.get(mcp.url, headers=mcp.headers(**{"Accept": "text/event-stream",
                                                            "Last-Event-ID": "1"})) as stream:
            replayed = await asyncio.wait_for(anext(_events(stream)), 10)
        assert replayed[0] == "2" and replayed[1]["params"]["uri"] == "feature://counter"


async def _post_stream(http: aiohttp.ClientSession, mcp: RawMcp, message: dict[str, Any]) -> aiohttp.ClientResponse:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json", "Mcp-Session-Id": mcp.session_id or ""}
    response = await http.post(mcp.url, data=json.dumps(message), headers=headers)
    assert response.status == 200
    return response


@contextlib.asynccontextmanager
async def _one_session_on_two_workers(gateway: Gateway) -> AsyncIterator[tuple[aiohttp.ClientSession, RawMcp, RawMcp]]:
    """One MCP session (with sampling) over two keep-alive connections held by different workers: the
    connection to post calls on, a client for it, and a client on the other worker."""
    near, near_pid = await pinned(gateway.url)
    far, far_pid = await pinned(gateway.url, avoid=near_pid)
    assert far_pid != near_pid
    try:
        mcp = RawMcp(near, gateway.url, keep_alive=True)
        await mcp.initialize(capabilities={"sampling": {}})
        other = RawMcp(far, gateway.url, keep_alive=True)
        other.session_id = mcp.session_id
        yield near, mcp, other
    finally:
        await near.close()
        await far.close()


async def test_a_cancel_posted_to_another_worker_stops_the_call(gateway: Gateway) -> None:
    async with _one_session_on_two_workers(gateway) as (near, mcp, other):
        call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
                "params": {"name": "web_slow", "arguments": {"seconds": 60, "steps": 60, "tag": "far-cancel"},
                           "_meta": {"progressToken": "p7"}}}
        response = await _post_stream(near, mcp, call)
        events = _events(response)
        _, progress = await asyncio.wait_for(anext(events), 10)
        assert progress["method"] == "notifications/progress" and progress["params"]["progressToken"] == "p7"
        status, _, _ = await other.post_raw(json.dumps({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                                        "params": {"requestId": 7}}).encode())
        assert status == 202
        final = None
        async for _, message in events:
            if "id" in message:
                final = message
                break
        response.release()
        assert final is not None and final["error"]["code"] == -32800, final

        async def recorded() -> bool:
            body = await other.call("tools/call", {"name": "web_cancellations", "arguments": {}})
            return "far-cancel" in json.dumps(body)

        await eventually(recorded, 10, "the cancel to reach the backend")


async def test_a_sampling_request_is_answered_through_another_worker(gateway: Gateway) -> None:
    async with _one_session_on_two_workers(gateway) as (near, mcp, other):
        call = {"jsonrpc": "2.0", "id": 8, "method": "tools/call",
                "params": {"name": "web_ask_llm", "arguments": {"prompt": "cross"}}}
        response = await _post_stream(near, mcp, call)  # relayed on this worker's stream
        events = _events(response)
        _, request = await asyncio.wait_for(anext(events), 10)
        assert request["method"] == "sampling/createMessage"
        assert request["id"].startswith("o1.")
        answer = {"jsonrpc": "2.0", "id": request["id"], "result": {
            "role": "assistant", "model": "m", "content": {"type": "text", "text": "answered far away"}}}
        status, _, _ = await other.post_raw(json.dumps(answer).encode())
        assert status == 202
        _, final = await asyncio.wait_for(anext(events), 10)
        response.release()
        assert "answered far away" in json.dumps(final["result"]), final
