"""What a stdio backend that keeps exiting costs once it is failed (it waits for ``failed_retry`` instead of
being restarted in a loop): CPU share of the processes that would spin, over an idle window.

* shared: the child runs in the stdio host; the supervisor and the stdio host are measured.
* per_worker: each worker runs its own child; the worker is measured.

Each starts a real gateway (1 worker) whose backend is ``sh -c 'exit 3'``, waits until the backend is
reported failed, then reads utime+stime from /proc over ``--seconds``.

    python -m bench.failed_backend [--seconds 10]
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

from .stats import cpu_seconds, save

HERE = Path(__file__).resolve().parent
BROKEN = ("  - name: broken\n    command: sh\n    args: ['-c', 'exit 3']\n    failure_window: 60\n"
          "    failed_retry: 300\n")
FINE = f"  - name: fine\n    command: {sys.executable}\n    args: ['-m', 'only1mcp.demo_server']\n"
SCENARIOS = {
    # name -> (backends, log line that says the backend failed)
    "shared": (BROKEN + "    max_failures: 4\n" + FINE, r"backend 'broken' failed: 4 exits"),
    "per_worker": (BROKEN + "    max_failures: 3\n    per_worker: true\n", r"backend 'broken' failed in this worker"),
}


class _Gateway:
    def __init__(self, backends: str) -> None:
        folder = Path(tempfile.mkdtemp(prefix="only1mcp-failed-"))
        config = folder / "c.yaml"
        config.write_text("server: {port: 0, workers: 1}\nbackends:\n" + backends)
        self.process = subprocess.Popen([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config)],
                                        text=True, errors="replace", start_new_session=True, cwd=HERE.parent,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.wait_line(r"ready url=http://([\d.]+):(\d+)")
        self.host, self.port = ready.group(1), int(ready.group(2))

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def wait_line(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                found = regex.search(line)
                if found:
                    return found
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"no log line {pattern!r}:\n{''.join(self.lines[-30:])}")

    def status(self) -> dict[str, Any]:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=10)
        try:
            connection.request("GET", "/api/v1/admin/status")
            return json.loads(connection.getresponse().read())
        finally:
            connection.close()

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            raise RuntimeError(f"the gateway did not stop on SIGTERM:\n{''.join(self.lines[-30:])}") from None


def _parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def measure(scenario: str, seconds: float) -> dict[str, Any]:
    backends, failed = SCENARIOS[scenario]
    gateway = _Gateway(backends)
    try:
        gateway.wait_line(failed)
        status = gateway.status()
        processes = {"supervisor": gateway.process.pid}
        if scenario == "shared":
            (fine,) = [s["pid"] for s in status["stdio"] if s["backend"] == "fine"]
            processes["stdio host"] = _parent(fine)
        else:
            (processes["worker"],) = [w["pid"] for w in status["workers"] if w["pid"]]
        before = {name: cpu_seconds(pid) for name, pid in processes.items()}
        mark, started = len(gateway.lines), time.monotonic()
        time.sleep(seconds)  # the window being measured
        window = time.monotonic() - started
        shares = {name: round((cpu_seconds(pid) - before[name]) / window * 100, 3) for name, pid in processes.items()}
        restarts = [line for line in gateway.lines[mark:] if "'broken'" in line and "restarting in" in line]
    finally:
        gateway.stop()
    return {"window_s": round(window, 1), "cpu_pct_of_one_core": shares, "restarts_in_window": len(restarts)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args()
    result = {name: measure(name, args.seconds) for name in SCENARIOS}
    path = save("failed_backend", result)
    for name, figures in result.items():
        shares = ", ".join(f"{who} {pct}%" for who, pct in figures["cpu_pct_of_one_core"].items())
        print(f"{name} stdio backend failed, over {figures['window_s']}s: {shares} of one core")
    print(f"({path})")


if __name__ == "__main__":
    main()
