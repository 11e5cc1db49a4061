"""Resilience timings with a real gateway (2 workers):

* failover: a backend dies (SIGKILL) -> every worker routes around it (answers "circuit open" at once
  instead of trying the dead backend). One keep-alive client per worker sends calls back to back; the
  figure is, per trial, the time from the kill until the last worker's first fail-fast answer.
* fail-fast answer: while the circuit is open, the round trip of a call that the gateway refuses without
  trying the backend, on each worker's keep-alive connection (client side, back to back).
* reload: a config save -> the change applied on every worker. Measured end to end (file saved -> every
  worker's tools/list shows the added backend's tool, or no longer the removed one; includes the 500 ms
  debounce) and the supervisor's own apply time (validation, diff, discovery of the added backend,
  publishing).

    python -m bench.failover [--trials 20]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .stats import percentile, save

HERE = Path(__file__).resolve().parent
ACCEPT = "application/json, text/event-stream"


_TAILS: dict[int, deque[str]] = {}  # pid -> the last lines of that process's output


def _start(command: list[str], pattern: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(command, text=True, errors="replace", start_new_session=True, cwd=HERE.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(pattern, line)
        if found:
            # Keep reading: a process whose log pipe fills up blocks on its next log line (the gateway logs
            # every failed call at info level).
            tail: deque[str] = deque(maxlen=100)
            _TAILS[process.pid] = tail
            threading.Thread(target=tail.extend, args=(process.stdout,), daemon=True).start()
            return process, found.group(1)
    raise RuntimeError(f"{command} did not print {pattern!r}")


def _backend(port: int) -> tuple[subprocess.Popen[str], str]:
    return _start([sys.executable, "-m", "bench.fast_backend", "--port", str(port)], r"listening on (\S+)")


def _stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM) -> None:
    os.killpg(process.pid, sig)
    process.wait(30)


def _post(connection: http.client.HTTPConnection, message: dict[str, Any], session: str | None) -> dict[str, Any]:
    headers = {"Content-Type": "application/json", "Accept": ACCEPT}
    if session:
        headers["Mcp-Session-Id"] = session
    connection.request("POST", "/mcp", json.dumps(message), headers)
    response = connection.getresponse()
    body = response.read()
    return json.loads(body) if body else {}


def _connections(host: str, port: int, workers: int) -> list[http.client.HTTPConnection]:
    """One keep-alive connection per worker (SO_REUSEPORT decides per connection, so try until covered)."""
    found: dict[int, http.client.HTTPConnection] = {}
    for _ in range(200):
        connection = http.client.HTTPConnection(host, port, timeout=10)
        connection.request("GET", "/health")
        pid = json.loads(connection.getresponse().read())["pid"]
        if pid in found:
            connection.close()
        else:
            found[pid] = connection
        if len(found) == workers:
            return list(found.values())
    raise RuntimeError("could not reach every worker")


CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "f_echo", "arguments": {"text": "x"}}}


FAIL_FAST_CALLS = 20  # per worker and trial, timed once the circuit is open everywhere


def failover(trials: int) -> dict[str, Any]:
    backend, url = _backend(0)
    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])  # it comes back here after each kill (SO_REUSEADDR)
    folder = Path(tempfile.mkdtemp(prefix="only1mcp-failover-"))
    config = folder / "c.yaml"
    config.write_text("server: {port: 0, workers: 2, log_level: warning}\nbackends:\n"
                      f"  - name: f\n    url: {url}\n    breaker: {{failures: 3, cooldown: 0.5, max_cooldown: 1}}\n"
                      "    health: {interval: 60}\n")
    gateway, gateway_url = _start([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config),
                                   "--log-level", "info"], r"ready url=(\S+)")
    host, gw_port = gateway_url.removeprefix("http://").split(":")
    results: list[float] = []
    fail_fast: list[float] = []
    try:
        connections = _connections(host, int(gw_port), 2)
        session = _initialize(connections[0])
        for _ in range(trials):
            _until(lambda: all("result" in _post(c, CALL, session) for c in connections), "the backend up")
            _stop(backend, signal.SIGKILL)
            killed = time.perf_counter()
            routed: dict[int, float] = {}
            while len(routed) < len(connections) and time.perf_counter() - killed < 30:
                for index, connection in enumerate(connections):
                    if index not in routed:
                        answer = _post(connection, CALL, session)
                        if "circuit open" in answer.get("error", {}).get("message", ""):
                            routed[index] = time.perf_counter() - killed
            results.append(max(routed.values()) * 1000)
            for connection in connections:
                for _ in range(FAIL_FAST_CALLS):
                    started = time.perf_counter()
                    answer = _post(connection, CALL, session)
                    took = time.perf_counter() - started
                    if "circuit open" in answer.get("error", {}).get("message", ""):  # not a half-open trial
                        fail_fast.append(took * 1000)
            backend, _ = _backend(port)
        for connection in connections:
            connection.close()
    finally:
        _stop(gateway)
        _stop(backend)
    return {"trials": trials, "p50_ms": round(percentile(results, 50), 2), "p99_ms": round(percentile(results, 99), 2),
            "max_ms": round(max(results), 2), "breaker": "failures 3 (calls back to back from each worker)",
            "fail_fast_calls": len(fail_fast), "fail_fast_p50_ms": round(percentile(fail_fast, 50), 3),
            "fail_fast_p99_ms": round(percentile(fail_fast, 99), 3)}


def reload(trials: int) -> dict[str, Any]:
    backend, url = _backend(0)
    folder = Path(tempfile.mkdtemp(prefix="only1mcp-reload-"))
    config = folder / "c.yaml"
    base = "server: {port: 0, workers: 2, log_level: warning}\nbackends:\n  - name: a\n    url: " + url + "\n"
    config.write_text(base)
    gateway, gateway_url = _start([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config),
                                   "--log-level", "info"], r"ready url=(\S+)")
    host, port = gateway_url.removeprefix("http://").split(":")
    end_to_end: list[float] = []
    applied: list[float] = []
    try:
        connections = _connections(host, int(port), 2)
        session = _initialize(connections[0])
        for trial in range(trials):
            adding = trial % 2 == 0
            text = base + (f"  - name: b\n    url: {url}\n" if adding else "")
            temporary = folder / "c.yaml.tmp"
            temporary.write_text(text)
            saved = time.perf_counter()
            temporary.replace(config)
            try:
                _until(lambda adding=adding: all(_has_tool(c, session, "b_echo") == adding for c in connections),
                       "the change on every worker", interval=0.002)
            except RuntimeError:
                print("".join(_TAILS.get(gateway.pid, ())), file=sys.stderr)
                raise
            end_to_end.append((time.perf_counter() - saved) * 1000)
            status = _status(connections[0])
            applied.append(float(status["config"]["reloads"]["last_apply_ms"] or 0))
    finally:
        _stop(gateway)
        _stop(backend)
    return {"trials": trials, "save_to_all_workers_p50_ms": round(percentile(end_to_end, 50), 1),
            "save_to_all_workers_p99_ms": round(percentile(end_to_end, 99), 1),
            "apply_p50_ms": round(percentile(applied, 50), 2), "apply_p99_ms": round(percentile(applied, 99), 2),
            "debounce_ms": 500}


def _has_tool(connection: http.client.HTTPConnection, session: str, name: str) -> bool:
    listed = _post(connection, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, session)
    return any(tool["name"] == name for tool in listed["result"]["tools"])


def _status(connection: http.client.HTTPConnection) -> dict[str, Any]:
    connection.request("GET", "/api/v1/admin/status")
    return json.loads(connection.getresponse().read())


def _initialize(connection: http.client.HTTPConnection) -> str:
    headers = {"Content-Type": "application/json", "Accept": ACCEPT}
    connection.request("POST", "/mcp", json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}}),
        headers)
    response = connection.getresponse()
    response.read()
    return response.headers["Mcp-Session-Id"]


def _until(predicate: Any, what: str, timeout: float = 30.0, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    result = {"failover": failover(args.trials), "reload": reload(args.trials)}
    path = save("failover", result)
    f, r = result["failover"], result["reload"]
    print(f"backend killed -> every worker routes around it: p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms "
          f"({f['trials']} trials)")
    print(f"circuit open -> a refused call's round trip: p50 {f['fail_fast_p50_ms']} ms, p99 "
          f"{f['fail_fast_p99_ms']} ms ({f['fail_fast_calls']} calls)")
    print(f"config saved -> change on every worker: p50 {r['save_to_all_workers_p50_ms']} ms, p99 "
          f"{r['save_to_all_workers_p99_ms']} ms (includes {r['debounce_ms']} ms debounce); supervisor apply "
          f"p50 {r['apply_p50_ms']} ms, p99 {r['apply_p99_ms']} ms  ({path})")


if __name__ == "__main__":
    main()
