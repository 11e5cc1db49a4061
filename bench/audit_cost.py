"""What the audit trail costs a proxied tools/call: the same gateway with the trail off, on (a file), and on
with arguments, alternating within one run.

    python -m bench.audit_cost [--seconds 5] [--repeat 3]

One gateway (1 worker, pinned to core 0) in front of bench.fast_backend (core 1, with wrk). Between rounds
the config file is rewritten and the gateway gets SIGHUP, so every mode runs in the same warm processes;
each round is one wrk run at 16 connections (CPU per call, requests per second) and one at 1 connection
(p50). CPU per call is the worker's utime+stime from /proc over the run, divided by the calls: it counts
the write system call of each line, which callgrind (bench.instructions) does not see. Modes are measured
in turn, ``--repeat`` rounds each; figures are medians. The trail is written to a file in a temporary
directory on the box's disk (ext4 here), one line per call.

On a box shared with other work the end-to-end figures move by more than the trail costs, so the same run
also times the trail alone: ``AuditTrail.record`` for 100,000 calls in an event loop (as a worker calls
it), CPU time per line, system calls included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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

from only1mcp.audit.outcome import Outcome
from only1mcp.audit.trail import AuditTrail
from only1mcp.config.audit import AuditSettings
from only1mcp.sessions import SessionInfo

from .instructions import _worker
from .proxy_overhead import HERE, _check_call, _drain, _session, _spawn, _wait_line, _wrk
from .stats import cpu_seconds, save

MODES = {"off": "enabled: false", "file": "enabled: true, path: {path}",
         "file+arguments": "enabled: true, path: {path}, include_arguments: true"}


def _config(backend_url: str, audit: str) -> str:
    return ("server: {port: 0, workers: 1, standby_workers: 0, log_level: warning}\n"
            f"audit: {{{audit}}}\nbackends:\n  - name: h\n    url: {backend_url}\n")


def _switch(gateway: subprocess.Popen[str], base: str, config: Path, text: str, version: int) -> None:
    """Rewrite the config and reload it (SIGHUP); wait until the worker holds ``version``."""
    config.write_text(text)
    gateway.send_signal(signal.SIGHUP)  # the file watcher would reload too, after its debounce: unchanged then
    with urllib.request.urlopen(f"{base}/api/v1/admin/wait?config_version={version}&timeout=20",
                                timeout=30) as response:
        if response.status != 200:
            raise RuntimeError(f"config version {version} did not reach the worker")


def _measure(url: str, session: str | None, worker: int, seconds: float) -> dict[str, float]:
    before = cpu_seconds(worker)
    loaded = _wrk(url, session, "h_echo", 16, seconds, "1")
    used = cpu_seconds(worker) - before
    single = _wrk(url, session, "h_echo", 1, max(1.0, seconds / 2), "1")
    return {"cpu_us_per_call": used / max(1, loaded["requests"]) * 1e6, "rps_c16": loaded["rps"],
            "p50_ms_c1": single["p50_ms"], "non_2xx": loaded["non_2xx"] + single["non_2xx"]}


def _record_cost(directory: Path, arguments: bool, lines: int = 100_000) -> float:
    """CPU microseconds per ``record`` call, as a worker makes it (inside an event loop)."""

    async def measure() -> float:
        trail = AuditTrail(directory)
        trail.configure(AuditSettings(enabled=True, path=directory / "record.log", include_arguments=arguments))
        session = SessionInfo(os.urandom(12).hex(), "2025-06-18")
        message = {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "h_echo", "arguments": {"text": "hello", "token": "t"}}}
        started = time.process_time()
        for _ in range(lines):
            trail.record(Outcome.OK, message, peer="127.0.0.1", session=session, backend="h",
                         started=time.perf_counter())
        used = time.process_time() - started
        trail.close()
        (directory / "record.log").unlink()
        return used / lines * 1e6

    return asyncio.run(measure())


def run(seconds: float, repeat: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    scratch = Path(tempfile.mkdtemp(prefix="only1mcp-audit-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    # Not in the config's directory: the supervisor watches that one, and would wake for every line.
    (scratch / "log").mkdir()
    trail = scratch / "log" / "audit.log"
    backend = _spawn([sys.executable, "-m", "bench.fast_backend", "--port", "0"], "1", stdout=subprocess.PIPE,
                     cwd=HERE.parent)
    gateway = None
    try:
        backend_url = _wait_line(backend, r"listening on (\S+)").group(1)
        config = scratch / "bench.yaml"
        config.write_text(_config(backend_url, MODES["off"]))
        gateway = _spawn([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config), "--log-level",
                          "info"], "0", stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=HERE.parent)
        gateway.stdout = gateway.stderr
        base = _wait_line(gateway, r"ready url=(\S+)").group(1)
        _drain(gateway)
        url = base + "/mcp"
        session = _session(url)
        _check_call(url, session, "h_echo")
        _wrk(url, session, "h_echo", 16, min(3.0, seconds), "1")  # warm pools, caches, imports
        worker = _worker(gateway.pid)
        rounds: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
        version, current = 1, "off"
        for round_number in range(repeat):
            order = list(MODES) if round_number % 2 == 0 else list(reversed(MODES))
            for mode in order:
                if mode != current:  # an unchanged config publishes no new version
                    version += 1
                    _switch(gateway, base, config, _config(backend_url, MODES[mode].format(path=trail)), version)
                    current = mode
                rounds[mode].append(_measure(url, session, worker, seconds))
        lines = sum(1 for _ in trail.open("rb")) if trail.exists() else 0
        result: dict[str, Any] = {"seconds": seconds, "repeat": repeat, "trail_lines": lines, "modes": {},
                                  "record_cpu_us": statistics.median(_record_cost(trail.parent, False)
                                                                     for _ in range(repeat)),
                                  "record_cpu_us_with_arguments": statistics.median(
                                      _record_cost(trail.parent, True) for _ in range(repeat))}
        for mode, measured in rounds.items():
            result["modes"][mode] = {key: round(statistics.median(m[key] for m in measured), 3)
                                     for key in measured[0]}
        off = result["modes"]["off"]["cpu_us_per_call"]
        for mode in MODES:
            result["modes"][mode]["added_cpu_us_per_call"] = round(result["modes"][mode]["cpu_us_per_call"] - off, 2)
        return result
    finally:
        if gateway is not None:
            os.killpg(gateway.pid, signal.SIGTERM)
            gateway.wait(30)
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = run(args.seconds, args.repeat)
    path = save("audit_cost", results)
    for mode, figures in results["modes"].items():
        print(f"audit {mode:15}: {figures['cpu_us_per_call']:.1f} us CPU per call in the worker "
              f"({figures['added_cpu_us_per_call']:+.1f}), {figures['rps_c16']:.0f} req/s at c16, "
              f"p50 {figures['p50_ms_c1']:.3f} ms at c1")
    print(f"AuditTrail.record alone: {results['record_cpu_us']:.2f} us CPU per line, "
          f"{results['record_cpu_us_with_arguments']:.2f} us with arguments")
    print(f"({results['trail_lines']:,} lines written; {path})")
    print(json.dumps(results["modes"]))


if __name__ == "__main__":
    main()
