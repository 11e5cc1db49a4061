from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway
from tests.support.oidc import OidcProvider


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    """Gateways started by a test; whatever is left is stopped and its process session killed."""
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.close()


@pytest.fixture
def short_tmp_path() -> Iterator[Path]:
    """A fresh directory of this test's own right in the system temp directory, removed afterwards: for Unix
    socket paths, which must fit in 107 bytes. ``tmp_path`` is too deep for that under pytest-xdist (a
    ``popen-gwN`` level more) or for a long user name."""
    path = Path(tempfile.mkdtemp(prefix="o1t-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture
def start_gateway(gateways: list[Gateway], tmp_path: Path) -> Callable[..., Gateway]:
    """Start a gateway and wait until it is ready (for sync tests and fixtures)."""

    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Gateway:
        gateway = Gateway(*args, env=env, cwd=tmp_path)
        gateways.append(gateway)
        if ready:
            gateway.wait_ready()
        return gateway

    return start


@pytest.fixture
def launch_gateway(start_gateway: Callable[..., Gateway]) -> Callable[..., Awaitable[Gateway]]:
    """``start_gateway`` for async tests: waits for the ready line without stopping the event loop."""

    async def launch(*args: str, env: dict[str, str] | None = None) -> Gateway:
        gateway = start_gateway(*args, env=env, ready=False)
        await gateway.until_ready()
        return gateway

    return launch


@pytest.fixture
async def oidc_provider() -> AsyncIterator[OidcProvider]:
    """A real OpenID Connect provider process (tests/fixtures/oidc_provider.py) with an RS256 and an ES256
    key, started on a port the OS chooses; the fixture returns once it serves (or fails at a deadline)."""
    provider = await OidcProvider.launch()
    yield provider
    await provider.aclose()
