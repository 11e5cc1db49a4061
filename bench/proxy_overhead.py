"""tools/call through the gateway vs directly to the same backend, measured side by side in one run.

For an HTTP backend (bench.fast_backend) and a stdio backend (the built-in demo server, as a shared child
in the stdio host and as a `per_worker` child of each worker): requests per second, latency p50/p99 at
concurrency 1 and 32, and the gateway's CPU per request (supervisor, workers and stdio host, from /proc;
the stdio children are backend cost and left out), with 1 and 2 workers. Load comes from wrk (apt package
`wrk`), which costs little CPU of its own. The stdio backend has no direct HTTP path; its rows compare
with the HTTP backend through the same gateway.

    python -m bench.proxy_overhead [--seconds 10] [--workers 1 2] [--repeat 3]

Each figure is the median of ``--repeat`` runs (this box is a VM whose speed varies with its host).

On the 2-core box the single-worker gateway is pinned to core 0 and the backend and wrk to core 1, so the
gateway's figures are not diluted by the load generator.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from pathlib import Path
from typing import Any

from .stats import RESULTS, cpu_seconds, save

HERE = Path(__file__).resolve().parent
LUA = HERE / "wrk_post.lua"
# backend kind -> the tool called: an HTTP backend, a shared stdio child, a per_worker stdio child
LABELS = (("http", "h_echo"), ("stdio", "s_echo"), ("stdio_pw", "p_echo"))
CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "", "arguments": {"text": "hello"}}}


def _spawn(command: list[str], cpus: str | None, **kwargs: Any) -> subprocess.Popen[str]:
    if cpus is not None and shutil.which("taskset"):
        command = ["taskset", "-c", cpus, *command]
    return subprocess.Popen(command, text=True, start_new_session=True, **kwargs)


def _drain(process: subprocess.Popen[str]) -> deque[str]:
    """Keep reading the process's output (a full pipe would block its logging) and keep the last lines."""
    assert process.stdout is not None
    tail: deque[str] = deque(maxlen=200)
    threading.Thread(target=lambda: tail.extend(process.stdout or ()), daemon=True).start()
    return tail


def _wait_line(process: subprocess.Popen[str], pattern: str, timeout: float = 60) -> re.Match[str]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    regex = re.compile(pattern)
    for line in process.stdout:
        found = regex.search(line)
        if found:
            return found
        if time.monotonic() > deadline:
            break
    raise RuntimeError(f"process did not print {pattern!r}")


