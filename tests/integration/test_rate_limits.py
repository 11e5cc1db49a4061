"""Rate limits across real workers: clients on fresh connections (the kernel spreads them over both workers)
send as fast as they can, and the whole gateway admits ``burst + rate * seconds`` within 5%; refusals are
429 with Retry-After and a JSON-RPC error naming the limit, or on a WebSocket or legacy SSE stream the
error alone. Each test's clients come from their own loopback address (127.0.0.x), so each has a principal
(and so buckets) of its own while authentication is off.

The accuracy figures and the cost per admitted request are measured by ``python -m bench.rate_limits``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.support.audit import read_trail
from tests.support.gateway import Gateway, running_gateway
from tests.support.metrics import scrape
from tests.support.rawmcp import ACCEPT, RawMcp
from tests.support.spread import RequestCounts
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(180)

RATE, BURST = 40, 20
CONFIG = f"""
server: {{port: 0, workers: 2}}
rate_limits:
  per_principal: {{rate: {RATE}, burst: {BURST}}}
  per_tool: {{rate: 0.2, burst: 3}}
  per_backend: {{rate: 0.2, burst: 5}}
backends:
  - name: demo
    command: {sys.executable}
    args: ["-m", "only1mcp.demo_server"]
"""
HEADERS = {"Accept": ACCEPT, "Content-Type": "application/json"}
PING = b'{"jsonrpc":"2.0","id":7,"method":"ping"}'
MODERN = "2026-07-28"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    folder = tmp_path_factory.mktemp("rate-limits")
    config = folder / "only1mcp.yaml"
    config.write_text(CONFIG)
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.wait_backends_up("demo")
        yield gateway


def _client(address: str, fresh: bool = True) -> aiohttp.ClientSession:
    """Requests from ``address`` (a loopback address of its own: a principal of its own), each on a new
    connection unless ``fresh`` is False."""
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(address, 0), force_close=fresh,
                                                                limit=0))


async def _session(url: str) -> str:
    """A session opened from an address no test floods (initialize counts against its principal too)."""
    async with _client("127.0.0.250") as http, http.post(url + "/mcp", headers=HEADERS, data=json.dumps({
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    ) as response:
        assert response.status == 200, await response.text()
        return response.headers["Mcp-Session-Id"]


@dataclass
class Tally:
    admitted: int = 0
    refused: int = 0
    failed: list[str] = field(default_factory=list)  # anything but 200 or a well-formed 429
    last_admitted: float = 0.0  # monotonic time of the last 200 seen
    seconds: float = 0.0  # from the first request sent to the last answer read: admissions happen within it
    asked: float = 0.0  # from the first answer read to the last request sent: the gateway was asked throughout
    message: str = ""  # a refusal's JSON-RPC error message


def _check_refusal(response: aiohttp.ClientResponse, body: dict[str, Any], tally: Tally) -> None:
    retry_after = response.headers.get("Retry-After", "")
    error = body.get("error") or {}
    if not (retry_after.isdigit() and int(retry_after) >= 1 and body.get("id") == 7
            and error.get("code") == -32005 and error.get("data", {}).get("limit") == "per_principal"):
        tally.failed.append(f"429 without a proper Retry-After or error: {retry_after!r} {body}")
    tally.message = error.get("message", "")


async def flood(url: str, address: str, session: str, seconds: float, clients: int = 12) -> Tally:
    """Pings from ``address`` as fast as ``clients`` concurrent senders can, each on a new connection."""
    tally = Tally()
    headers = {**HEADERS, "Mcp-Session-Id": session}
    started = time.monotonic()
    stop = started + seconds
    first_answer = last_sent = 0.0

    async def sender(http: aiohttp.ClientSession) -> None:
        nonlocal first_answer, last_sent
        while (sent := time.monotonic()) < stop:
            last_sent = max(last_sent, sent)
            try:
                async with http.post(url + "/mcp", data=PING, headers=headers) as response:
                    body = await response.json(content_type=None)
                    first_answer = first_answer or time.monotonic()
                    if response.status == 200 and body.get("result") == {}:
                        tally.admitted += 1
                        tally.last_admitted = time.monotonic()
                    elif response.status == 429:
                        tally.refused += 1
                        _check_refusal(response, body, tally)
                    else:
                        tally.failed.append(f"{response.status} {body}")
            except (TimeoutError, aiohttp.ClientConnectionError) as exc:
                tally.failed.append(f"connection: {exc!r}")

    async with _client(address) as http:
        await asyncio.gather(*(sender(http) for _ in range(clients)))
    tally.seconds = time.monotonic() - started
    tally.asked = last_sent - first_answer
    return tally


def _within(tally: Tally, rate: float, burst: int, slack: float = 0.05) -> None:
    """At most ``burst + rate * t`` (+5%) over the whole flood, and at least that (-5%) over the time the
    gateway was surely being asked: a client that is slow to connect at the start, or to read the last
    answers at the end, shortens the time tokens could be used, not the gateway's accuracy."""
    most, least = burst + rate * tally.seconds, burst + rate * tally.asked
    assert (1 - slack) * least <= tally.admitted <= (1 + slack) * most, (tally.admitted, round(least, 1),
                                                                           round(most, 1), tally)




