"""Secrets are never shown: backend header values, the OAuth client secret, the access tokens the gateway
fetched, the session secret and clients' API keys appear in no log line (at debug level), no admin status,
no error sent to a client and nothing `only1mcp validate` prints.

One gateway runs a secret-bearing config (values from the environment and written in the file) through
what makes it talk about its backends: calls, a backend whose error page echoes the headers it was sent,
a backend refusing the token twice, the token endpoint going down, a reload with a bad value, and
`validate` of a good and a bad config. Everything shown is then searched for every secret, the access
tokens included (read from what the backend received).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.integration.test_outbound_oauth import AUDIENCE, CLIENT, SECRET, control, guarded_backend, text
from tests.support.gateway import Gateway
from tests.support.oidc import OidcProvider
from tests.support.processes import FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

BACKEND_KEY = "backend-key-from-env-4e7c9a"  # a header value from ${BACKEND_KEY}
FILE_KEY = "backend-key-in-file-81d3f0"  # a header value written in the file
SESSION_SECRET = "session-secret-0123456789abcdef0123456789"
CLIENT_KEY = "client-api-key-5a6b7c8d9e"


def _config(provider: OidcProvider, web: FixtureServer, plain: FixtureServer, session_secret: str) -> str:
    sha = hashlib.sha256(CLIENT_KEY.encode()).hexdigest()
    return (
        "server: {port: 0, workers: 2, standby_workers: 0, log_level: debug}\n"
        f"sessions: {{secret: '{session_secret}'}}\n"
        f"auth: {{mode: api_key, api_keys: [{{name: ci, sha256: {sha}}}]}}\n"
        "backends:\n"
        f"  - name: web\n    url: {web.url}\n    health: {{enabled: false}}\n"
        "    headers: {X-Backend-Key: '${BACKEND_KEY}'}\n"
        f"    oauth: {{token_url: '{provider.token_endpoint}', client_id: {CLIENT}, "
        f"client_secret: '${{GW_CLIENT_SECRET}}', resource: '{AUDIENCE}', min_refresh_interval: 0.5, "
        "fetch_timeout: 2}\n"
        f"  - name: plain\n    url: {plain.url}\n    health: {{enabled: false}}\n"
        f"    headers: {{X-Api-Key: {FILE_KEY}}}\n")


async def _call(gateway: Gateway, tool: str) -> dict[str, Any]:
    async with aiohttp.ClientSession(headers={"X-API-Key": CLIENT_KEY}) as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        return dict(await mcp.call("tools/call", {"name": tool, "arguments": {}}))


def _validate(path: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "only1mcp.cli", "validate", str(path)], capture_output=True,
                            text=True, timeout=60, check=False,
                            env={"GW_CLIENT_SECRET": SECRET, "BACKEND_KEY": BACKEND_KEY, "PATH": ""})
    return result.stdout + result.stderr


async def _tokens_received(backend: FixtureServer) -> set[str]:
    seen = await control(backend, "GET", "/admin/seen")
    return {value.removeprefix("Bearer ") for request in seen["requests"] for name, value in request["headers"]
            if name.lower() == "authorization"}


async def test_no_secret_in_logs_status_errors_or_validate(launch_gateway, tmp_path: Path) -> None:
    provider = await OidcProvider.launch("--client", f"{CLIENT}:{SECRET}")
    web = await guarded_backend(provider, "web")
    plain = await FixtureServer.launch("feature_server", "--name", "plain", "--record")
    try:
        path = tmp_path / "only1mcp.yaml"
        path.write_text(_config(provider, web, plain, SESSION_SECRET))
        gateway = await launch_gateway("--config", str(path),
                                       env={"GW_CLIENT_SECRET": SECRET, "BACKEND_KEY": BACKEND_KEY})
        gateway.credentials = {"X-API-Key": CLIENT_KEY}
        shown: list[str] = []

        assert text(await _call(gateway, "web_whoami")) == "web"
        assert text(await _call(gateway, "plain_whoami")) == "plain"
        for backend, tool in ((web, "web_whoami"), (plain, "plain_whoami")):
            await control(backend, "POST", "/admin/echo", {"count": 1})  # its error page quotes our headers
            answer = await _call(gateway, tool)
            assert "answered HTTP 400" in answer["error"]["message"] and "***" in answer["error"]["message"], answer
            shown.append(json.dumps(answer))
        await control(web, "POST", "/admin/reject", {"count": 2})
        refused = await _call(gateway, "web_whoami")
        assert "refused the gateway's access token" in refused["error"]["message"], refused
        shown.append(json.dumps(refused))

        await provider.set_down(True)
        await control(web, "POST", "/admin/revoke")  # a refusal now asks the endpoint that is down

        async def failing() -> dict[str, Any] | None:
            status = await gateway.fetch_status()
            return status if status["oauth"]["web"]["state"] in ("failing", "no_token") else None

        await _call(gateway, "web_whoami")
        shown.append(json.dumps(await eventually(failing, 20, "the token endpoint's failure in admin status")))
        await provider.set_down(False)

        path.write_text(_config(provider, web, plain, "too-short-" + SESSION_SECRET[:12]))
        gateway.signal(1)  # SIGHUP: the reload is refused, and says why
        await gateway.log_line("config reload failed", 20)
        bad = tmp_path / "bad.yaml"
        bad.write_text(path.read_text())
        path.write_text(_config(provider, web, plain, SESSION_SECRET))
        shown += [_validate(path), _validate(bad)]
        assert "OK:" in shown[-2] and "sessions.secret" in shown[-1], shown[-2:]
        shown.append(json.dumps(await gateway.fetch_status()))
        shown.append(gateway.log)

        tokens = await _tokens_received(web)
        assert len(tokens) >= 2  # the first token, and the one fetched after the refusal
        secrets = {SECRET, BACKEND_KEY, FILE_KEY, SESSION_SECRET, SESSION_SECRET[:12], CLIENT_KEY, *tokens}
        everything = "\n".join(shown)
        assert "backend 'web'" in gateway.log and "access token" in gateway.log  # the log did talk about it
        assert not [secret for secret in secrets if secret in everything], [
            (secret[:12], everything[max(0, everything.find(secret) - 200):everything.find(secret) + 40])
            for secret in secrets if secret in everything]
    finally:
        await web.aclose()
        await plain.aclose()
        await provider.aclose()
