"""Rate limits: what admitting a request costs, and how close the whole gateway stays to the bound.

    python -m bench.rate_limits [--seconds 5] [--instructions]

Accuracy: a gateway with 2 workers and ``rate_limits.per_principal`` set; clients on fresh connections (so
the kernel spreads them over both workers) send pings as fast as they can for ``--seconds``, each shape
from a loopback address of its own (a principal of its own). Reported: requests admitted against
``burst + rate * seconds``, the refusals, the supervisor's lease asks per admitted request and its CPU.

Cost, by the CPU clock: a gateway with 1 worker pinned to core 0 and wrk on core 1, pings on 32 keep-alive
connections, per_principal off, on with plenty (every request admitted from a lease held in the worker) and
on at its limit (most requests refused), interleaved. With ``--instructions``, the same three in
callgrind (bench.instructions: proxied tools/call, instructions per call in the worker, also without what
it runs at rest), which repeats on this VM where the clock does not (needs valgrind).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp

from . import instructions
from .proxy_overhead import HERE, LUA, _drain, _gateway_cpu, _spawn, _wait_line
from .stats import cpu_seconds, save

ACCEPT = "application/json, text/event-stream"
HEADERS = {"Accept": ACCEPT, "Content-Type": "application/json"}
PING = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
SHAPES = ((20, 10), (100, 50), (400, 100))  # (rate, burst) measured for accuracy
COST = {"off": "", "plenty": "rate_limits:\n  per_principal: {rate: 1000000, burst: 1000000}\n",
        "at_limit": "rate_limits:\n  per_principal: {rate: 1000, burst: 100}\n"}


class _Gateway:
    """The real supervisor with ``config``; its url once ready."""

    def __init__(self, config: str, cpus: str | None = None) -> None:
        self._folder = Path(tempfile.mkdtemp(prefix="only1mcp-bench-rl-"))
        path = self._folder / "bench.yaml"
        path.write_text(config)
        self.process = _spawn([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(path),
                               "--log-level", "info"], cpus, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              cwd=HERE.parent)
        self.process.stdout = self.process.stderr
        self.url = _wait_line(self.process, r"ready url=(\S+)").group(1)
        _drain(self.process)

    def status(self) -> dict[str, Any]:
        with urllib.request.urlopen(self.url + "/api/v1/admin/status", timeout=10) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def session(self) -> str:
        request = urllib.request.Request(self.url + "/mcp", json.dumps({
            "jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}
        }).encode(), HEADERS)
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.headers["Mcp-Session-Id"]  # type: ignore[no-any-return]

    def close(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(30)
        shutil.rmtree(self._folder, ignore_errors=True)


# ---------------------------------------------------------------- accuracy

async def _flood(url: str, address: str, session: str, seconds: float, clients: int = 16) -> dict[str, Any]:
    counts = {"admitted": 0, "refused": 0, "other": 0}
    headers = {**HEADERS, "Mcp-Session-Id": session}
    started = time.monotonic()

    async def sender(http: aiohttp.ClientSession) -> None:
        while time.monotonic() < started + seconds:
            try:
                async with http.post(url + "/mcp", data=PING, headers=headers) as response:
                    await response.read()
                    key = {200: "admitted", 429: "refused"}.get(response.status, "other")
                    counts[key] += 1
            except aiohttp.ClientError:
                counts["other"] += 1

    connector = aiohttp.TCPConnector(local_addr=(address, 0), force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        await asyncio.gather(*(sender(http) for _ in range(clients)))
    return {**counts, "seconds": round(time.monotonic() - started, 3)}


def accuracy(seconds: float) -> list[dict[str, Any]]:
    shapes = "".join(f"  # {rate}/s, burst {burst}\n" for rate, burst in SHAPES)
    rows = []
    for n, (rate, burst) in enumerate(SHAPES):
        gateway = _Gateway(f"server: {{port: 0, workers: 2, standby_workers: 0}}\nrate_limits:\n  per_principal: "
                           f"{{rate: {rate}, burst: {burst}}}\n{shapes}")
        try:
            session = gateway.session()
            before = gateway.status()["rate_limits"]
            supervisor_before = cpu_seconds(gateway.process.pid)
            tally = asyncio.run(_flood(gateway.url, f"127.0.0.{20 + n}", session, seconds))
            supervisor = cpu_seconds(gateway.process.pid) - supervisor_before
            after = gateway.status()["rate_limits"]
        finally:
            gateway.close()
        bound = burst + rate * tally["seconds"]
        asks = after["asks"] - before["asks"]
        rows.append({"rate": rate, "burst": burst, **tally, "bound": round(bound, 1),
                     "admitted_vs_bound": round(tally["admitted"] / bound, 4),
                     "client_rps": round((tally["admitted"] + tally["refused"]) / tally["seconds"]),
                     "asks": asks, "asks_per_admitted": round(asks / max(1, tally["admitted"]), 3),
                     "supervisor_cpu_pct": round(supervisor / tally["seconds"] * 100, 2)})
    return rows


# ---------------------------------------------------------------- cost

def cost(seconds: float, repeat: int) -> dict[str, Any]:
    """CPU per ping of a 1-worker gateway, interleaved between the three configs (medians of ``repeat``)."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    two_cores = (os.cpu_count() or 1) >= 2
    gateway_cpus, load_cpus = ("0", "1") if two_cores else (None, None)
    gateways = {name: _Gateway(f"server: {{port: 0, workers: 1, standby_workers: 0}}\n{extra}", gateway_cpus)
                for name, extra in COST.items()}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in COST}
    try:
        sessions = {name: gateway.session() for name, gateway in gateways.items()}
        for name, gateway in gateways.items():  # warm up
            _wrk_ping(gateway.url, sessions[name], min(2.0, seconds), load_cpus)
        for round_ in range(repeat):
            # the order turns every round, so a VM that slows down during a round favours none of them
            names = list(gateways)[round_ % len(gateways):] + list(gateways)[:round_ % len(gateways)]
            for name in names:
                gateway = gateways[name]
                before = _gateway_cpu(gateway.process.pid)
                measured = _wrk_ping(gateway.url, sessions[name], seconds, load_cpus)
                used = _gateway_cpu(gateway.process.pid) - before
                requests = max(1, measured["requests"])
                admitted = requests - measured["non_2xx"]
                runs[name].append({"rps": measured["rps"], "requests": requests, "admitted": admitted,
                                   "cpu_us_per_request": used / requests * 1e6,
                                   "cpu_us_per_admitted": used / max(1, admitted) * 1e6})
    finally:
        for gateway in gateways.values():
            gateway.close()
    return {name: {key: round(statistics.median(run[key] for run in results), 1) for key in results[0]}
            for name, results in runs.items()}


