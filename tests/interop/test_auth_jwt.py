"""JWT authentication end to end: a real OpenID Connect provider process issues the tokens, the gateway
(2 workers) fetches its keys by discovery, and the official SDK's clients present them on every door.

The auth matrix: each refused token gets its exact status and WWW-Authenticate header; key rotation at the
provider; roles from a dotted claim driving rbac; sessions bound to the token's subject.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import httpx2
import pytest
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client

from tests.support.gateway import Gateway, running_gateway
from tests.support.oidc import OidcProvider
from tests.support.processes import ROOT, stdio_command
from tests.support.rawmcp import ACCEPT, RawMcp
from tests.support.sdk import text_of
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

RESOURCE = "https://mcp.example.test/mcp"
SCOPE = "mcp:use"
INITIALIZE = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                         "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                    "clientInfo": {"name": "jwt-test", "version": "1"}}}).encode()


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    provider = OidcProvider.start("--audience", RESOURCE)
    yield provider
    provider.close()


@pytest.fixture(scope="module")
def gateway(provider: OidcProvider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    local = stdio_command("feature_server", "--name", "local")
    folder = tmp_path_factory.mktemp("auth-jwt")
    config = folder / "only1mcp.yaml"
    config.write_text(
        "server: {port: 0, workers: 2}\n"
        f"auth:\n  mode: jwt\n  resource: {RESOURCE}\n  required_scopes: ['{SCOPE}']\n"
        f"  jwt: {{issuer: '{provider.issuer}', roles_claim: realm_access.roles, refresh_interval: 2,"
        " min_refresh_interval: 1}\n"
        "rbac:\n  roles:\n    reader: {allow: ['tools:local_whoami']}\n    admin: {allow: ['tools:*', 'admin:*']}\n"
        f"backends:\n  - name: local\n    command: {local[0]}\n    args: {local[1:]}\n    cwd: {ROOT}\n")
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        yield gateway


async def _token(provider: OidcProvider, alg: str = "RS256", roles: tuple[str, ...] = ("admin",),
                 **claims: Any) -> str:
    return await provider.mint(alg, {"scope": SCOPE, "realm_access": {"roles": list(roles)}, **claims})


async def _post(gateway: Gateway, token: str | None, body: bytes = INITIALIZE) -> tuple[int, dict, dict[str, str]]:
    headers = {"Accept": ACCEPT, "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with aiohttp.ClientSession() as http, http.post(gateway.url + "/mcp", data=body,
                                                           headers=headers) as response:
        return response.status, json.loads(await response.read() or b"{}"), dict(response.headers)


def _challenge(gateway: Gateway, error: str | None = None) -> str:
    metadata = f'"{RESOURCE.removesuffix("/mcp")}/.well-known/oauth-protected-resource/mcp"'
    return f"Bearer resource_metadata={metadata}" + (f', error="{error}"' if error else "")


async def test_valid_tokens_of_each_algorithm_are_served(gateway: Gateway, provider: OidcProvider) -> None:
    for alg in ("RS256", "ES256"):
        status, body, _ = await _post(gateway, await _token(provider, alg))
        assert status == 200, body
        assert body["result"]["serverInfo"]["name"] == "only1mcp"


async def test_no_token_gets_the_bare_challenge(gateway: Gateway) -> None:
    status, _, headers = await _post(gateway, None)
    assert (status, headers["WWW-Authenticate"]) == (401, _challenge(gateway))


REFUSED = {
    "expired": ({"exp": -120}, "expired"),
    "not-yet-valid": ({"nbf": 300}, "not valid before"),
    "wrong-issuer": ({"iss": "https://other-issuer.example.test"}, "issuer"),
    "wrong-audience": ({"aud": "https://elsewhere.example.test/mcp"}, "audience"),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_a_refused_claim_gets_401_invalid_token_naming_it(gateway: Gateway, provider: OidcProvider,
                                                                case: str) -> None:
    changes, named = REFUSED[case]
    now = int(time.time())
    claims = {k: now + v if k in ("exp", "nbf") else v for k, v in changes.items()}
    token = await _token(provider, **claims)
    status, body, headers = await _post(gateway, token)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith(_challenge(gateway, "invalid_token") + ", error_description=")
    assert named in headers["WWW-Authenticate"].lower() and named in body["error"]["message"].lower()
    assert token not in json.dumps(body) + headers["WWW-Authenticate"]


@pytest.mark.parametrize(("sign", "header"), [("none", {}), ("public-pem", {}), ("key", {"kid": "no-such-key"})],
                         ids=["alg-none", "hs256-with-the-public-key", "unknown-kid"])
async def test_forged_or_unknown_signatures_get_401(gateway: Gateway, provider: OidcProvider, sign: str,
                                                    header: dict[str, str]) -> None:
    before = (await provider.stats())["jwks"]
    token = await provider.mint("RS256", {"scope": SCOPE}, header=header, sign=sign)
    status, _, headers = await _post(gateway, token)
    assert status == 401
    assert headers["WWW-Authenticate"].startswith(_challenge(gateway, "invalid_token"))
    if header:  # an unknown kid is worth one refetch of the keys (for all workers), then refused
        assert (await provider.stats())["jwks"] > before


async def test_a_token_without_the_required_scope_gets_403(gateway: Gateway, provider: OidcProvider) -> None:
    token = await provider.mint("RS256", {"scope": "other"})
    status, body, headers = await _post(gateway, token)
    assert status == 403
    assert headers["WWW-Authenticate"] == (_challenge(gateway, "insufficient_scope")
                                           + f', error_description="the token lacks the scope(s) {SCOPE}"'
                                           + f', scope="{SCOPE}"')
    assert body["error"]["code"] == -32004


async def test_a_key_added_at_the_provider_works_at_once_and_a_removed_one_stops(
        gateway: Gateway, provider: OidcProvider) -> None:
    kid = await provider.add_key("RS256")
    token = await provider.mint("RS256", {"scope": SCOPE, "realm_access": {"roles": ["admin"]}}, kid=kid)
    status, body, _ = await _post(gateway, token)  # waits for the one refetch the unknown kid causes
    assert status == 200, body
    await provider.remove_key(kid)

    async def refused() -> bool:
        return (await _post(gateway, token))[0] == 401

    await eventually(refused, 30, "the removed key to stop working on the next refresh")


async def test_roles_from_a_dotted_claim_drive_rbac(gateway: Gateway, provider: OidcProvider) -> None:
    for roles, expected in ((("reader",), ["local_whoami"]), (("admin",), None)):
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {await _token(provider, roles=roles)}"}
                                         ) as http:
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            names = [tool["name"] for tool in (await mcp.call("tools/list"))["result"]["tools"]]
        if expected is None:
            assert len(names) > 1 and "local_whoami" in names
        else:
            assert names == expected


async def test_a_session_is_bound_to_the_tokens_subject(gateway: Gateway, provider: OidcProvider) -> None:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {await _token(provider, sub='ann')}"}
                                     ) as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        renewed = await _token(provider, sub="ann")  # a refreshed token of the same subject keeps the session
        assert (await mcp.call("tools/list", Authorization=f"Bearer {renewed}"))["result"]["tools"]
        other = await _token(provider, sub="ben")
        status, body, _ = await mcp.post_raw(b'{"jsonrpc":"2.0","id":3,"method":"tools/list"}',
                                             Authorization=f"Bearer {other}")
        assert status == 404 and "unknown session id" in body["error"]["message"]


@asynccontextmanager
async def _door(gateway: Gateway, door: str, token: str, tmp_path: Path) -> AsyncIterator[ClientSession]:
    auth = {"Authorization": f"Bearer {token}"}
    if door == "mcp":
        http = httpx2.AsyncClient(headers=auth, timeout=httpx2.Timeout(30, read=60))
        async with http, streamable_http_client(gateway.url + "/mcp", http_client=http) as (read, write), \
                ClientSession(read, write) as session:
            yield session
    elif door == "sse":
        async with sse_client(gateway.url + "/sse", headers=auth) as (read, write), \
                ClientSession(read, write) as session:
            yield session
    else:
        bridge = StdioServerParameters(command=sys.executable, args=[
            "-m", "only1mcp.cli", "stdio", "--url", gateway.url + "/mcp", "--header", f"Authorization: Bearer {token}"],
            env={"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)})
        async with stdio_client(bridge) as (read, write), ClientSession(read, write) as session:
            yield session


@pytest.mark.parametrize("door", ["mcp", "sse", "stdio-bridge"])
async def test_the_sdk_clients_present_the_token_on_every_door(gateway: Gateway, provider: OidcProvider,
                                                               door: str, tmp_path: Path) -> None:
    async with _door(gateway, door, await _token(provider), tmp_path) as session:
        await session.initialize()
        assert text_of(await session.call_tool("local_whoami", {})) == "local"


async def test_the_websocket_door_takes_the_token_at_the_upgrade(gateway: Gateway, provider: OidcProvider) -> None:
    url = gateway.url.replace("http", "ws") + "/ws"
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(url, protocols=("mcp",), headers={"Authorization": "Bearer x.y.z"})
        assert refused.value.status == 401
        async with http.ws_connect(url, protocols=("mcp",),
                                   headers={"Authorization": f"Bearer {await _token(provider)}"}) as socket:
            await socket.send_str(INITIALIZE.decode())
            assert json.loads((await socket.receive(timeout=10)).data)["result"]["serverInfo"]["name"] == "only1mcp"


async def test_the_metadata_names_the_issuer(gateway: Gateway, provider: OidcProvider) -> None:
    async with aiohttp.ClientSession() as http, http.get(
            gateway.url + "/.well-known/oauth-protected-resource/mcp") as response:
        document = await response.json()
    assert document == {"resource": RESOURCE, "authorization_servers": [provider.issuer],
                        "scopes_supported": [SCOPE], "bearer_methods_supported": ["header"]}
