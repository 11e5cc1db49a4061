"""A legitimate client's latency under a slowloris attack, with and without the attack, in one run.

    python -m bench.slowloris [--seconds 10] [--heads 5000] [--bodies 100] [--cap N]

The gateway runs with 1 worker and its default limits (header_timeout 20 s, body_timeout 60 s, 10,000
connections at most) in front of bench.fast_backend. A client in this process sends tools/call one at a
time for ``--seconds``, first on one keep-alive connection, then on a new connection per call, and the
same again while an attacker (a second process) holds ``--heads`` connections that sent half a request
head and ``--bodies`` that sent half of a 4 MiB body, each opened again as soon as the gateway closes it.
With ``--cap N`` the gateway's server.max_connections is N, so an attack larger than N runs into the
connection cap (the oldest attacking connection is closed for each new one). On the 2-core box the
gateway is pinned to core 0, everything else to core 1. The attack code is the slow-client tests'
(tests/support/slowloris.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .proxy_overhead import HERE, _drain, _session, _spawn, _wait_line
from .stats import percentile, save

CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "h_echo", "arguments": {"text": "hi"}}}


async def _exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> bool:
    writer.write(request)
    status = (await reader.readuntil(b"\r\n")).split()[1]
    length = 0
    while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    body = await reader.readexactly(length)
    return status == b"200" and b'"result"' in body


async def _client(url: str, session: str, seconds: float, fresh: bool) -> dict[str, Any]:
    """Calls one at a time for ``seconds``; latencies in ms, and how many were not answered."""
    parts = urlsplit(url)
    body = json.dumps(CALL).encode()
    request = (f"POST /mcp HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept: application/json, text/event-stream\r\n"
               f"Content-Type: application/json\r\nMcp-Session-Id: {session}\r\nContent-Length: {len(body)}\r\n"
               "\r\n").encode() + body
    latencies: list[float] = []
    failures = 0
    connection: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        try:
            if connection is None:
                connection = await asyncio.open_connection(parts.hostname, parts.port)
            answered = await asyncio.wait_for(_exchange(*connection, request), 30)
        except (OSError, asyncio.IncompleteReadError, TimeoutError):
            answered = False
        if answered:
            latencies.append((time.perf_counter() - started) * 1000)
        else:
            failures += 1
        if fresh or not answered:
            if connection is not None:
                connection[1].close()
            connection = None
    if connection is not None:
        connection[1].close()
    return {"calls": len(latencies), "failed": failures, "p50_ms": round(percentile(latencies, 50), 3),
            "p99_ms": round(percentile(latencies, 99), 3), "max_ms": round(max(latencies, default=0), 3)}


def _worker(root: int) -> int:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == root and b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
                return int(entry.name)
    raise RuntimeError("the gateway has no worker process")


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) // 1024
    return 0


async def _attack(url: str, heads: int, bodies: int) -> None:
    """Run as the attacker process: hold the connections until SIGTERM."""
    sys.path.insert(0, str(HERE.parent))
    from tests.support.slowloris import Slowloris  # noqa: PLC0415 - the tests' attack, from the repository

    attack = Slowloris(url, heads=heads, bodies=bodies, again=True)
    attack.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    while not stop.is_set():
        print(f"holding {attack.open()} reopened {attack.reopened}", flush=True)
        try:
            await asyncio.wait_for(stop.wait(), 1.0)
        except TimeoutError:
            continue
    await attack.stop()


def _wait_held(attacker: subprocess.Popen[str], held: int, reports: int = 120) -> None:
    """Until the attacker reports holding at least ``held`` connections (it reports once a second)."""
    assert attacker.stdout is not None
    for _ in range(reports):
        line = attacker.stdout.readline()
        found = re.search(r"holding (\d+)", line)
        if found and int(found.group(1)) >= held:
            return
    raise RuntimeError(f"the attacker never held {held} connections")


def run(seconds: float, heads: int, bodies: int, cap: int | None) -> dict[str, Any]:
    backend = _spawn([sys.executable, "-m", "bench.fast_backend", "--port", "0"], "1", stdout=subprocess.PIPE,
                     cwd=HERE.parent)
    scratch = Path(tempfile.mkdtemp(prefix="only1mcp-slowloris-"))
    gateway = attacker = None
    try:
        backend_url = _wait_line(backend, r"listening on (\S+)").group(1)
        config = scratch / "bench.yaml"
        limit = f", max_connections: {cap}" if cap else ""
        config.write_text(f"server: {{port: 0, workers: 1, standby_workers: 0{limit}}}\n"
                          f"backends:\n  - name: h\n    url: {backend_url}\n")
        gateway = _spawn([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config)], "0",
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=HERE.parent)
        url = _wait_line(gateway, r"ready url=(\S+)").group(1)
        log = _drain(gateway)
        worker = _worker(gateway.pid)
        session = _session(url + "/mcp") or ""
        asyncio.run(_client(url, session, 2, fresh=False))  # warm-up
        quiet = {mode: asyncio.run(_client(url, session, seconds, fresh=mode == "new"))
                 for mode in ("keepalive", "new")}
        rss_before = _status(worker, "VmRSS")
        attacker = _spawn([sys.executable, "-m", "bench.slowloris", "--attack", url, "--heads", str(heads),
                           "--bodies", str(bodies)], "1", stdout=subprocess.PIPE, cwd=HERE.parent)
        _wait_held(attacker, min(heads + bodies, cap or heads + bodies) * 9 // 10)  # at the cap, some are always
        # being replaced
        attacked = {mode: asyncio.run(_client(url, session, seconds, fresh=mode == "new"))
                    for mode in ("keepalive", "new")}
        rss_during = _status(worker, "VmRSS")
        os.killpg(attacker.pid, signal.SIGTERM)
        attacker.wait(30)
        attacker = None
        return {"seconds": seconds, "heads": heads, "bodies": bodies, "max_connections": cap, "without_attack": quiet,
                "under_attack": attacked, "worker_rss_mb": {"before": rss_before, "during": rss_during},
                "gateway_log_tail": [line.rstrip() for line in list(log)[-5:]]}
    finally:
        for process in (attacker, gateway, backend):
            if process is not None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--heads", type=int, default=5000)
    parser.add_argument("--bodies", type=int, default=100)
    parser.add_argument("--cap", type=int, default=None, help="the gateway's server.max_connections")
    parser.add_argument("--attack", metavar="URL", help=argparse.SUPPRESS)  # the attacker process
    args = parser.parse_args()
    if args.attack:
        asyncio.run(_attack(args.attack, args.heads, args.bodies))
        return
    results = run(args.seconds, args.heads, args.bodies, args.cap)
    path = save("slowloris" if args.cap is None else "slowloris_cap", results)
    print(f"{'client':<22}{'calls':>8}{'failed':>8}{'p50 ms':>10}{'p99 ms':>10}{'max ms':>10}")
    for phase in ("without_attack", "under_attack"):
        for mode, row in results[phase].items():
            print(f"{phase + ' ' + mode:<22}{row['calls']:>8}{row['failed']:>8}{row['p50_ms']:>10}{row['p99_ms']:>10}"
                  f"{row['max_ms']:>10}")
    print(f"worker RSS {results['worker_rss_mb']['before']} MB before, {results['worker_rss_mb']['during']} MB "
          f"under attack ({path})")


if __name__ == "__main__":
    main()