def _wrk_ping(url: str, session: str, seconds: float, cpus: str | None) -> dict[str, Any]:
    """wrk sending pings on 32 keep-alive connections: requests/s, requests, and those not answered 2xx."""
    env = {**os.environ, "MCP_BODY": PING.decode(), "MCP_SESSION": session}
    command = ["wrk", "-t1", "-c32", f"-d{seconds:g}s", "-s", str(LUA), url + "/mcp"]
    if cpus is not None and shutil.which("taskset"):
        command = ["taskset", "-c", cpus, *command]
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
            "requests": int(re.search(r"(\d+) requests in", output).group(1)),  # type: ignore[union-attr]
            "non_2xx": int(bad.group(1)) if bad else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--instructions", action="store_true", help="also count instructions under callgrind")
    args = parser.parse_args()
    results: dict[str, Any] = {"seconds": args.seconds, "accuracy": accuracy(args.seconds),
                               "cost": cost(args.seconds, args.repeat)}
    if args.instructions:
        counted = {name: instructions.run(args.seconds, 16, extra_config=extra) for name, extra in COST.items()}
        results["instructions"] = {name: {"per_call": run["instructions_per_call"],
                                          "net_per_call": run["net_instructions_per_call"]}
                                   for name, run in counted.items()}
    path = save("rate_limits", results)
    for row in results["accuracy"]:
        print(f"{row['rate']}/s burst {row['burst']}: admitted {row['admitted']} of {row['bound']} "
              f"({row['admitted_vs_bound']:.1%}) in {row['seconds']} s, refused {row['refused']} "
              f"({row['client_rps']} req/s sent), asks {row['asks']} ({row['asks_per_admitted']} per admitted), "
              f"supervisor {row['supervisor_cpu_pct']}% of a core")
    for name, row in results["cost"].items():
        print(f"cost {name}: {row['rps']:.0f} req/s, {row['cpu_us_per_request']:.1f} us per request, "
              f"{row['cpu_us_per_admitted']:.1f} us per admitted request")
    for name, count in results.get("instructions", {}).items():
        print(f"instructions per proxied call, {name}: {count['per_call']:,} ({count['net_per_call']:,} without "
              "what the worker runs at rest)")
    print(path)


if __name__ == "__main__":
    main()
