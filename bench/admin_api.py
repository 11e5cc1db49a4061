"""The admin API's latency with a real gateway (4 workers, one shared stdio backend):

* reads: each read endpoint, requests one after another on new connections;
* actions: a drain (or undrain) from the POST until its answer (the answering worker holds the new state),
  and until every worker shows it (one keep-alive connection held by each worker, polled back to back).

    python -m bench.admin_api [--requests 100] [--trials 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .lifecycle import _start
from .stats import percentile, save

WORKERS = 4
READS = ("backends", "workers", "catalog", "config", "reloads")


def _request(connection: http.client.HTTPConnection, method: str, path: str) -> dict[str, Any]:
    connection.request(method, path)
    response = connection.getresponse()
    body = json.loads(response.read())
    assert response.status == 200, body
    return dict(body)


def _per_worker(host: str, port: int) -> list[http.client.HTTPConnection]:
    """One keep-alive connection held by each worker (the kernel picks the worker per connection)."""
    held: dict[int, http.client.HTTPConnection] = {}
    for _ in range(400):
        connection = http.client.HTTPConnection(host, port, timeout=5)
        pid = _request(connection, "GET", "/health")["pid"]
        if pid in held:
            connection.close()
        else:
            held[pid] = connection
        if len(held) == WORKERS:
            return list(held.values())
    raise RuntimeError(f"reached only {len(held)} of {WORKERS} workers")


def _reads(host: str, port: int, requests: int) -> dict[str, dict[str, float]]:
    out = {}
    for name in READS:
        times = []
        for _ in range(requests):
            connection = http.client.HTTPConnection(host, port, timeout=5)
            started = time.perf_counter()
            _request(connection, "GET", f"/api/v1/admin/{name}")
            times.append((time.perf_counter() - started) * 1000)
            connection.close()
        out[name] = {"p50_ms": round(percentile(times, 50), 2), "p99_ms": round(percentile(times, 99), 2)}
    return out


def _actions(host: str, port: int, trials: int) -> dict[str, dict[str, float]]:
    workers = _per_worker(host, port)
    answered, everywhere = [], []
    for trial in range(trials):
        drained = trial % 2 == 0
        connection = http.client.HTTPConnection(host, port, timeout=5)
        started = time.perf_counter()
        _request(connection, "POST", f"/api/v1/admin/backends/demo/{'drain' if drained else 'undrain'}")
        answered.append((time.perf_counter() - started) * 1000)
        connection.close()
        waiting = list(workers)
        while waiting:
            waiting = [w for w in waiting if _request(w, "GET", "/api/v1/admin/backends")["backends"][0]["drained"]
                       != drained]
        everywhere.append((time.perf_counter() - started) * 1000)
    return {name: {"p50_ms": round(percentile(values, 50), 2), "p99_ms": round(percentile(values, 99), 2)}
            for name, values in (("answered", answered), ("on_every_worker", everywhere))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "only1mcp.yaml"
        backend = json.dumps({"name": "demo", "transport": "stdio", "command": sys.executable,
                              "args": ["-m", "only1mcp.demo_server"]})
        config.write_text(f"server: {{port: 0, workers: {WORKERS}, log_level: warning}}\nbackends:\n  - {backend}\n")
        process, host, port = _start(config)
        try:
            result = {"workers": WORKERS, "reads": _reads(host, port, args.requests),
                      "drain": _actions(host, port, args.trials)}
        finally:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
    print(json.dumps(result, indent=2))
    print(f"saved {save('admin_api', result)}")


if __name__ == "__main__":
    main()