def _post(url: str, message: dict[str, Any], session: str | None = None) -> tuple[dict[str, Any], str | None]:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if os.environ.get("MCP_AUTH"):  # bench.auth_overhead: the credential every request carries
        headers["Authorization"] = os.environ["MCP_AUTH"]
    if session:
        headers["Mcp-Session-Id"] = session
    request = urllib.request.Request(url, json.dumps(message).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
        return (json.loads(body) if body else {}), response.headers.get("Mcp-Session-Id")


def _session(url: str) -> str | None:
    _, session = _post(url, {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "bench", "version": "1"}}})
    _post(url, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
    return session


def _check_call(url: str, session: str | None, tool: str) -> None:
    body, _ = _post(url, {**CALL, "params": {**CALL["params"], "name": tool}}, session)
    if "result" not in body:
        raise RuntimeError(f"{tool} via {url} failed: {body}")


def _median_run(measure: Any, repeat: int) -> dict[str, Any]:
    """Run ``measure()`` ``repeat`` times; each numeric field is the median over the runs."""
    runs = [measure() for _ in range(repeat)]
    merged: dict[str, Any] = {}
    for key, value in runs[0].items():
        if isinstance(value, int | float):
            merged[key] = statistics.median(r[key] for r in runs)
        else:
            merged[key] = value
    merged["runs"] = repeat
    return merged


def _wrk(url: str, session: str | None, tool: str, connections: int, seconds: float,
         cpus: str | None) -> dict[str, float]:
    env = {**os.environ, "MCP_BODY": json.dumps({**CALL, "params": {**CALL["params"], "name": tool}}),
           "MCP_SESSION": session or ""}
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(LUA), url]
    if cpus is not None and shutil.which("taskset"):
        command = ["taskset", "-c", cpus, *command]
    output = subprocess.run(command, capture_output=True, text=True, env=env, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    errors = re.search(r"Socket errors: .*", output)
    return {"rps": rate, "requests": total, "p50_ms": _latency(output, "50%"), "p99_ms": _latency(output, "99%"),
            "non_2xx": int(bad.group(1)) if bad else 0, "socket_errors": errors.group(0) if errors else ""}


def _latency(output: str, label: str) -> float:
    found = re.search(rf"{re.escape(label)}\s+([\d.]+)(us|ms|s)", output)
    if found is None:
        return float("nan")
    value, unit = float(found.group(1)), found.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _gateway_cpu(root: int) -> float:
    """CPU seconds of the supervisor and everything under it except the stdio children it runs."""
    total = 0.0
    for pid in _tree(root):
        try:
            name = Path(f"/proc/{pid}/comm").read_text().strip()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"only1mcp.demo_server" in cmdline and "python" in name:
            continue  # the stdio backend itself is not gateway cost
        total += cpu_seconds(pid)
    return total


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def run(seconds: float, worker_counts: list[int], repeat: int) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install wrk")
    two_cores = (os.cpu_count() or 1) >= 2
    backend_cpus = "1" if two_cores else None
    backend = _spawn([sys.executable, "-m", "bench.fast_backend", "--port", "0"], backend_cpus,
                     stdout=subprocess.PIPE, cwd=HERE.parent)
    results: dict[str, Any] = {"seconds": seconds, "scenarios": []}
    try:
        backend_url = _wait_line(backend, r"listening on (\S+)").group(1)
        direct_session = _session(backend_url)
        _check_call(backend_url, direct_session, "echo")
        def measure_direct(connections: int) -> dict[str, Any]:
            # The backend is itself a small aiohttp server: its CPU per request is the floor any aiohttp
            # front door pays on this box, measured in the same run as the gateway.
            before = cpu_seconds(backend.pid)
            measured = _wrk(backend_url, direct_session, "echo", connections, seconds, backend_cpus)
            used = cpu_seconds(backend.pid) - before
            measured["backend_cpu_us_per_call"] = round(used / max(1, measured["requests"]) * 1e6, 1)
            return measured

        direct = {c: _median_run(lambda c=c: measure_direct(c), repeat) for c in (1, 32)}
        results["direct_http"] = direct
        results["repeat"] = repeat
        for workers in worker_counts:
            results["scenarios"].append(_gateway_run(backend_url, workers, seconds, direct, two_cores, repeat))
    finally:
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
    return results


def _gateway_run(backend_url: str, workers: int, seconds: float, direct: dict[int, dict[str, float]],
                 two_cores: bool, repeat: int) -> dict[str, Any]:
    config = Path(tempfile.mkdtemp(prefix="only1mcp-bench-")) / "bench.yaml"
    config.write_text(
        f"server: {{port: 0, workers: {workers}, standby_workers: 0, log_level: warning}}\n"
        f"backends:\n  - name: h\n    url: {backend_url}\n"
        f"  - name: s\n    command: {sys.executable}\n    args: [-m, only1mcp.demo_server]\n"
        f"  - name: p\n    command: {sys.executable}\n    args: [-m, only1mcp.demo_server]\n    per_worker: true\n"
    )
    gateway_cpus = "0" if two_cores and workers == 1 else None
    load_cpus = "1" if two_cores and workers == 1 else None
    gateway = _spawn([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config),
                      "--log-level", "info"], gateway_cpus, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    gateway.stdout = gateway.stderr  # read the log for the ready line
    log: deque[str] = deque()
    try:
        url = _wait_line(gateway, r"ready url=(\S+)").group(1) + "/mcp"
        log = _drain(gateway)
        session = _session(url)
        rows: dict[str, Any] = {"workers": workers}
        for label, tool in LABELS:
            _check_call(url, session, tool)
            _wrk(url, session, tool, 32, min(2.0, seconds), load_cpus)  # warm up pools and caches
            for connections in (1, 32):
                def measure(tool: str = tool, connections: int = connections) -> dict[str, Any]:
                    before, supervisor_before = _gateway_cpu(gateway.pid), cpu_seconds(gateway.pid)
                    measured = _wrk(url, session, tool, connections, seconds, load_cpus)
                    used = _gateway_cpu(gateway.pid) - before
                    calls = max(1, measured["requests"])
                    measured["gateway_cpu_us_per_call"] = round(used / calls * 1e6, 1)
                    # the supervisor's part of it (breakers fed by every call's outcome, bus)
                    measured["supervisor_cpu_us_per_call"] = round(
                        (cpu_seconds(gateway.pid) - supervisor_before) / calls * 1e6, 1)
                    return measured

                measured = _median_run(measure, repeat)
                if label == "http":
                    base = direct[connections]
                    measured["ratio_vs_direct"] = round(measured["rps"] / base["rps"], 3)
                    measured["added_p50_ms"] = round(measured["p50_ms"] - base["p50_ms"], 3)
                    measured["added_p99_ms"] = round(measured["p99_ms"] - base["p99_ms"], 3)
                rows[f"{label}_c{connections}"] = measured
        return rows
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        try:
            gateway.wait(30)
        except subprocess.TimeoutExpired:
            print("gateway did not stop within 30 s of SIGTERM; its last log lines:", *log, sep="\n", file=sys.stderr)
            raise
        finally:
            shutil.rmtree(config.parent, ignore_errors=True)


def _print(results: dict[str, Any]) -> None:
    direct = results["direct_http"]
    print(f"direct HTTP backend: c1 {direct[1]['rps']:.0f} req/s p50 {direct[1]['p50_ms']:.3f} ms; "
          f"c32 {direct[32]['rps']:.0f} req/s p50 {direct[32]['p50_ms']:.3f} ms p99 {direct[32]['p99_ms']:.3f} ms, "
          f"backend CPU {direct[32]['backend_cpu_us_per_call']:.0f} us/call")
    for row in results["scenarios"]:
        for label, _tool in LABELS:
            for connections in (1, 32):
                m = row[f"{label}_c{connections}"]
                extra = (f" ratio {m['ratio_vs_direct']:.2f} added p50 {m['added_p50_ms']:.3f} ms "
                         f"p99 {m['added_p99_ms']:.3f} ms" if label == "http" else "")
                print(f"{row['workers']} worker(s) {label:8} c{connections:<2}: {m['rps']:.0f} req/s "
                      f"p50 {m['p50_ms']:.3f} ms p99 {m['p99_ms']:.3f} ms, gateway CPU "
                      f"{m['gateway_cpu_us_per_call']:.0f} us/call (supervisor {m['supervisor_cpu_us_per_call']:.1f})"
                      f"{extra}"
                      f"{'  NON-2XX ' + str(m['non_2xx']) if m['non_2xx'] else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = run(args.seconds, args.workers, args.repeat)
    path = save("proxy_overhead", results)
    _print(results)
    print(f"({path}; {RESULTS})")


if __name__ == "__main__":
    main()
