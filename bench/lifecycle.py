"""Worker lifecycle timings with a real gateway (4 workers, the default standby):

* replacement: a worker is killed with SIGKILL -> a new worker serves in its slot. Per trial, the time
  from the kill until a request on a new connection is answered by the slot's new pid. Measured idle and
  with load (keep-alive clients sending requests back to back, in threads).
* SIGHUP: the config file changes and the supervisor gets SIGHUP -> every worker reports the new config
  version on /health (one keep-alive connection per worker, polled back to back). Per trial, the time from
  the signal until the last worker does.

    python -m bench.lifecycle [--trials 20]
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
from pathlib import Path
from typing import Any

from .stats import percentile, save

HERE = Path(__file__).resolve().parent
WORKERS = 4


def _start(config: Path) -> tuple[subprocess.Popen[str], str, int]:
    process = subprocess.Popen([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config),
                                "--log-level", "info"],  # the config says warning; "ready" is info
                               text=True, errors="replace", start_new_session=True, cwd=HERE.parent,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    for line in process.stdout:
        found = re.search(r"ready url=http://([\d.]+):(\d+)", line)
        if found:
            # Keep reading its log, or a full pipe would block the supervisor.
            threading.Thread(target=lambda: process.stdout and process.stdout.read(), daemon=True).start()
            return process, found.group(1), int(found.group(2))
    raise RuntimeError(f"the gateway exited with {process.wait()} before it was ready")


def _get(host: str, port: int, path: str) -> dict[str, Any] | None:
    """One request on a new connection; None when it reached a worker that is dying."""
    connection = http.client.HTTPConnection(host, port, timeout=5)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except OSError:
        return None
    finally:
        connection.close()


def _until(predicate: Any, what: str, timeout: float = 30.0, interval: float = 0.0005) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(interval)


def _load(host: str, port: int, stop: threading.Event) -> None:
    """Requests back to back on one keep-alive connection, reconnecting when its worker dies."""
    while not stop.is_set():
        connection = http.client.HTTPConnection(host, port, timeout=5)
        try:
            while not stop.is_set():
                connection.request("GET", "/health")
                connection.getresponse().read()
        except OSError:
            pass
        finally:
            connection.close()


def replacement(host: str, port: int, trials: int, clients: int) -> dict[str, Any]:
    stop = threading.Event()
    threads = [threading.Thread(target=_load, args=(host, port, stop), daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    took: list[float] = []
    try:
        for trial in range(trials):
            slot = trial % WORKERS
            status: dict[str, Any] = {}

            def all_ready(status: dict[str, Any] = status) -> bool:
                """Every slot served and a standby booted again, so each trial starts like the first."""
                status.update(_get(host, port, "/api/v1/admin/status") or {})
                return bool(status) and all(w["ready"] and w["pid"] for w in status["workers"]) and \
                    any(s["ready"] for s in status["standby"])

            _until(all_ready, "every worker and a standby ready", interval=0.05)
            victim = status["workers"][slot]["pid"]
            os.kill(victim, signal.SIGKILL)
            killed = time.perf_counter()

            def replaced(slot: int = slot, victim: int = victim) -> bool:
                body = _get(host, port, "/health")
                return body is not None and body["slot"] == slot and body["pid"] != victim

            _until(replaced, f"a new worker serving in slot {slot}")
            took.append((time.perf_counter() - killed) * 1000)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    return {"trials": trials, "load_clients": clients, "p50_ms": round(percentile(took, 50), 1),
            "p99_ms": round(percentile(took, 99), 1), "max_ms": round(max(took), 1)}


def _per_worker(host: str, port: int) -> list[http.client.HTTPConnection]:
    """One keep-alive connection held by each worker (SO_REUSEPORT decides per connection, so try until
    every worker holds one)."""
    found: dict[int, http.client.HTTPConnection] = {}
    for _ in range(500):
        connection = http.client.HTTPConnection(host, port, timeout=5)
        connection.request("GET", "/health")
        pid = json.loads(connection.getresponse().read())["pid"]
        if pid in found:
            connection.close()
        else:
            found[pid] = connection
        if len(found) == WORKERS:
            return list(found.values())
    raise RuntimeError("could not reach every worker")


def _version(connection: http.client.HTTPConnection) -> int:
    connection.request("GET", "/health")
    return int(json.loads(connection.getresponse().read())["config_version"])


def sighup(process: subprocess.Popen[str], config: Path, host: str, port: int, trials: int) -> dict[str, Any]:
    connections = _per_worker(host, port)
    took: list[float] = []
    for trial in range(trials):
        version = max(_version(c) for c in connections) + 1  # the file changes every time: a new version
        config.write_text(_config(trial))
        process.send_signal(signal.SIGHUP)
        sent = time.perf_counter()
        _until(lambda version=version: all(_version(c) >= version for c in connections),
               f"config version {version} on every worker")
        took.append((time.perf_counter() - sent) * 1000)
    for connection in connections:
        connection.close()
    return {"trials": trials, "p50_ms": round(percentile(took, 50), 1), "p99_ms": round(percentile(took, 99), 1),
            "max_ms": round(max(took), 1)}


def _config(n: int) -> str:
    # A change every worker applies (the allowed origins), no backend to discover.
    return (f"server: {{port: 0, workers: {WORKERS}, log_level: warning, "
            f"allowed_origins: ['https://app{n}.example']}}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="only1mcp-lifecycle-"))
    config = folder / "c.yaml"
    config.write_text(_config(-1))
    process, host, port = _start(config)
    try:
        result = {"workers": WORKERS,
                  "replacement_idle": replacement(host, port, args.trials, clients=0),
                  "replacement_loaded": replacement(host, port, args.trials, clients=4),
                  "sighup": sighup(process, config, host, port, args.trials)}
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
    path = save("lifecycle", result)
    for name in ("replacement_idle", "replacement_loaded"):
        r = result[name]
        print(f"worker killed -> new worker serving in its slot ({r['load_clients']} load clients): "
              f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms ({r['trials']} trials)")
    h = result["sighup"]
    print(f"SIGHUP -> new config version on all {WORKERS} workers: p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms "
          f"({h['trials']} trials)  ({path})")


if __name__ == "__main__":
    main()
