"""Authentication with API keys on every door, driven by the official SDK's clients: the 401 and its
challenge, Protected Resource Metadata, sessions bound to the principal that opened them, admin and health.

Keys are configured by their SHA-256 only; the clients send the keys themselves.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import ACCEPT, RawMcp
from tests.support.sdk import text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

ALICE, BOB = "alice-key-7f3a9c0d2b", "bob-key-51e8d6a4c9"
INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "auth-test", "version": "1"}}}).encode()


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _config(folder: Path, keys: dict[str, str]) -> Path:
    local = stdio_command("feature_server", "--name", "local")
    entries = "".join(f"    - {{name: {name}, sha256: {_sha(key)}, roles: [reader]}}\n" for name, key in keys.items())
    config = folder / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\n"
                      f"auth:\n  mode: api_key\n  api_keys:\n{entries}"
                      f"backends:\n  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n")
    return config


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("auth-api-keys")
    with running_gateway("--config", str(_config(folder, {"alice": ALICE, "bob": BOB})), cwd=folder) as gateway:
        gateway.credentials = {"X-API-Key": ALICE}
        gateway.wait_backends_up("local")
        yield gateway


async def _post(url: str, body: bytes, **headers: str) -> tuple[int, dict, dict[str, str]]:
    async with aiohttp.ClientSession() as http, http.post(
            url + "/mcp", data=body, headers={"Accept": ACCEPT, "Content-Type": "application/json", **headers}
    ) as response:
        return response.status, json.loads(await response.read() or b"{}"), dict(response.headers)


def _challenge(gateway: Gateway) -> str:
    return f'Bearer resource_metadata="{gateway.url}/.well-known/oauth-protected-resource/mcp"'


async def test_a_request_without_a_credential_gets_401_and_the_challenge(gateway: Gateway) -> None:
    status, body, headers = await _post(gateway.url, INITIALIZE)
    assert status == 401
    assert headers["WWW-Authenticate"] == _challenge(gateway)  # no error: nothing was presented
    assert body["error"]["code"] == -32004 and "Authorization: Bearer" in body["error"]["message"]
    assert body["id"] == 0


@pytest.mark.parametrize("headers", [{"Authorization": "Bearer not-a-key"}, {"X-API-Key": "not-a-key"}],
                         ids=["bearer", "x-api-key"])
async def test_a_wrong_key_gets_401_invalid_token(gateway: Gateway, headers: dict[str, str]) -> None:
    status, body, answer = await _post(gateway.url, INITIALIZE, **headers)
    assert status == 401
    assert answer["WWW-Authenticate"] == (_challenge(gateway)
                                          + ', error="invalid_token", error_description="unknown API key"')
    assert "not-a-key" not in json.dumps(body)


async def test_a_malformed_authorization_header_is_named(gateway: Gateway) -> None:
    status, body, answer = await _post(gateway.url, INITIALIZE, Authorization="Basic YWxpY2U6cHc=")
    assert status == 401
    assert 'error="invalid_request"' in answer["WWW-Authenticate"]
    assert "Bearer <token>" in body["error"]["message"]


@asynccontextmanager
async def _streamable(gateway: Gateway, headers: dict[str, str]) -> AsyncIterator[ClientSession]:
    http = httpx2.AsyncClient(headers=headers, limits=httpx2.Limits(max_keepalive_connections=0),
                              timeout=httpx2.Timeout(30, read=60))
    async with http, streamable_http_client(gateway.url + "/mcp", http_client=http) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {ALICE}"}, {"X-API-Key": ALICE}],
                         ids=["bearer", "x-api-key"])
async def test_the_sdk_client_lists_and_calls_with_a_key(gateway: Gateway, headers: dict[str, str]) -> None:
    async with _streamable(gateway, headers) as session:
        assert "local_whoami" in [t.name for t in (await session.list_tools()).tools]
        assert text_of(await session.call_tool("local_whoami", {})) == "local"


async def test_the_sdk_sse_client_needs_the_key(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http, http.get(gateway.url + "/sse") as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == _challenge(gateway)
    async with sse_client(gateway.url + "/sse", headers={"Authorization": f"Bearer {ALICE}"}) as (read, write), \
            ClientSession(read, write) as session:
        await session.initialize()
        assert text_of(await session.call_tool("local_whoami", {})) == "local"


async def test_a_legacy_sse_post_with_another_principals_key_is_refused(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http, http.get(gateway.url + "/sse", headers={"X-API-Key": ALICE}) as sse:
        line = b""
        while not line.startswith(b"data: "):
            line = await sse.content.readline()
        endpoint = line[6:].strip().decode()
        for key, expected in ((BOB, 404), (None, 401), (ALICE, 202)):
            headers = {"Content-Type": "application/json", **({"X-API-Key": key} if key else {})}
            async with http.post(gateway.url + endpoint, data=INITIALIZE, headers=headers) as post:
                assert post.status == expected, (key, await post.text())


async def test_the_websocket_upgrade_needs_the_key(gateway: Gateway) -> None:
    url = gateway.url.replace("http", "ws") + "/ws"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, protocols=("mcp",))
        assert refused.value.status == 401
        async with http.ws_connect(url, protocols=("mcp",), headers={"X-API-Key": BOB}) as socket:
            await socket.send_str(INITIALIZE.decode())
            answer = json.loads((await socket.receive(timeout=10)).data)
            assert answer["result"]["serverInfo"]["name"] == "only1mcp"
            await socket.send_str('{"jsonrpc":"2.0","id":1,"method":"tools/list"}')
            tools = json.loads((await socket.receive(timeout=10)).data)["result"]["tools"]
            assert "local_whoami" in [t["name"] for t in tools]


async def test_the_stdio_bridge_sends_its_header(gateway: Gateway, tmp_path: Path) -> None:
    bridge = StdioServerParameters(command=sys.executable, args=[
        "-m", "only1mcp.cli", "stdio", "--url", gateway.url + "/mcp", "--header", f"Authorization: Bearer {BOB}"],
        env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
    async with stdio_client(bridge) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        assert text_of(await session.call_tool("local_whoami", {})) == "local"


async def test_a_session_presented_with_another_principals_key_is_unknown(gateway: Gateway) -> None:
    async with aiohttp.ClientSession(headers={"X-API-Key": ALICE}) as alice:
        mcp = RawMcp(alice, gateway.url)
        await mcp.initialize()
        as_bob = await mcp.post_raw(b'{"jsonrpc":"2.0","id":5,"method":"tools/list"}', **{"X-API-Key": BOB})
        forged = await mcp.post_raw(b'{"jsonrpc":"2.0","id":5,"method":"tools/list"}',
                                    **{"Mcp-Session-Id": "AAAA" + mcp.session_id[4:]})
        assert as_bob[0] == forged[0] == 404
        assert as_bob[1] == forged[1]  # exactly as an id this gateway never issued: nothing says it exists
        assert (await mcp.call("tools/list"))["result"]["tools"]  # still Alice's


async def test_protected_resource_metadata_names_the_resource(gateway: Gateway) -> None:
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        async with aiohttp.ClientSession() as http, http.get(gateway.url + path) as response:
            assert response.status == 200
            document = await response.json()
        assert document["resource"] == gateway.url + "/mcp"
        assert document["bearer_methods_supported"] == ["header"]


async def test_health_says_only_liveness_and_admin_needs_a_key(gateway: Gateway) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(gateway.url + "/health") as response:
            assert (response.status, await response.json()) == (200, {"status": "ok"})
        async with http.get(gateway.url + "/api/v1/admin/status") as response:
            assert response.status == 401
            assert response.headers["WWW-Authenticate"] == _challenge(gateway)
    code, body = await gateway.fetch("/health")  # with Alice's key
    assert code == 200 and "pid" in body
    assert "workers" in await gateway.fetch_status()


async def test_a_key_removed_by_a_reload_stops_working(launch_gateway, tmp_path: Path) -> None:
    config = _config(tmp_path, {"alice": ALICE, "bob": BOB})
    gateway = await launch_gateway("--config", str(config))
    gateway.credentials = {"X-API-Key": ALICE}
    assert (await _post(gateway.url, INITIALIZE, **{"X-API-Key": BOB}))[0] == 200
    _config(tmp_path, {"alice": ALICE})  # rewrites the file the gateway watches

    async def bob_refused_everywhere() -> bool:  # fresh connections reach both workers
        codes = {(await _post(gateway.url, INITIALIZE, **{"X-API-Key": BOB}))[0] for _ in range(8)}
        return codes == {401}

    await eventually(bob_refused_everywhere, 30, "the removed key to be refused by every worker")
    assert (await _post(gateway.url, INITIALIZE, **{"X-API-Key": ALICE}))[0] == 200


def _modern_call(request_id: int, **params: object) -> tuple[bytes, dict[str, str]]:
    """A 2026-07-28 tools/call of local_ask_llm (it asks the client for sampling mid-call)."""
    message = {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {
        "name": "local_ask_llm", "arguments": {"prompt": "whose"}, **params,
        "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}}}
    return json.dumps(message).encode(), {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/call",
                                          "Mcp-Name": "local_ask_llm"}


async def test_a_request_state_presented_with_another_principals_key_is_not_one(gateway: Gateway) -> None:
    """A 2026-07-28 call waiting for its client's input belongs to the principal that started it: another
    principal's retry with its requestState is answered as a state this gateway never issued, and the
    call still completes for its owner."""
    body, headers = _modern_call(1)
    status, started, _ = await _post(gateway.url, body, **headers, **{"X-API-Key": ALICE})
    assert status == 200 and started["result"]["resultType"] == "input_required", started
    state = started["result"]["requestState"]
    [key] = started["result"]["inputRequests"]
    answer = {key: {"role": "assistant", "model": "m", "content": {"type": "text", "text": "from its owner"}}}

    body, headers = _modern_call(2, requestState=state, inputResponses=answer)
    as_bob = await _post(gateway.url, body, **headers, **{"X-API-Key": BOB})
    body, headers = _modern_call(2, requestState="AAAA" + state[4:], inputResponses=answer)
    forged = await _post(gateway.url, body, **headers, **{"X-API-Key": BOB})
    assert as_bob[0] == forged[0] == 400
    assert as_bob[1] == forged[1], (as_bob[1], forged[1])  # nothing says the state exists

    body, headers = _modern_call(3, requestState=state, inputResponses=answer)
    status, done, _ = await _post(gateway.url, body, **headers, **{"X-API-Key": ALICE})
    assert status == 200 and done["result"]["resultType"] == "complete", done
    assert "from its owner" in json.dumps(done["result"]["content"])
