"""The operator's views of a real gateway under load: ``only1mcp top`` in tmux, ``only1mcp status --json``,
and the ``/ui`` page in headless Chromium (a screenshot, and its DOM against the admin API).

tmux and chromium are Debian packages that ``make test`` installs; without them these tests fail, naming
what to install, rather than skip.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.chromium import HeadlessChromium
from tests.support.gateway import Gateway
from tests.support.processes import FixtureServer
from tests.support.rawmcp import RawMcp
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(240)


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed for this test: `make test` installs it (apt-get install -y {name})"
    return path


async def _gateway(launch_gateway: Any, tmp_path: Path, *servers: FixtureServer) -> Gateway:
    config = tmp_path / "only1mcp.yaml"
    backends = "".join(f"  - name: {name}\n    url: {server.url}\n" for name, server in zip(
        ("alpha", "beta"), servers, strict=True))
    config.write_text(f"server: {{port: 0, workers: 2}}\nbackends:\n{backends}")
    return await launch_gateway("--config", str(config))


@contextlib.asynccontextmanager
async def _load(gateway: Gateway, tool: str) -> AsyncIterator[None]:
    """Calls to ``tool`` one after another until the block ends."""
    stop = asyncio.Event()

    async def run() -> None:
        async with aiohttp.ClientSession() as http:
            mcp = RawMcp(http, gateway.url, keep_alive=True)
            await mcp.initialize()
            while not stop.is_set():
                body = await mcp.call("tools/call", {"name": tool, "arguments": {}})
                assert "result" in body, body

    task = asyncio.create_task(run())
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FixtureServer, FixtureServer]]:
    alpha = await FixtureServer.launch("feature_server", "--name", "alpha")
    beta = await FixtureServer.launch("feature_server", "--name", "beta")
    yield alpha, beta
    await alpha.aclose()
    await beta.aclose()


async def _run(*command: str) -> str:
    done = await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{command[0]} exited with {done.returncode}: {done.stderr}"
    return done.stdout


def _backend_line(screen: str, name: str) -> list[str] | None:
    for line in screen.splitlines():
        fields = line.split()
        if fields and fields[0] == name:
            return fields
    return None


async def test_top_in_tmux_shows_every_backend_and_a_rate(launch_gateway, tmp_path: Path, short_tmp_path: Path,
                                                         servers) -> None:
    tmux = _tool("tmux")
    gateway = await _gateway(launch_gateway, tmp_path, *servers)
    socket = str(short_tmp_path / "tmux.sock")  # a server of its own: nothing of anyone else's is touched
    top = f"{sys.executable} -m only1mcp.cli top --url {gateway.url}"
    await _run(tmux, "-S", socket, "new-session", "-d", "-s", "top", "-x", "120", "-y", "40", top)
    try:
        async with _load(gateway, "alpha_whoami"):
            async def loaded_screen() -> str | None:
                screen = await _run(tmux, "-S", socket, "capture-pane", "-p", "-t", "top")
                alpha, beta = _backend_line(screen, "alpha"), _backend_line(screen, "beta")
                # backend, state, breaker, req/s, ...
                return screen if alpha and beta and alpha[3] != "-" and float(alpha[3]) > 0 else None

            screen = await eventually(loaded_screen, 30, "top to show both backends and a rate", interval=0.5)
        beta = _backend_line(screen, "beta")
        assert beta is not None and beta[1] == "ok" and beta[2] == "closed", screen
        assert "Workers" in screen and "Reloads:" in screen, screen
        await _run(tmux, "-S", socket, "send-keys", "-t", "top", "q")

        async def quit_top() -> bool:
            done = await asyncio.to_thread(subprocess.run, [tmux, "-S", socket, "has-session", "-t", "top"],
                                           capture_output=True, check=False)
            return done.returncode != 0  # the session ended with top

        await eventually(quit_top, 10, "q to end top")
    finally:
        await asyncio.to_thread(subprocess.run, [tmux, "-S", socket, "kill-server"], capture_output=True,
                                check=False)  # gone already when top quit: its exit code says nothing


async def test_status_json_carries_what_the_admin_api_says(launch_gateway, tmp_path: Path, servers) -> None:
    gateway = await _gateway(launch_gateway, tmp_path, *servers)
    async with _load(gateway, "beta_whoami"):
        output = await _run(sys.executable, "-m", "only1mcp.cli", "status", "--json", "--url", gateway.url,
                            "--interval", "1")
    status = json.loads(output)
    _, api = await gateway.fetch("/api/v1/admin/backends")
    by_name = {b["name"]: b for b in status["backends"]}
    assert set(by_name) == {b["name"] for b in api["backends"]}
    assert by_name["beta"]["rates"]["rps"] > 0, by_name["beta"]
    assert by_name["beta"]["traffic"]["requests"] <= next(
        b for b in api["backends"] if b["name"] == "beta")["traffic"]["requests"]
    assert {w["pid"] for w in status["workers"]["workers"]} == set(await gateway.fetch_worker_pids())


class _Rows(HTMLParser):
    """``data-field`` cells of each ``data-backend`` / ``data-slot`` row of the status page."""

    def __init__(self) -> None:
        super().__init__()
        self.backends: dict[str, dict[str, str]] = {}
        self.workers: dict[str, dict[str, str]] = {}
        self.polls = 0
        self._row: dict[str, str] | None = None
        self._field: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "tr" and found.get("data-backend"):
            self._row = self.backends.setdefault(str(found["data-backend"]), {})
        elif tag == "tr" and found.get("data-slot") is not None:
            self._row = self.workers.setdefault(str(found["data-slot"]), {})
        elif tag == "td" and self._row is not None:
            self._field = found.get("data-field")
        elif tag == "div" and found.get("id") == "summary":
            self.polls = int(found.get("data-polls") or 0)

    def handle_data(self, data: str) -> None:
        if self._row is not None and self._field:
            self._row[self._field] = self._row.get(self._field, "") + data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._field = None
        elif tag == "tr":
            self._row = None


async def test_status_page_in_headless_chromium(launch_gateway, tmp_path: Path, servers) -> None:
    gateway = await _gateway(launch_gateway, tmp_path, *servers)
    async with _load(gateway, "alpha_whoami"), HeadlessChromium(tmp_path / "profile") as browser:
        _, before = await gateway.fetch("/api/v1/admin/backends")
        await browser.go(gateway.url + "/ui")

        async def rate_shown() -> bool:
            page = _Rows()
            page.feed(await browser.html())
            rps = page.backends.get("alpha", {}).get("rps", "-")
            return page.polls >= 3 and rps != "-" and float(rps) > 0

        await eventually(rate_shown, 30, "the page to show alpha's request rate", interval=0.5)
        dom = await browser.html()
        png = await browser.screenshot(tmp_path / "ui.png")
        _, after = await gateway.fetch("/api/v1/admin/backends")
    _, workers = await gateway.fetch("/api/v1/admin/workers")
    page = _Rows()
    page.feed(dom)
    first = {b["name"]: b for b in before["backends"]}
    last = {b["name"]: b for b in after["backends"]}
    assert set(page.backends) == set(last) == {"alpha", "beta"}, dom[-2000:]
    for name, row in page.backends.items():
        assert row["state"] == last[name]["state"] == "ok"
        assert row["breaker"] == last[name]["replicas"][0]["breaker"]
        assert int(row["tools"]) == last[name]["tools"]
        # counters only grow: what the page read lies between the readings before and after it
        for field in ("requests", "errors"):
            assert first[name]["traffic"][field] <= int(row[field]) <= last[name]["traffic"][field], (name, field)
    assert float(page.backends["alpha"]["rps"]) > 0, page.backends["alpha"]
    assert {row["pid"] for row in page.workers.values()} == {str(w["pid"]) for w in workers["workers"]}
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000, f"screenshot of {len(png)} bytes"
