"""Prometheus metrics across worker processes: exact totals, never going down, sane histograms, clean for
promtool. Real gateways with two workers; every call below is counted by whichever worker the kernel gave
its connection to."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.gateway import Gateway, running_gateway
from tests.support.metrics import Scrape, counters, promtool_check, scrape
from tests.support.rawhttp import connect, open_session, rpc
from tests.support.spread import RequestCounts
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

CONFIG = """
server:
  port: 0
  workers: 2
  standby_workers: {standby}
backends:
  - name: demo
    command: {python}
    args: ["-m", "only1mcp.demo_server"]
"""
ECHO = {"name": "demo_echo", "arguments": {"text": "hi"}}


def _config(folder: Path, standby: int = 0) -> Path:
    config = folder / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable, standby=standby))
    return config


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("metrics")
    with running_gateway("--config", str(_config(folder)), cwd=folder) as gateway:
        yield gateway


async def _call_on_new_connection(url: str, session: str, request_id: int) -> bool:
    """One tools/call on a connection of its own (so the kernel picks a worker for each); True when it
    succeeded."""
    async with connect(url) as connection:
        await connection.send(connection.post_bytes(rpc(request_id, "tools/call", ECHO), session=session))
        response = await connection.response()
    return response.status == 200 and "result" in json.loads(response.body)


def _calls(scrape_: Scrape, outcome: str = "ok") -> float:
    return scrape_.value("only1mcp_requests_total", method="tools/call", backend="demo", outcome=outcome)


async def test_calls_over_fresh_connections_add_up_exactly(gateway: Gateway) -> None:
    session = await open_session(gateway.url)
    counts = await RequestCounts.fetch(gateway)
    before = await scrape(gateway)
    calls = 240
    for start in range(0, calls, 8):  # 8 at a time: both workers busy at once
        done = await asyncio.gather(*(_call_on_new_connection(gateway.url, session, n)
                                      for n in range(start, start + 8)))
        assert all(done)
    # Read right after the last answer, from whichever worker this connection lands on: nothing is batched.
    after = await scrape(gateway)
    assert _calls(after) - _calls(before) == calls
    tool = {"backend": "demo", "tool": "demo_echo", "outcome": "ok"}
    assert after.value("only1mcp_tool_calls_total", **tool) - before.value("only1mcp_tool_calls_total", **tool) == calls
    duration = {"method": "tools/call", "backend": "demo"}
    assert (after.value("only1mcp_request_duration_seconds_count", **duration)
            - before.value("only1mcp_request_duration_seconds_count", **duration)) == calls
    assert (after.value("only1mcp_backend_request_duration_seconds_count", backend="demo")
            - before.value("only1mcp_backend_request_duration_seconds_count", backend="demo")) == calls
    await counts.each_served(gateway, calls // 8)  # the calls were spread over both workers


async def _modern_call(url: str, request_id: int) -> bool:
    """One 2026-07-28 tools/call (no session, the version in _meta and the headers) on a connection of its own."""
    params = {**ECHO, "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                "io.modelcontextprotocol/clientCapabilities": {}}}
    async with connect(url) as connection:
        await connection.send(connection.post_bytes(
            rpc(request_id, "tools/call", params), **{"MCP-Protocol-Version": "2026-07-28",
                                                       "Mcp-Method": "tools/call", "Mcp-Name": "demo_echo"}))
        response = await connection.response()
    return response.status == 200 and json.loads(response.body)["result"].get("resultType") == "complete"


async def test_requests_of_the_2026_07_28_era_are_counted_too(gateway: Gateway) -> None:
    before = await scrape(gateway)
    calls = 40
    for start in range(0, calls, 8):
        assert all(await asyncio.gather(*(_modern_call(gateway.url, n) for n in range(start, start + 8))))
    after = await scrape(gateway)
    assert _calls(after) - _calls(before) == calls
    tool = {"backend": "demo", "tool": "demo_echo", "outcome": "ok"}
    assert after.value("only1mcp_tool_calls_total", **tool) - before.value("only1mcp_tool_calls_total", **tool) == calls


async def test_the_admin_path_serves_the_same_aggregate(gateway: Gateway) -> None:
    session = await open_session(gateway.url)
    assert await _call_on_new_connection(gateway.url, session, 1)
    public, admin = await scrape(gateway), await scrape(gateway, "/api/v1/admin/metrics")
    assert _calls(public) >= 1
    assert _calls(admin) == _calls(public)


async def test_histogram_buckets_are_cumulative_and_end_at_the_count(gateway: Gateway) -> None:
    session = await open_session(gateway.url)
    for n in range(20):
        assert await _call_on_new_connection(gateway.url, session, n)
    result = await scrape(gateway)
    for name in ("only1mcp_request_duration_seconds", "only1mcp_backend_request_duration_seconds"):
        assert result.types[name] == "histogram"
        for labels, count in result.series(f"{name}_count").items():
            buckets = sorted((float(dict(key)["le"]), value) for key, value in result.series(f"{name}_bucket").items()
                             if key - {("le", dict(key)["le"])} == labels)
            bounds = [bound for bound, _ in buckets]
            assert bounds[0] == 0.0005 and bounds[-2] == 60.0 and math.isinf(bounds[-1]), bounds
            values = [value for _, value in buckets]
            assert values == sorted(values), f"{name}{dict(labels)}: buckets go down: {values}"
            assert values[-1] == count, f"{name}{dict(labels)}: +Inf {values[-1]} != count {count}"
            total = result.value(f"{name}_sum", **dict(labels))
            assert 0 <= total <= count * 60, (name, labels, total, count)
    # a local echo is answered well within a second: its calls sit in the low buckets
    tools = {"method": "tools/call", "backend": "demo"}
    assert result.value("only1mcp_request_duration_seconds_bucket", le="1.0", **tools) == \
        result.value("only1mcp_request_duration_seconds_count", **tools)


async def test_promtool_finds_nothing_to_fix(gateway: Gateway) -> None:
    session = await open_session(gateway.url)
    assert await _call_on_new_connection(gateway.url, session, 1)
    async with connect(gateway.url) as connection:  # an unknown tool: an error series too
        await connection.send(connection.post_bytes(rpc(2, "tools/call", {"name": "nope"}), session=session))
        assert (await connection.response()).status == 200
    result = await scrape(gateway)
    assert _calls(result, "ok") >= 1
    assert result.value("only1mcp_requests_total", method="tools/call", backend="", outcome="error") >= 1
    assert promtool_check(result.text) == ""


async def test_counters_never_go_down_when_a_worker_is_killed_mid_load(
        launch_gateway: Callable[..., object], tmp_path: Path) -> None:
    gateway = await launch_gateway("--config", str(_config(tmp_path, standby=1)))  # type: ignore[misc]
    assert isinstance(gateway, Gateway)
    session = await open_session(gateway.url)
    victim = (await gateway.fetch_worker_pids())[0]
    answered = 0
    stop = asyncio.Event()

    async def load() -> None:
        nonlocal answered
        n = 0
        while not stop.is_set() and n < 5000:
            n += 1
            # a call the killed worker held gets no answer, and nothing to count for it
            with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
                answered += await _call_on_new_connection(gateway.url, session, n)

    clients = [asyncio.create_task(load()) for _ in range(4)]
    previous = counters(await scrape(gateway))
    scrapes = 0

    async def killed_and_replaced() -> bool:
        nonlocal previous, scrapes
        current = counters(await scrape(gateway))
        scrapes += 1
        dropped = {key: (previous[key], value) for key, value in current.items()
                   if key in previous and value < previous[key]}
        missing = [key for key in previous if key not in current]
        assert not dropped and not missing, f"went down: {dropped}; vanished: {missing}"
        previous = current
        if scrapes == 5:
            os.kill(victim, signal.SIGKILL)
        pids = await gateway.fetch_worker_pids()
        return scrapes > 20 and victim not in pids and len(pids) == 2

    try:
        await eventually(killed_and_replaced, 60, "the killed worker replaced, scraping all along", interval=0.1)
    finally:
        stop.set()
        await asyncio.gather(*clients)
    final = await scrape(gateway)
    assert counters(final).keys() >= previous.keys()
    assert all(counters(final)[key] >= value for key, value in previous.items())
    # every answered call was counted before its answer left (a call counted whose answer the kill lost is
    # the only difference)
    assert _calls(final) >= answered > 0
    assert final.value("only1mcp_worker_restarts_total") >= 1
    assert final.value("only1mcp_workers") == 2


async def test_with_metrics_off_both_paths_answer_404_saying_how_to_turn_them_on(
        launch_gateway: Callable[..., object], tmp_path: Path) -> None:
    config = _config(tmp_path)
    config.write_text(config.read_text() + "metrics:\n  enabled: false\n")
    gateway = await launch_gateway("--config", str(config))  # type: ignore[misc]
    assert isinstance(gateway, Gateway)
    session = await open_session(gateway.url)
    assert await _call_on_new_connection(gateway.url, session, 1)
    for path in ("/metrics", "/api/v1/admin/metrics"):
        status, body = await gateway.fetch_text(path)
        assert status == 404 and "metrics.enabled: true" in body, (path, status, body)


async def test_a_backend_taken_out_of_the_config_leaves_no_gauges(launch_gateway, tmp_path: Path) -> None:
    """backend_up and breaker_state of a removed backend (or replica) disappear from scrapes after the reload
    that removes it, instead of showing its last health until the supervisor restarts."""
    two = CONFIG.format(python=sys.executable, standby=0) + (
        f"  - name: spare\n    command: {sys.executable}\n    args: [\"-m\", \"only1mcp.demo_server\"]\n"
        f"    replicas: 2\n")
    config = tmp_path / "only1mcp.yaml"
    config.write_text(two)
    gateway = await launch_gateway("--config", str(config))

    def up(scraped: Scrape) -> dict[str, float]:
        return {f"{dict(labels)['backend']}/{dict(labels)['replica']}": value
                for labels, value in scraped.series("only1mcp_backend_up").items()}

    async def spare_shown() -> Scrape | None:
        scraped = await scrape(gateway)
        return scraped if {"demo/0", "spare/0", "spare/1"} <= set(up(scraped)) else None

    before = await eventually(spare_shown, 30, "every replica's backend_up")
    assert before.series("only1mcp_breaker_state")
    config.write_text(two.replace("replicas: 2", "replicas: 1"))
    gateway.signal(signal.SIGHUP)

    async def one_spare() -> Scrape | None:
        scraped = await scrape(gateway)
        return scraped if "spare/1" not in up(scraped) and "spare/0" in up(scraped) else None

    await eventually(one_spare, 30, "the second replica's gauges to go")
    config.write_text(CONFIG.format(python=sys.executable, standby=0))
    gateway.signal(signal.SIGHUP)

    async def spare_gone() -> Scrape | None:
        scraped = await scrape(gateway)
        return scraped if not any(key.startswith("spare/") for key in up(scraped)) else None

    after = await eventually(spare_gone, 30, "the removed backend's gauges to go")
    assert up(after) == {"demo/0": 1.0}
    assert not [labels for labels in after.series("only1mcp_breaker_state") if dict(labels)["backend"] == "spare"]
    assert promtool_check(after.text) == ""
