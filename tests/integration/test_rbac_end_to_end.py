"""RBAC through a real gateway (2 workers) with real credentials: what each API key's roles let it list,
call and administer; a denied call answered exactly like an unknown tool; inheritance and deny-wins;
filtered pages under pagination."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from only1mcp.config.loader import ConfigErrors, load_settings
from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import RawMcp

pytestmark = pytest.mark.timeout(120)

READER, OPERATOR = "reader-key-0c5e1b7a", "operator-key-9d2f4e81"


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    local = stdio_command("feature_server", "--name", "local", "--tools", "6")
    folder = tmp_path_factory.mktemp("rbac-e2e")
    config = folder / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 2}\nproxy: {page_size: 2}\n"
        "auth:\n  mode: api_key\n  api_keys:\n"
        f"    - {{name: rita, sha256: {_sha(READER)}, roles: [reader]}}\n"
        f"    - {{name: otto, sha256: {_sha(OPERATOR)}, roles: [operator]}}\n"
        "rbac:\n  roles:\n"
        "    reader: {allow: ['tools:local_whoami', 'tools:local_echo', 'prompts:*']}\n"
        "    operator: {inherits: [reader], allow: ['tools:*', 'admin:*'], deny: ['tools:local_echo']}\n"
        f"backends:\n  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n")
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.credentials = {"X-API-Key": OPERATOR}
        gateway.wait_backends_up("local")
        yield gateway


@asynccontextmanager
async def _client(gateway: Gateway, key: str) -> AsyncIterator[RawMcp]:
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        yield mcp


async def _all_tools(mcp: RawMcp) -> list[str]:
    names: list[str] = []
    cursor: str | None = None
    for request_id in range(2, 200):
        page = (await mcp.call("tools/list", {"cursor": cursor} if cursor else {}, request_id=request_id))["result"]
        assert len(page["tools"]) <= 2
        names += [tool["name"] for tool in page["tools"]]
        cursor = page.get("nextCursor")
        if cursor is None:
            return names
    raise AssertionError("tools/list never ended")


async def test_each_role_lists_only_what_it_may_use_across_pages(gateway: Gateway) -> None:
    async with _client(gateway, OPERATOR) as operator:
        everything = await _all_tools(operator)
    async with _client(gateway, READER) as reader:
        assert sorted(await _all_tools(reader)) == ["local_echo", "local_whoami"]
    assert len(everything) == len(set(everything)) > 4  # pages complete and disjoint
    assert "local_echo" not in everything  # the operator's deny wins over what it inherits
    assert "local_whoami" in everything and "local_slow" in everything


def _without_name(answer: dict[str, Any], name: str) -> str:
    return json.dumps(answer, sort_keys=True).replace(name, "<name>")


async def test_a_denied_call_is_answered_exactly_like_an_unknown_tool(gateway: Gateway) -> None:
    async with _client(gateway, READER) as reader:
        denied = await reader.call("tools/call", {"name": "local_slow", "arguments": {"seconds": 0}}, request_id=7)
        unknown = await reader.call("tools/call", {"name": "local_nothing", "arguments": {"seconds": 0}},
                                    request_id=7)
        allowed = await reader.call("tools/call", {"name": "local_whoami", "arguments": {}}, request_id=8)
    assert "error" in denied
    assert _without_name(denied, "local_slow") == _without_name(unknown, "local_nothing")
    assert allowed["result"]["content"][0]["text"] == "local"


async def test_admin_needs_an_admin_permission(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/api/v1/admin/status", headers={"X-API-Key": READER}) as response:
            assert response.status == 403
            assert "admin:status" in (await response.json())["error"]
        async with http.get(gateway.url + "/api/v1/admin/status", headers={"X-API-Key": OPERATOR}) as response:
            assert response.status == 200


def test_an_api_key_with_an_undefined_role_is_refused_with_its_line(tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("auth:\n  mode: api_key\n  api_keys:\n"
                      f"    - {{name: rita, sha256: {_sha(READER)}, roles: [raeder]}}\n"
                      "rbac:\n  roles:\n    reader: {allow: ['tools:*']}\n")
    with pytest.raises(ConfigErrors) as refused:
        load_settings(config)
    text = str(refused.value)
    assert "raeder" in text and "reader" in text and ":4" in text
