"""A client's credential never reaches a backend (the MCP authorization spec forbids token passthrough).

Clients authenticated with a real provider's JWT or with an API key, sending a cookie and a header of
their own too, call one backend of each remote transport (Streamable HTTP, legacy SSE, WebSocket) through
every door: POST /mcp (the official SDK's client speaking 2026-07-28, and a raw handshake-era session),
the legacy /sse stream, and /ws. Each backend records the headers of every request it ever received
(``feature_server --record``): none carries the client's token, key, cookie, header or session id. The
header configured for a backend does reach it, so the recording is shown to work.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.support.gateway import Gateway, running_gateway
from tests.support.oidc import OidcProvider
from tests.support.processes import FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.sdk import text_of

pytestmark = pytest.mark.timeout(180)

RESOURCE = "https://mcp.example.test/mcp"
API_KEY = "alice-key-9c1d7e44b0"
COOKIE = "session=cookie-secret-5b2f8a"
CLIENT_HEADER = "client-private-value-77e1"
GATEWAY_KEY = "gateway-configured-key-3f9a"  # what the config gives the http backend: it must arrive
BACKENDS = {"web": "http", "legacy": "sse", "socket": "websocket"}


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    provider = OidcProvider.start("--audience", RESOURCE)
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def backends() -> Iterator[dict[str, FixtureServer]]:
    servers: dict[str, FixtureServer] = {}
    try:
        for name, transport in BACKENDS.items():
            servers[name] = FixtureServer("feature_server", "--name", name, "--record", transport=transport)
        yield servers
    finally:
        for server in servers.values():
            server.close()


@pytest.fixture(scope="module")
def gateway(provider: OidcProvider, backends: dict[str, FixtureServer],
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("no-passthrough")
    config = folder / "only1mcp.yaml"
    sha = hashlib.sha256(API_KEY.encode()).hexdigest()
    config.write_text(
        "server: {port: 0, workers: 2}\n"
        f"auth:\n  mode: [jwt, api_key]\n  resource: {RESOURCE}\n"
        f"  jwt: {{issuer: '{provider.issuer}'}}\n"
        f"  api_keys: [{{name: alice, sha256: {sha}}}]\n"
        "backends:\n"
        f"  - name: web\n    url: {backends['web'].url}\n    headers: {{X-Gateway-Key: {GATEWAY_KEY}}}\n"
        f"  - name: legacy\n    url: {backends['legacy'].url}\n"
        f"  - name: socket\n    url: {backends['socket'].url}\n")
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.credentials = {"X-API-Key": API_KEY}
        gateway.wait_backends_up(*BACKENDS)
        yield gateway


async def _credentials(kind: str, provider: OidcProvider) -> dict[str, str]:
    """What the client sends: its credential, a cookie and a header of its own."""
    own = {"Cookie": COOKIE, "X-Client-Private": CLIENT_HEADER}
    if kind == "jwt":
        return {"Authorization": f"Bearer {await provider.mint('RS256', {'sub': 'ann'})}", **own}
    return {"X-API-Key": API_KEY, **own}


async def _through_sdk(session: ClientSession | Client) -> list[str]:
    return [text_of(await session.call_tool(f"{name}_whoami", {})) for name in BACKENDS]


async def _modern(gateway: Gateway, headers: dict[str, str]) -> tuple[list[str], str | None]:
    http = httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=60))
    async with http, Client(streamable_http_client(gateway.url + "/mcp", http_client=http)) as client:
        assert client.protocol_version == "2026-07-28"
        return await _through_sdk(client), None


async def _raw_session(gateway: Gateway, headers: dict[str, str]) -> tuple[list[str], str | None]:
    async with aiohttp.ClientSession(headers=headers) as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        answers = [await mcp.call("tools/call", {"name": f"{name}_whoami", "arguments": {}}, index)
                   for index, name in enumerate(BACKENDS, 1)]
    return ["".join(c["text"] for c in answer["result"]["content"]) for answer in answers], mcp.session_id


async def _legacy_sse(gateway: Gateway, headers: dict[str, str]) -> tuple[list[str], str | None]:
    stream: AbstractAsyncContextManager[Any] = sse_client(gateway.url + "/sse", headers=headers)
    async with stream as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        return await _through_sdk(session), None


async def _websocket(gateway: Gateway, headers: dict[str, str]) -> tuple[list[str], str | None]:
    url = gateway.url.replace("http", "ws", 1) + "/ws"
    async with aiohttp.ClientSession() as http, http.ws_connect(url, protocols=("mcp",), headers=headers) as socket:
        await socket.send_json({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "ws-test", "version": "1"}}})
        assert "result" in json.loads((await socket.receive(timeout=20)).data)
        await socket.send_json({"jsonrpc": "2.0", "method": "notifications/initialized"})
        texts = []
        for index, name in enumerate(BACKENDS, 1):
            await socket.send_json({"jsonrpc": "2.0", "id": index, "method": "tools/call",
                                    "params": {"name": f"{name}_whoami", "arguments": {}}})
            answer = json.loads((await socket.receive(timeout=20)).data)
            texts.append("".join(c["text"] for c in answer["result"]["content"]))
    return texts, None


DOORS = {"mcp-2026": _modern, "mcp-session": _raw_session, "sse": _legacy_sse, "ws": _websocket}


async def _seen(backend: FixtureServer) -> list[dict[str, Any]]:
    origin = backend.url.replace("ws://", "http://").split("/", 3)
    async with aiohttp.ClientSession() as http, http.get("/".join(origin[:3]) + "/admin/seen") as response:
        return list((await response.json())["requests"])


@pytest.mark.parametrize("credential", ["jwt", "api_key"])
@pytest.mark.parametrize("door", list(DOORS))
async def test_no_client_header_reaches_a_backend(gateway: Gateway, provider: OidcProvider,
                                                  backends: dict[str, FixtureServer], door: str,
                                                  credential: str) -> None:
    headers = await _credentials(credential, provider)
    texts, session_id = await DOORS[door](gateway, headers)
    assert texts == list(BACKENDS)  # every call went through, to each backend
    secrets = [value.removeprefix("Bearer ") for value in headers.values()] + [COOKIE.split("=")[1]]
    if session_id is not None:
        secrets.append(session_id)
    for name, backend in backends.items():
        requests = await _seen(backend)
        assert requests, f"backend {name} recorded nothing"
        for request in requests:
            names = {header_name.lower() for header_name, _ in request["headers"]}
            assert not names & {"authorization", "x-api-key", "cookie", "x-client-private"}, (name, request)
            sent = json.dumps(request["headers"])
            assert not [secret for secret in secrets if secret in sent], (name, request)
    configured = [request for request in await _seen(backends["web"])
                  if ["x-gateway-key", GATEWAY_KEY] in request["headers"]]
    assert configured, "the header configured for backend web never reached it"


async def test_the_recording_sees_a_header_sent_directly() -> None:
    """The check above can fail: a header sent straight to a recording backend is in what it recorded."""
    backend = await FixtureServer.launch("feature_server", "--name", "direct", "--record")
    try:
        async with aiohttp.ClientSession() as http, http.post(backend.url, data=b"{}", headers={
                "X-Client-Private": CLIENT_HEADER, "Content-Type": "application/json"}) as response:
            assert response.status >= 400  # not an MCP message: the server refuses it, after it was recorded
        seen = await _seen(backend)
    finally:
        await backend.aclose()
    assert any(["x-client-private", CLIENT_HEADER] in request["headers"] for request in seen)
