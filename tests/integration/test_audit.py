"""The audit trail on a real gateway: one line per answered request, written before the answer, so a worker
killed with SIGKILL under load, size-based rotation under load, and a file moved away (logrotate) lose none
and repeat none; arguments masked; the session id never written; every door and destination.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from only1mcp.audit.line import session_hash
from tests.support.audit import Load, read_trail, run_client, sid_of, tool_call, trail_files
from tests.support.doors import LegacySseDoor, WebSocketDoor
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

CLIENTS = 6


def _config(audit: str, workers: int = 2) -> str:
    return (f"server: {{port: 0, workers: {workers}}}\naudit: {{{audit}}}\nbackends:\n  - name: demo\n"
            f"    command: {sys.executable}\n    args: [\"-m\", \"only1mcp.demo_server\"]\n")


async def _start(launch_gateway: Any, tmp_path: Path, audit: str, workers: int = 2) -> Any:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(_config(audit, workers))
    return await launch_gateway("--config", str(config))


async def _answered_at_least(load: Load, count: int) -> None:
    await eventually(lambda: len(load.answered) >= count, 60, f"{count} answered requests")


def _no_session_ids(path_text: str, load: Load) -> None:
    for token in load.tokens:
        assert token not in path_text and sid_of(token) not in path_text


async def test_a_worker_killed_under_load_loses_no_answered_request(launch_gateway, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    gateway = await _start(launch_gateway, tmp_path, f"enabled: true, path: {path}")
    pids = await gateway.fetch_worker_pids()
    assert len(pids) == 2
    victim = pids[0]
    load = Load()
    # Half the clients on the worker that is killed: their connections break mid-load and they go on
    # through new connections; the other half keep theirs.
    clients = [asyncio.create_task(run_client(gateway.url, c, load, worker=pids[c % 2])) for c in range(CLIENTS)]
    try:
        await _answered_at_least(load, 600)
        os.kill(victim, signal.SIGKILL)
        answered_at_kill = len(load.answered)
        await _answered_at_least(load, answered_at_kill + 900)
    finally:
        load.stop.set()
        await asyncio.gather(*clients)
    assert load.broken >= 1  # requests were in flight on the killed worker
    text = path.read_text()
    lines = read_trail(path)
    load.check(lines)
    _no_session_ids(text, load)
    calls = [line for line in lines if line["method"] == "tools/call"]
    assert all(line["outcome"] == "ok" and line["target"] == "demo_echo" and line["backend"] == "demo"
               and line["auth"] == "anonymous" and line["client"] == "127.0.0.1" and "arguments" not in line
               for line in calls)


async def test_rotation_under_load_loses_and_repeats_nothing(launch_gateway, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    gateway = await _start(launch_gateway, tmp_path, f"enabled: true, path: {path}, max_bytes: 32768, "
                                                     "backups: 10000")
    load = Load()
    await asyncio.gather(*(run_client(gateway.url, c, load, calls=250) for c in range(CLIENTS)))
    files = trail_files(path)
    assert len(files) >= 10  # about 1,500 lines of ~330 bytes in files of 32 KiB
    assert all(f.stat().st_size >= 32768 for f in files[:-1])  # each rotated once full, and once only
    load.check(read_trail(*files))


async def test_a_file_moved_away_is_reopened_and_sighup_reloads_the_config(launch_gateway, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    gateway = await _start(launch_gateway, tmp_path, f"enabled: true, path: {path}")
    before, after = Load(), Load()
    await asyncio.gather(*(run_client(gateway.url, c, before, calls=40) for c in range(4)))
    moved = tmp_path / "audit.log.1"
    os.rename(path, moved)  # logrotate's rename, then its postrotate SIGHUP after a config change
    (tmp_path / "only1mcp.yaml").write_text(_config(f"enabled: true, path: {path}, include_arguments: true"))
    gateway.signal(signal.SIGHUP)
    async with aiohttp.ClientSession() as http, http.get(
            gateway.url + "/api/v1/admin/wait?config_version=2&timeout=20") as response:
        assert response.status == 200

    async def on_every_worker() -> bool:
        return {w["config_version"] for w in (await gateway.fetch_status())["workers"]} == {2}

    await eventually(on_every_worker, 20, "config version 2 on both workers")
    await asyncio.gather(*(run_client(gateway.url, c, after, calls=40) for c in range(4, 8)))
    old, new = read_trail(moved), read_trail(path)
    before.check(old)
    after.check(new)
    assert {line["session"] for line in old}.isdisjoint({line["session"] for line in new})
    calls = [line for line in new if line["method"] == "tools/call"]
    assert len(calls) == 160 and all(line["arguments"]["text"].startswith("c") for line in calls)


async def test_arguments_are_recorded_with_credentials_masked(launch_gateway, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    gateway = await _start(launch_gateway, tmp_path, f"enabled: true, path: {path}, include_arguments: true",
                           workers=1)
    arguments = {"text": "visible", "api_key": "sk-live-123", "nested": {"Password": "hunter2"},
                 "headers": [{"Authorization": "Bearer eyJ-secret"}], "refresh_token": "rt-456"}
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answer = await mcp.call("tools/call", {"name": "demo_echo", "arguments": arguments}, request_id=5)
        assert answer["result"]["content"][0]["text"] == "visible"
    text = path.read_text()
    [line] = [line for line in read_trail(path) if line["id"] == 5]
    assert line["arguments"] == {"text": "visible", "api_key": "***", "nested": {"Password": "***"},
                                 "headers": [{"Authorization": "***"}], "refresh_token": "***"}
    for secret in ("sk-live-123", "hunter2", "eyJ-secret", "rt-456"):
        assert secret not in text
    assert line["session"] == session_hash(sid_of(mcp.session_id)) and mcp.session_id not in text


async def test_every_door_and_outcome_is_recorded(launch_gateway, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    gateway = await _start(launch_gateway, tmp_path, f"enabled: true, path: {path}", workers=1)
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        await mcp.call("tools/call", {"name": "demo_nope"}, request_id="http-unknown")
        await mcp.call("resources/read", {"uri": "demo://readme"}, request_id="http-read")
        await mcp.call("prompts/list", request_id="http-list")
        ws = await WebSocketDoor(http, gateway.url).open()
        await ws.call(json.loads(tool_call(0, "ws")) | {"id": "ws-call"})
        await ws.close()
        sse = await LegacySseDoor(http, gateway.url).open()
        await sse.call({"jsonrpc": "2.0", "id": "sse-prompt", "method": "prompts/get",
                        "params": {"name": "demo_greet", "arguments": {"name": "Ada"}}})
        await sse.close()
        modern = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}}
        async with http.post(gateway.url + "/mcp", json={
                "jsonrpc": "2.0", "id": "modern-call", "method": "tools/call",
                "params": {"name": "demo_echo", "arguments": {"text": "m"}, "_meta": modern}},
                headers={"Accept": "application/json, text/event-stream", "MCP-Protocol-Version": "2026-07-28",
                         "Mcp-Method": "tools/call", "Mcp-Name": "demo_echo"}) as response:
            assert response.status == 200, await response.text()
    by_id = {line["id"]: line for line in read_trail(path)}
    assert (by_id["http-unknown"]["outcome"], by_id["http-unknown"]["code"]) == ("error", -32602)
    assert by_id["http-unknown"]["backend"] is None
    assert (by_id["http-read"]["target"], by_id["http-read"]["backend"]) == ("demo://readme", "demo")
    assert by_id["http-list"]["method"] == "prompts/list" and by_id["http-list"]["target"] is None
    assert (by_id["ws-call"]["target"], by_id["ws-call"]["outcome"]) == ("demo_echo", "ok")
    assert by_id["init"]["method"] == "initialize"  # the WebSocket's and the SSE stream's
    assert (by_id["sse-prompt"]["target"], by_id["sse-prompt"]["backend"]) == ("demo_greet", "demo")
    assert by_id["modern-call"]["session"] is None and by_id["modern-call"]["backend"] == "demo"
    sessions = {by_id[key]["session"] for key in ("http-unknown", "ws-call", "sse-prompt")}
    assert len(sessions) == 3 and None not in sessions


async def test_lines_go_to_a_local_syslog_socket(launch_gateway, tmp_path: Path, short_tmp_path: Path) -> None:
    address = str(short_tmp_path / "log.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(address)
    receiver.setblocking(False)
    try:
        gateway = await _start(launch_gateway, tmp_path, f"enabled: true, syslog: {address}, facility: local3",
                               workers=1)
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            await mcp.call("tools/call", {"name": "demo_echo", "arguments": {"text": "s"}}, request_id=77)
        datagrams: list[bytes] = []

        def received() -> bool:
            try:
                while True:
                    datagrams.append(receiver.recv(65536))
            except BlockingIOError:
                pass
            return any(b'"id":77,' in d for d in datagrams)

        await eventually(received, 10, "the call's line at the syslog socket")
        [datagram] = [d for d in datagrams if b'"id":77,' in d]
        prefix, _, body = datagram.partition(b": ")
        assert prefix.startswith(b"<158>only1mcp-audit[")  # local3 (19) * 8 + info (6)
        assert json.loads(body)["target"] == "demo_echo" and not body.endswith(b"\n")
    finally:
        receiver.close()


async def test_lines_go_to_standard_output_when_no_destination_is_named(launch_gateway, tmp_path: Path) -> None:
    gateway = await _start(launch_gateway, tmp_path, "enabled: true", workers=1)
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        await mcp.call("tools/call", {"name": "demo_echo", "arguments": {"text": "o"}}, request_id=88)
    match = await gateway.log_line(r'^\{"time":.*"id":88,.*\}$')
    assert json.loads(match.group(0))["target"] == "demo_echo"


async def test_the_gateway_refuses_to_start_when_it_cannot_write_the_trail(start_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(_config(f"enabled: true, path: {tmp_path / 'missing' / 'audit.log'}"))
    gateway = start_gateway("--config", str(config), ready=False)
    assert await gateway.exited(30) == 1
    assert "cannot write the audit trail to audit.path" in gateway.log
    assert "No such file or directory" in gateway.log


async def test_principals_refused_credentials_and_denials_are_recorded(launch_gateway, tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    key = "audit-key-5f1c2e9a"
    config = tmp_path / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 1}\n"
        f"auth:\n  mode: api_key\n  api_keys:\n    - {{name: rita, sha256: {hashlib.sha256(key.encode()).hexdigest()}, "
        "roles: [reader]}\n"
        "rbac:\n  roles:\n    reader: {allow: ['tools:demo_echo']}\n"
        f"audit: {{enabled: true, path: {path}}}\n"
        f"backends:\n  - name: demo\n    command: {sys.executable}\n    args: [\"-m\", \"only1mcp.demo_server\"]\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as anonymous:
        status, body, _ = await RawMcp(anonymous, gateway.url).post_raw(tool_call(1, "no credential"))
        assert status == 401, body
    async with aiohttp.ClientSession(headers={"X-API-Key": "not-the-key"}) as wrong:
        status, _, _ = await RawMcp(wrong, gateway.url).post_raw(tool_call(2, "wrong key"))
        assert status == 401
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        await mcp.call("tools/call", {"name": "demo_echo", "arguments": {"text": "allowed"}}, request_id=3)
        denied = await mcp.call("tools/call", {"name": "demo_add", "arguments": {"a": 1, "b": 2}}, request_id=4)
        unknown = await mcp.call("tools/call", {"name": "demo_nothing"}, request_id=5)
    assert denied["error"]["message"] == unknown["error"]["message"].replace("demo_nothing", "demo_add")
    by_id = {line["id"]: line for line in read_trail(path)}
    for request_id in (1, 2):
        line = by_id[request_id]
        assert (line["outcome"], line["method"], line["principal"], line["auth"], line["session"], line["code"]) == (
            "unauthenticated", "tools/call", "127.0.0.1", "anonymous", None, -32004), line
    assert (by_id[0]["method"], by_id[0]["principal"], by_id[0]["auth"]) == ("initialize", "rita", "api_key")
    assert (by_id[3]["outcome"], by_id[3]["principal"], by_id[3]["auth"]) == ("ok", "rita", "api_key")
    assert (by_id[4]["outcome"], by_id[4]["target"], by_id[4]["principal"]) == ("denied", "demo_add", "rita")
    assert (by_id[5]["outcome"], by_id[5]["target"]) == ("error", "demo_nothing")
    assert by_id[0]["session"] == by_id[3]["session"] == by_id[4]["session"] == session_hash(sid_of(mcp.session_id))
    assert key not in path.read_text()


async def test_a_lazy_call_tool_is_audited_as_the_tool_it_ran(launch_gateway, tmp_path: Path) -> None:
    """call_tool is a rename: the trail names the tool and backend it ran, with that tool's arguments, so an
    auditor sees what a lazy client did, not the meta-tool it used. search_tools stays search_tools."""
    path = tmp_path / "audit.log"
    config = tmp_path / "only1mcp.yaml"
    config.write_text(_config(f"enabled: true, path: {path}, include_arguments: true", workers=1)
                      + "proxy: {tools_mode: lazy}\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        found = await mcp.call("tools/call", {"name": "search_tools", "arguments": {"query": "echo text"}},
                               request_id=1)
        assert "demo_echo" in json.dumps(found["result"])
        answer = await mcp.call("tools/call", {"name": "call_tool", "arguments": {
            "name": "demo_echo", "arguments": {"text": "through lazy", "api_key": "sk-lazy"}}}, request_id=2)
        assert answer["result"]["content"][0]["text"] == "through lazy"
        unknown = await mcp.call("tools/call", {"name": "call_tool", "arguments": {"name": "demo_nothing"}},
                                 request_id=3)
        assert unknown["error"]["code"] == -32602
    lines = {line["id"]: line for line in read_trail(path) if line["method"] == "tools/call"}
    assert lines[1]["target"] == "search_tools" and lines[1].get("backend") is None
    assert lines[2]["target"] == "demo_echo" and lines[2]["backend"] == "demo" and lines[2]["outcome"] == "ok"
    assert lines[2]["arguments"] == {"text": "through lazy", "api_key": "***"}
    assert lines[3]["target"] == "demo_nothing" and lines[3]["outcome"] != "ok"
    assert "sk-lazy" not in path.read_text()
