from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway


@pytest.fixture
def gateways() -> Iterator[list[Gateway]]:
    """Gateways started by a test; whatever is left is stopped and its process session killed."""
    started: list[Gateway] = []
    yield started
    for gateway in started:
        gateway.close()


@pytest.fixture
def start_gateway(gateways: list[Gateway], tmp_path: Path):
    def start(*args: str, env: dict[str, str] | None = None, ready: bool = True) -> Gateway:
        gateway = Gateway(*args, env=env, cwd=tmp_path)
        gateways.append(gateway)
        if ready:
            gateway.wait_ready()
        return gateway

    return start
