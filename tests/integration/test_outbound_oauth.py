"""Backends that need a bearer token get the gateway's own, from a real provider, on every transport.

A real OpenID Connect provider process issues client credentials tokens; each backend (``feature_server
--token-issuer``) accepts only a valid token of that provider for its own audience, verified against the
provider's published keys. The real supervisor fetches the tokens and two real workers send them: calls
succeed; a token that lives a few seconds is replaced before it expires (the backend never refuses one); a
401 gets one fresh token and one retry; a provider that rotates its key (the old token refused) costs one
fetch; a provider that is down leaves the last token in use until it expires, with the error in admin
status; a reload refetches a changed oauth block and withdraws a removed one.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import zmq.asyncio

from only1mcp.bus import Endpoints, Kind, Reporter, Role, Sender
from only1mcp.bus.messages import BackendTokenRefused
from tests.support.gateway import Gateway
from tests.support.oidc import OidcProvider
from tests.support.processes import FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually, holds

pytestmark = pytest.mark.timeout(180)

CLIENT, SECRET = "only1mcp-gateway", "gw-client-secret-6d0e2b"
AUDIENCE = "https://tools.example.test/mcp"


async def provider_with_client(*args: str) -> OidcProvider:
    return await OidcProvider.launch("--client", f"{CLIENT}:{SECRET}", *args)


async def guarded_backend(provider: OidcProvider, name: str, transport: str = "http") -> FixtureServer:
    return await FixtureServer.launch("feature_server", "--name", name, "--token-issuer", provider.issuer,
                                      "--token-jwks", provider.jwks_uri, "--token-audience", AUDIENCE,
                                      transport=transport)


def backend_entry(provider: OidcProvider, name: str, server: FixtureServer, replicas: list[str] | None = None,
                  **oauth: Any) -> str:
    options = {"token_url": provider.token_endpoint, "client_id": CLIENT, "client_secret": "${GW_CLIENT_SECRET}",
               "resource": AUDIENCE, "scope": "mcp:tools", "min_refresh_interval": 0.5, "fetch_timeout": 2, **oauth}
    block = ", ".join(f"{key}: '{value}'" for key, value in options.items())
    # no health probes: they would spend the backend's refusals (POST /admin/reject) meant for a call
    where = f"transport: http\n    replicas: {replicas}" if replicas else f"url: {server.url}"
    return f"  - name: {name}\n    {where}\n    health: {{enabled: false}}\n    oauth: {{{block}}}\n"


async def start(launch_gateway: Callable[..., Any], tmp_path: Path, entries: str) -> Gateway:
    path = tmp_path / "only1mcp.yaml"
    path.write_text(f"server: {{port: 0, workers: 2, standby_workers: 0}}\nbackends:\n{entries}")
    gateway: Gateway = await launch_gateway("--config", str(path), env={"GW_CLIENT_SECRET": SECRET})
    return gateway


async def control(server: FixtureServer, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    origin = "/".join(server.url.replace("ws://", "http://").split("/", 3)[:3])
    async with aiohttp.ClientSession() as http, http.request(method, origin + path, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


async def call(gateway: Gateway, tool: str) -> dict[str, Any]:
    """One tools/call on a new session and connection (so calls spread over both workers)."""
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        return dict(await mcp.call("tools/call", {"name": tool, "arguments": {}}))


def text(answer: dict[str, Any]) -> str:
    assert "result" in answer, answer
    return "".join(item["text"] for item in answer["result"]["content"])


async def token_fetches(provider: OidcProvider) -> int:
    return int((await provider.stats())["token"])


@pytest.mark.parametrize("transport", ["http", "sse", "websocket"])
async def test_every_request_carries_the_gateways_token(launch_gateway, tmp_path: Path, transport: str) -> None:
    provider = await provider_with_client()
    backend = await guarded_backend(provider, "tools", transport)
    try:
        # Two replicas over HTTP: the same server under two names, told apart by the Host each request names.
        replicas = [backend.url, backend.url.replace("127.0.0.1", "localhost")] if transport == "http" else None
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend, replicas))
        for _ in range(4):
            assert text(await call(gateway, "tools_whoami")) == "tools"
        seen = await control(backend, "GET", "/admin/seen")
        # every request accepted (a WebSocket carries it once, in its upgrade: discovery's, and that of each
        # worker the calls reached)
        assert seen["refused"] == 0 and seen["accepted"] == len(seen["requests"]) >= 2, seen
        if replicas:
            hosts = {value.split(":")[0] for request in seen["requests"] for name, value in request["headers"]
                     if name == "host"}
            assert hosts == {"127.0.0.1", "localhost"}, hosts  # both replicas got calls, with the token
        assert set(seen["subjects"]) == {CLIENT}  # the gateway's own identity, whoever the caller was
        requests = await provider.token_requests()
        assert len(requests) == 1, requests  # one token for the supervisor and both workers
        assert requests[0]["auth"] == "basic" and requests[0]["client_id"] == CLIENT
        assert requests[0]["form"] == {"grant_type": "client_credentials", "scope": "mcp:tools", "resource": AUDIENCE}
        oauth = (await gateway.fetch_status())["oauth"]["tools"]
        assert oauth["state"] == "ok" and oauth["fetches"] == 1 and oauth["client_id"] == CLIENT
    finally:
        await backend.aclose()
        await provider.aclose()


async def test_a_short_lived_token_is_replaced_before_it_expires(launch_gateway, tmp_path: Path) -> None:
    # 6 s tokens replaced after 3 s: the backend sees each at least 2 s before it expires (exp counts whole
    # seconds), so a loaded machine does not make the test fail, while a token not replaced in time would be
    # refused within the 10 s of calls
    provider = await provider_with_client("--token-lifetime", "6")
    backend = await guarded_backend(provider, "tools")
    try:
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend, refresh_at=0.5))
        first = await token_fetches(provider)
        deadline = time.monotonic() + 10
        calls = 0
        while time.monotonic() < deadline:
            assert text(await call(gateway, "tools_whoami")) == "tools"
            calls += 1
        assert await token_fetches(provider) >= first + 2  # replaced every 3 s
        seen = await control(backend, "GET", "/admin/seen")
        assert seen["refused"] == 0, seen  # never an expired token
        assert seen["accepted"] >= calls
    finally:
        await backend.aclose()
        await provider.aclose()


@pytest.mark.parametrize("transport", ["http", "sse"])
async def test_a_401_gets_one_fresh_token_and_one_retry(launch_gateway, tmp_path: Path, transport: str) -> None:
    provider = await provider_with_client()
    backend = await guarded_backend(provider, "tools", transport)
    try:
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend))
        assert text(await call(gateway, "tools_whoami")) == "tools"
        before = await token_fetches(provider)
        await control(backend, "POST", "/admin/reject", {"count": 1})
        assert text(await call(gateway, "tools_whoami")) == "tools"  # refused once, then sent again
        assert await token_fetches(provider) == before + 1
        assert (await control(backend, "GET", "/admin/seen"))["refused"] == 1
        oauth = (await gateway.fetch_status())["oauth"]["tools"]
        assert oauth["refetches"] == 1, oauth

        # Refused twice: a fresh token is refused too, and the call fails saying so.
        await control(backend, "POST", "/admin/reject", {"count": 2})
        answer = await call(gateway, "tools_whoami")
        message = answer["error"]["message"]
        assert "backend 'tools' refused the gateway's access token (HTTP 401), a fresh one" in message, answer
        assert await token_fetches(provider) == before + 2  # one fetch for that call, not one per try
    finally:
        await backend.aclose()
        await provider.aclose()


@pytest.mark.parametrize("transport", ["sse", "websocket"])
async def test_a_refused_stream_or_upgrade_gets_a_fresh_token(launch_gateway, tmp_path: Path, transport: str) -> None:
    """The connection itself (the SSE stream's GET, the WebSocket upgrade) refused with 401: here the
    supervisor's discovery, which gets a fresh token from the supervisor's own keeper and connects again."""
    provider = await provider_with_client()
    backend = await guarded_backend(provider, "tools", transport)
    try:
        await control(backend, "POST", "/admin/reject", {"count": 1, "methods": ["GET"]})
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend))
        assert text(await call(gateway, "tools_whoami")) == "tools"
        assert (await control(backend, "GET", "/admin/seen"))["refused"] == 1
        assert await token_fetches(provider) == 2
        assert (await gateway.fetch_status())["catalog"]["backends"]["tools"]["state"] == "ok"
    finally:
        await backend.aclose()
        await provider.aclose()


async def test_a_revoked_token_refused_on_both_workers_costs_one_fetch(launch_gateway, tmp_path: Path) -> None:
    """The backend learns that the gateway's token was revoked: calls on both workers are refused with it at
    once, one new token is fetched for all of them, and every call is served."""
    provider = await provider_with_client()
    backend = await guarded_backend(provider, "tools")
    try:
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend))
        sessions = []
        for _ in range(6):  # new connections: the kernel spreads them over the two workers
            http = aiohttp.ClientSession()
            mcp = RawMcp(http, gateway.url)
            await mcp.initialize()
            sessions.append((http, mcp))
        try:
            before = await token_fetches(provider)
            await control(backend, "POST", "/admin/revoke")
            answers = await asyncio.gather(*(mcp.call("tools/call", {"name": "tools_whoami", "arguments": {}})
                                             for _, mcp in sessions))
        finally:
            for http, _ in sessions:
                await http.close()
        assert [text(answer) for answer in answers] == ["tools"] * 6
        assert await token_fetches(provider) == before + 1
        assert (await control(backend, "GET", "/admin/seen"))["refused"] >= 1
    finally:
        await backend.aclose()
        await provider.aclose()


async def test_refusals_reported_by_every_worker_cost_one_fetch(launch_gateway, tmp_path: Path) -> None:
    """TOKEN_REFUSED reports from both workers, several each, sent on the supervisor's real report socket as
    workers send them: one fetch; a report naming a token already replaced: none."""
    provider = await provider_with_client()
    backend = await guarded_backend(provider, "tools")
    try:
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend))
        serial = (await gateway.fetch_status())["served_by"]["oauth"]["tools"]["serial"]
        before = await token_fetches(provider)
        ctx = zmq.asyncio.Context()
        endpoints = Endpoints.in_dir(runtime_dir(gateway))
        reporters = [Reporter(ctx, endpoints, Sender(Role.WORKER, slot, pid))
                     for slot, pid in enumerate(await gateway.fetch_worker_pids())]
        try:
            for _ in range(5):
                for reporter in reporters:
                    reporter.send(Kind.TOKEN_REFUSED, BackendTokenRefused("tools", serial))

            async def replaced() -> bool:
                served = (await gateway.fetch_status())["served_by"]["oauth"]
                return served["tools"]["serial"] > serial

            await eventually(replaced, 20, "a new token")
            await holds(lambda: _fetched_since(provider, before, 1), 1.0, "one fetch for all the reports")
            reporters[0].send(Kind.TOKEN_REFUSED, BackendTokenRefused("tools", serial))  # replaced already
            await holds(lambda: _fetched_since(provider, before, 1), 1.0, "no fetch for a replaced token")
            oauth = (await gateway.fetch_status())["oauth"]["tools"]
            assert oauth["refetches"] == 1, oauth
        finally:
            for reporter in reporters:
                reporter.close()
            ctx.term()
    finally:
        await backend.aclose()
        await provider.aclose()


async def test_a_key_the_provider_revoked_costs_one_fetch(launch_gateway, tmp_path: Path) -> None:
    """The provider rotates its signing key and withdraws the old one; the backend, which learns of it, refuses
    the token signed with it; the gateway fetches one signed with the new key and the call goes through."""
    provider = await provider_with_client("--keys", "RS256")
    backend = await guarded_backend(provider, "tools")
    try:
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend))
        assert text(await call(gateway, "tools_whoami")) == "tools"
        [old] = (await provider.stats())["kids"]
        await provider.add_key("RS256")
        await provider.remove_key(old)
        await control(backend, "POST", "/admin/refresh")
        before = await token_fetches(provider)
        assert text(await call(gateway, "tools_whoami")) == "tools"
        assert await token_fetches(provider) == before + 1
        assert (await control(backend, "GET", "/admin/seen"))["refused"] == 1
    finally:
        await backend.aclose()
        await provider.aclose()


async def test_a_provider_that_is_down_leaves_the_token_in_use_until_it_expires(launch_gateway,
                                                                                 tmp_path: Path) -> None:
    provider = await provider_with_client("--token-lifetime", "10")
    backend = await guarded_backend(provider, "tools")
    try:
        # the refresh fails after 5 s; the token still serves for 4 more at least
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend, refresh_at=0.5))
        assert text(await call(gateway, "tools_whoami")) == "tools"
        await provider.set_down(True)

        async def oauth_state(wanted: str) -> dict[str, Any] | None:
            oauth = (await gateway.fetch_status())["oauth"]["tools"]
            return oauth if oauth["state"] == wanted else None

        failing = await eventually(lambda: oauth_state("failing"), 15, "the refresh to fail")
        assert "HTTP 503" in failing["last_error"] and failing["expires_at"] > time.time()
        assert text(await call(gateway, "tools_whoami")) == "tools"  # the token fetched before still serves

        await eventually(lambda: oauth_state("no_token"), 20, "the token to expire")
        answer = await call(gateway, "tools_whoami")
        assert "backend 'tools' has no valid access token" in answer["error"]["message"], answer
        assert "see oauth.tools in admin status" in answer["error"]["message"]
        assert (await control(backend, "GET", "/admin/seen"))["refused"] == 0  # nothing expired was sent

        await provider.set_down(False)
        await eventually(lambda: oauth_state("ok"), 30, "a token once the provider answers again")

        async def served() -> bool:
            return "result" in await call(gateway, "tools_whoami")

        await eventually(served, 20, "calls to be served again")
    finally:
        await backend.aclose()
        await provider.aclose()


async def test_a_reload_refetches_a_changed_oauth_and_withdraws_a_removed_one(launch_gateway,
                                                                               tmp_path: Path) -> None:
    provider = await provider_with_client()
    backend = await guarded_backend(provider, "tools")
    try:
        gateway = await start(launch_gateway, tmp_path, backend_entry(provider, "tools", backend))
        assert text(await call(gateway, "tools_whoami")) == "tools"
        path = tmp_path / "only1mcp.yaml"
        path.write_text(path.read_text().replace("scope: 'mcp:tools'", "scope: 'mcp:tools mcp:more'"))
        gateway.signal(signal.SIGHUP)

        async def scoped() -> bool:
            return any(r["form"].get("scope") == "mcp:tools mcp:more" for r in await provider.token_requests())

        await eventually(scoped, 20, "a token for the changed scope")
        await eventually(lambda: _answers(gateway), 20, "calls with the new token")

        path.write_text(f"server: {{port: 0, workers: 2, standby_workers: 0}}\nbackends:\n"
                        f"  - name: tools\n    url: {backend.url}\n    health: {{enabled: false}}\n")
        gateway.signal(signal.SIGHUP)

        async def withdrawn() -> dict[str, Any] | None:
            status = await gateway.fetch_status()
            return status if "tools" not in status["oauth"] and status["config"]["version"] == 3 else None

        await eventually(withdrawn, 20, "the token to be withdrawn")

        # The backend still wants a token; none is sent any more (discovering it again is refused).
        async def sent_without() -> bool:
            seen = await control(backend, "GET", "/admin/seen")
            return seen["refused"] > 0 and any(not any(n.lower() == "authorization" for n, _ in r["headers"])
                                               for r in seen["requests"])

        await eventually(sent_without, 20, "requests without a token, refused by the backend")
    finally:
        await backend.aclose()
        await provider.aclose()


async def _fetched_since(provider: OidcProvider, before: int, count: int) -> bool:
    return await token_fetches(provider) == before + count


def runtime_dir(gateway: Gateway) -> Path:
    found = re.search(r"runtime dir (\S+)\)", gateway.log)
    assert found, gateway.log
    return Path(found.group(1))


async def _answers(gateway: Gateway) -> bool:
    return "result" in await call(gateway, "tools_whoami")