async def test_two_workers_together_admit_burst_plus_rate_times_the_window(gateway: Gateway) -> None:
    session = await _session(gateway.url)
    counts = await RequestCounts.fetch(gateway)
    tally = await flood(gateway.url, "127.0.0.2", session, seconds=4.0)
    assert not tally.failed, tally.failed[:5]
    assert tally.refused > tally.admitted  # the clients did send faster than the limit
    _within(tally, RATE, BURST)
    await counts.each_served(gateway, 50)  # both workers took part: the limit held across them
    assert re.fullmatch(rf"rate limit per_principal exceeded: {RATE}/s, burst {BURST}; retry after \d+ s",
                        tally.message), tally.message


async def test_each_principal_has_a_bucket_of_its_own(gateway: Gateway) -> None:
    session = await _session(gateway.url)
    first, second = await asyncio.gather(flood(gateway.url, "127.0.0.3", session, 3.0, clients=8),
                                         flood(gateway.url, "127.0.0.4", session, 3.0, clients=8))
    for tally in (first, second):
        assert not tally.failed, tally.failed[:5]
        _within(tally, RATE, BURST)


async def test_a_websocket_request_past_the_limit_gets_the_error_alone(gateway: Gateway) -> None:
    async with _client("127.0.0.5", fresh=False) as http, http.ws_connect(
            gateway.url.replace("http", "ws", 1) + "/ws", protocols=("mcp",)) as socket:
        await socket.send_str(json.dumps({"jsonrpc": "2.0", "id": "init", "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        assert "result" in json.loads((await socket.receive()).data)
        sent = 3 * BURST
        for n in range(sent):
            await socket.send_str(json.dumps({"jsonrpc": "2.0", "id": n, "method": "ping"}))
        answers = [json.loads((await socket.receive(timeout=10)).data) for _ in range(sent)]
        refused = [a for a in answers if "error" in a]
        assert len(answers) - len(refused) <= BURST + 5  # back to back: about the burst (init took one)
        assert refused and all(a["error"]["code"] == -32005 and "per_principal" in a["error"]["message"]
                               for a in refused), refused[:3]
        await socket.send_str(json.dumps({"jsonrpc": "2.0", "id": "later", "method": "ping"}))
        assert not socket.closed  # the socket stays open for what comes once the bucket refills


async def test_a_legacy_sse_request_past_the_limit_gets_the_error_on_the_stream(gateway: Gateway) -> None:
    async with _client("127.0.0.6", fresh=False) as http, http.get(
            gateway.url + "/sse", headers={"Accept": "text/event-stream"}) as stream:
        lines = stream.content
        endpoint = ""
        while not endpoint:
            line = (await lines.readline()).decode().strip()
            endpoint = line[6:] if line.startswith("data: /messages") else ""
        sent = 3 * BURST
        for n in range(sent):
            async with http.post(gateway.url + endpoint, headers=HEADERS, data=json.dumps(
                    {"jsonrpc": "2.0", "id": n, "method": "ping"})) as post:
                assert post.status == 202  # the answer, refusal or not, goes on the stream
        answers: list[dict[str, Any]] = []
        while len(answers) < sent:
            line = (await asyncio.wait_for(lines.readline(), 10)).decode().strip()
            if line.startswith("data: {"):
                answers.append(json.loads(line[6:]))
        refused = [a for a in answers if "error" in a]
        assert refused and all(a["error"]["code"] == -32005 for a in refused), answers[:3]
        assert len(answers) - len(refused) >= BURST - 1


async def test_a_2026_07_28_request_past_the_limit_gets_429(gateway: Gateway) -> None:
    message = {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}}
    headers = {**HEADERS, "MCP-Protocol-Version": MODERN, "Mcp-Method": "server/discover"}
    statuses: list[int] = []
    async with _client("127.0.0.7", fresh=False) as http:
        for _ in range(3 * BURST):
            async with http.post(gateway.url + "/mcp", headers=headers, data=json.dumps(message)) as response:
                statuses.append(response.status)
                if response.status == 429:
                    body = await response.json()
                    assert int(response.headers["Retry-After"]) >= 1 and body["error"]["code"] == -32005, body
    assert 429 in statuses and statuses.count(200) >= BURST - 1, statuses


async def _call_tool(http: aiohttp.ClientSession, url: str, session: str, tool: str) -> tuple[int, Any, str | None]:
    async with http.post(url + "/mcp", headers={**HEADERS, "Mcp-Session-Id": session}, data=json.dumps({
            "jsonrpc": "2.0", "id": 3, "method": "tools/call",
            "params": {"name": tool, "arguments": {"text": "hi", "a": 1, "b": 2}}})) as response:
        return response.status, await response.json(content_type=None), response.headers.get("Retry-After")


async def test_per_tool_buckets_are_per_principal_and_tool_and_per_backend_is_everyones(gateway: Gateway) -> None:
    """per_tool {rate: 0.2, burst: 3} and per_backend {rate: 0.2, burst: 5}: refills are slow enough (one
    every 5 s) that the counts below are exact."""
    session = await _session(gateway.url)
    before = await scrape(gateway)
    async with _client("127.0.0.8") as alice, _client("127.0.0.9") as bob:
        alice_echo = [await _call_tool(alice, gateway.url, session, "demo_echo") for _ in range(4)]
        assert [status for status, _, _ in alice_echo] == [200, 200, 200, 429]
        status, body, retry_after = alice_echo[-1]
        assert body["error"]["code"] == -32005 and body["error"]["data"]["limit"] == "per_tool", body
        assert body["error"]["message"].startswith("rate limit per_tool exceeded: 0.2/s, burst 3; retry after ")
        assert retry_after is not None and int(retry_after) >= 1
        # Another tool of alice's, and the same tool for bob, have buckets of their own...
        assert (await _call_tool(alice, gateway.url, session, "demo_add"))[0] == 200
        assert (await _call_tool(bob, gateway.url, session, "demo_echo"))[0] == 200
        # ...but the backend's bucket is everyone's: 5 calls went to it, the sixth is refused whoever sends it
        status, body, retry_after = await _call_tool(bob, gateway.url, session, "demo_add")
        assert status == 429 and body["error"]["data"]["limit"] == "per_backend", body
        assert retry_after is not None and int(retry_after) >= 1
    # each refusal counted once, by its limit, in the metrics summed over both workers
    after = await scrape(gateway)
    for limit in ("per_tool", "per_backend"):
        assert (after.value("only1mcp_rate_limited_total", limit=limit)
                - before.value("only1mcp_rate_limited_total", limit=limit)) == 1, limit


async def test_a_worker_killed_under_load_does_not_let_the_gateway_exceed_the_bound(launch_gateway,
                                                                                 tmp_path: Path) -> None:
    """The killed worker's unused leased tokens are lost, not handed out again: the whole window stays
    within the bound, and the worker that takes its place admits from the same bucket."""
    rate, burst = 40, 100
    config = tmp_path / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nrate_limits:\n  per_principal: {{rate: {rate}, burst: "
                      f"{burst}}}\n")
    gateway = await launch_gateway("--config", str(config))
    session = await _session(gateway.url)
    victim = (await gateway.fetch_worker_pids())[0]
    load = asyncio.ensure_future(flood(gateway.url, "127.0.0.10", session, seconds=5.0))

    async def leased() -> bool:  # the load runs and the workers hold leases of the bucket
        return (await gateway.fetch_status())["rate_limits"]["leases"] > 0

    await eventually(leased, 20, "leases held under load")
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    tally = await load
    bound = burst + rate * tally.seconds
    assert tally.admitted <= 1.05 * bound, (tally.admitted, bound)
    assert tally.admitted >= 0.8 * bound, (tally.admitted, bound)  # the survivors went on admitting
    assert tally.last_admitted > killed_at + 2.0
    assert victim not in await gateway.fetch_worker_pids()
    assert all(f.startswith("connection:") for f in tally.failed), tally.failed[:5]  # only the victim's own


async def test_a_reload_that_changes_the_rate_applies_to_the_next_requests(launch_gateway, tmp_path: Path) -> None:
    config = tmp_path / "only1mcp.yaml"
    config.write_text("server: {port: 0, workers: 2}\nrate_limits:\n  per_principal: {rate: 10, burst: 10}\n")
    gateway = await launch_gateway("--config", str(config))
    session = await _session(gateway.url)
    before = await flood(gateway.url, "127.0.0.11", session, seconds=2.0, clients=8)
    _within(before, 10, 10)
    config.write_text("server: {port: 0, workers: 2}\nrate_limits:\n  per_principal: {rate: 60, burst: 10}\n")
    gateway.signal(signal.SIGHUP)

    async def applied() -> bool:
        status = await gateway.fetch_status()
        return {w["config_version"] for w in status["workers"]} == {2}

    await eventually(applied, 20, "config version 2 on both workers")
    after = await flood(gateway.url, "127.0.0.11", session, seconds=3.0, clients=8)
    assert not after.failed, after.failed[:5]
    # The same principal's bucket, now refilling at 60/s (what accrued between the floods is within the
    # burst, which is the same)
    assert 0.95 * 60 * after.asked <= after.admitted <= 1.05 * (10 + 60 * after.seconds), after
    assert "60/s, burst 10" in after.message, after.message


async def test_authenticated_principals_count_apart_hidden_tools_never_429_and_refusals_are_audited(
        launch_gateway, tmp_path: Path) -> None:
    """API keys from one address are two principals; a tool rbac hides is answered as unknown, never 429 (a
    refusal naming the limit would tell that it exists); each refusal's audit line says rate_limited.
    Refills are slow (one every 5 s) and each client keeps one connection, so the counts are exact."""
    trail = tmp_path / "audit.log"
    keys = {"alice": "rate-key-alice-7c1d", "bob": "rate-key-bob-4e9a"}
    entries = "".join(f"    - {{name: {name}, sha256: {hashlib.sha256(key.encode()).hexdigest()}, roles: [reader]}}\n"
                      for name, key in keys.items())
    config = tmp_path / "only1mcp.yaml"
    config.write_text(
        f"server: {{port: 0, workers: 2}}\nauth:\n  mode: api_key\n  api_keys:\n{entries}"
        "rbac:\n  roles:\n    reader: {allow: ['tools:demo_echo']}\n"
        "rate_limits:\n  per_principal: {rate: 0.2, burst: 6}\n  per_tool: {rate: 0.2, burst: 1}\n"
        f"audit: {{enabled: true, path: {trail}}}\n"
        f"backends:\n  - name: demo\n    command: {sys.executable}\n    args: [\"-m\", \"only1mcp.demo_server\"]\n")
    gateway = await launch_gateway("--config", str(config))
    async with aiohttp.ClientSession(headers={"X-API-Key": keys["alice"]}) as http:
        alice = RawMcp(http, gateway.url, keep_alive=True)
        await alice.initialize()  # 1 of alice's 6
        hidden = [await _post(alice, 10 + n, "tools/call", {"name": "demo_add", "arguments": {"a": 1, "b": 2}})
                  for n in range(2)]  # 2, 3
        assert all(status == 200 and body["error"]["code"] == -32602 for status, body in hidden), hidden
        assert (await _post(alice, 20, "tools/call", {"name": "demo_echo", "arguments": {"text": "a"}}))[0] == 200
        status, body = await _post(alice, 21, "tools/call", {"name": "demo_echo", "arguments": {"text": "b"}})
        assert status == 429 and body["error"]["data"]["limit"] == "per_tool", body  # 5: per_tool's 1 is spent
        assert (await _post(alice, 30, "ping"))[0] == 200  # 6
        status, body = await _post(alice, 31, "ping")
        assert status == 429 and body["error"]["data"]["limit"] == "per_principal", body
    async with aiohttp.ClientSession(headers={"X-API-Key": keys["bob"]}) as http:
        bob = RawMcp(http, gateway.url, keep_alive=True)
        await bob.initialize()
        assert (await _post(bob, 40, "ping"))[0] == 200  # from the same address, a bucket of his own

    async def audited() -> dict[Any, dict[str, Any]] | None:
        lines = {line["id"]: line for line in read_trail(trail)} if trail.exists() else {}
        return lines if {10, 21, 31, 40} <= set(lines) else None

    lines = await eventually(audited, 10, "the audit lines of the requests")
    assert [lines[n]["outcome"] for n in (10, 11, 20, 21, 30, 31, 40)] == [
        "denied", "denied", "ok", "rate_limited", "ok", "rate_limited", "ok"]
    assert (lines[31]["principal"], lines[31]["code"]) == ("alice", -32005)


async def _post(mcp: RawMcp, request_id: int, method: str, params: dict[str, Any] | None = None) -> tuple[int, Any]:
    message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
    if params is not None:
        message["params"] = params
    status, body, _ = await mcp.post_raw(json.dumps(message).encode())
    return status, body
