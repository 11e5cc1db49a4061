"""What the gateway shows about itself: admin and health answer only their own Host and allowed Origins,
and a credential in a backend URL appears nowhere (status, a client's error, the log)."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(120)

SECRET = "Sup3rS3cretKey"
ROUTES = ["/health", "/api/v1/admin/status", "/api/v1/admin/wait?config_version=1&timeout=1", "/sse"]


def _get(url: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Connection": "close", **headers})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read(100)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _config(folder: Path, search: FixtureServer) -> Path:
    url = search.url.replace("http://", "http://user:pw@") + f"?api_key={SECRET}"
    config = folder / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 1}}\nbackends:\n  - name: search\n    url: {url}\n"
                      "    health: {interval: 0.5, timeout: 1, unhealthy_threshold: 1}\n")
    return config


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One gateway for the refusal tests, which change nothing."""
    search = FixtureServer("feature_server", "--name", "search")
    folder = tmp_path_factory.mktemp("exposure")
    try:
        with running_gateway("--config", str(_config(folder, search)), cwd=folder) as gateway:
            yield gateway
    finally:
        search.close()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("headers", [{"Host": "evil.example"}, {"Origin": "http://evil.example"}],
                         ids=["foreign-host", "foreign-origin"])
def test_every_route_refuses_a_foreign_host_or_origin(gateway, route: str, headers: dict[str, str]) -> None:
    status, body = _get(gateway.url + route, **headers)
    assert status == 403, (status, body)
    assert b"evil.example" in body  # the refusal says what was refused
    assert _get(gateway.url + "/health")[0] == 200  # the gateway's own Host passes


async def test_no_url_credential_in_status_errors_or_logs(launch_gateway, tmp_path: Path) -> None:
    search = await FixtureServer.launch("feature_server", "--name", "search")  # its own: this test stops it
    try:
        gateway = await launch_gateway("--config", str(_config(tmp_path, search)))
        await _credential_nowhere(gateway, search)
    finally:
        await search.aclose()


async def _credential_nowhere(gateway: Gateway, search: FixtureServer) -> None:
    async with aiohttp.ClientSession() as http:
        mcp = RawMcp(http, gateway.url)
        await mcp.initialize()
        assert (await mcp.call("tools/call", {"name": "search_whoami", "arguments": {}}))["result"]
        await search.aclose()  # the backend goes away: errors now quote where it was
        body = await mcp.call("tools/call", {"name": "search_whoami", "arguments": {}})
    assert "api_key=***" in body["error"]["message"], body

    async def status_shows_it_down() -> dict | None:
        status = await gateway.fetch_status()
        replica = status["routes"]["search"][0]
        return status if replica["health"] == "unhealthy" else None

    status = await eventually(status_shows_it_down, 30, "the health probe to mark the backend down")
    text = json.dumps(status) + json.dumps(body) + gateway.log
    assert SECRET not in text and "user:pw" not in text
