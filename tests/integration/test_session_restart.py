"""With a configured session secret, sessions outlive a restart of the gateway, and a session its client
ended (DELETE) stays ended after one."""

from __future__ import annotations

import signal
from pathlib import Path

import aiohttp
import pytest

from tests.support.rawmcp import RawMcp

pytestmark = pytest.mark.timeout(120)

LIST = b'{"jsonrpc":"2.0","id":1,"method":"tools/list"}'


async def test_a_deleted_session_stays_dead_across_a_restart(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nsessions: {{secret: '{'z' * 40}', "
                      f"state_dir: {tmp_path / 'state'}}}\n")
    first = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession() as http:
        ended, kept = RawMcp(http, first.url), RawMcp(http, first.url)
        await ended.initialize()
        await kept.initialize()
        async with http.delete(ended.url, headers=ended.headers()) as response:
            assert response.status == 200
        first.signal(signal.SIGTERM)
        assert await first.exited() == 0

        second = await launch_gateway("--config", str(config))
        for client in (ended, kept):
            client.url = second.url + "/mcp"
        status, body, _ = await kept.post_raw(LIST)
        assert status == 200 and "tools" in body["result"]  # the same secret: the session is still valid
        for _ in range(6):  # new connections land on either worker: each must refuse it
            status, body, _ = await ended.post_raw(LIST)
            assert status == 404 and "terminated" in body["error"]["message"], body
    assert "1 session(s) ended by their clients stay ended" in second.log
