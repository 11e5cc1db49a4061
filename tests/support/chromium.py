"""Headless Chromium driven over the DevTools protocol (a websocket on 127.0.0.1), for pages that must run
in real time: a page that polls every second shows rates only if a second really passed between polls,
which ``--virtual-time-budget`` does not give."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from .waiting import eventually

__all__ = ["HeadlessChromium"]


class HeadlessChromium:
    """One browser with one page; ``async with HeadlessChromium(profile_dir) as page: await page.go(url)``."""

    def __init__(self, profile: Path, width: int = 1280, height: int = 900) -> None:
        binary = shutil.which("chromium")
        assert binary, "chromium is needed for this test: `make test` installs it (apt-get install -y chromium)"
        self._profile = profile
        self._command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
                         f"--user-data-dir={profile}", f"--window-size={width},{height}", "about:blank"]
        self._process: asyncio.subprocess.Process | None = None
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self._ids = itertools.count(1)

    async def __aenter__(self) -> HeadlessChromium:
        self._process = await asyncio.create_subprocess_exec(*self._command, stdout=subprocess.DEVNULL,
                                                             stderr=subprocess.DEVNULL)
        active = self._profile / "DevToolsActivePort"
        port = await eventually(lambda: self._port(active), 30, "chromium to open its DevTools port")
        self._http = aiohttp.ClientSession()
        async def page_socket() -> str | None:
            assert self._http is not None
            async with self._http.get(f"http://127.0.0.1:{port}/json/list") as response:
                pages = [t for t in await response.json() if t.get("type") == "page"]
            return pages[0]["webSocketDebuggerUrl"] if pages else None

        self._socket = await self._http.ws_connect(await eventually(page_socket, 10, "chromium's page"),
                                                   max_msg_size=0)
        return self

    def _port(self, active: Path) -> int | None:
        assert self._process is not None
        if self._process.returncode is not None:
            raise AssertionError(f"chromium exited with {self._process.returncode}")
        text = active.read_text() if active.exists() else ""  # a small local file, read while polling
        return int(text.split()[0]) if text.strip() else None

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._http is not None:
            await self._http.close()
        if self._process is not None:
            self._process.terminate()
            try:
                await asyncio.wait_for(self._process.wait(), 10)
            except TimeoutError:
                self._process.kill()
                await asyncio.wait_for(self._process.wait(), 5)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """One DevTools command and its result (events in between are skipped)."""
        assert self._socket is not None
        ident = next(self._ids)
        await self._socket.send_str(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = json.loads((await asyncio.wait_for(self._socket.receive(), 30)).data)
            if message.get("id") == ident:
                assert "error" not in message, message
                return dict(message["result"])

    async def go(self, url: str) -> None:
        await self.send("Page.enable")
        await self.send("Page.navigate", {"url": url})

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        return result["result"].get("value")

    async def html(self) -> str:
        return str(await self.evaluate("document.documentElement.outerHTML"))

    async def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode((await self.send("Page.captureScreenshot", {"format": "png"}))["data"])
        await asyncio.to_thread(path.write_bytes, data)
        return data
