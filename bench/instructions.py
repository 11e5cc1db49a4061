"""Instructions a worker executes per proxied tools/call, counted by callgrind: repeatable on a noisy VM.

This box's speed varies with its host by up to 3x between days and by 20% within minutes, so a change
worth a few percent of CPU cannot be judged from seconds. Callgrind counts the instructions the worker
runs in user space (the kernel's share is not counted), and the count is the same from run to run for
the same code and requests. Compare two checkouts by running this in each.

    python -m bench.instructions [--seconds 15] [--connections 16] [--backend http|stdio] [--audit] [--idle 5]

The gateway runs with 1 worker in front of bench.fast_backend (``--backend stdio``: in front of the demo
server as a shared stdio child, whose calls pass through the stdio host; that process is counted too),
everything under ``valgrind
--tool=callgrind --trace-children=yes`` with instrumentation off; after a warm-up, instrumentation is
switched on in the worker for a wrk run and the counters are dumped (callgrind_control). Needs valgrind
and wrk (Debian packages). ``--audit`` runs the gateway with the audit trail on (a file, in a directory of
its own): the instructions it adds in user space (the write of each line is kernel time, which
bench.audit_cost counts).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .proxy_overhead import HERE, _check_call, _drain, _session, _spawn, _tree, _wait_line, _wrk
from .stats import save


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _processes(root: int) -> dict[str, int]:
    """The pids of the gateway's one worker and, when it runs one, its stdio host (the spawn child that
    has the demo server as its child); both are spawn children that are not the resource tracker."""
    found: dict[str, int] = {}
    for pid in _tree(root):
        cmdline = _cmdline(pid)
        if b"spawn_main" not in cmdline or b"resource_tracker" in cmdline:
            continue
        hosts_demo = any(b"only1mcp.demo_server" in _cmdline(child) for child in _tree(pid)[1:])
        found["stdio_host" if hosts_demo else "worker"] = pid
    if "worker" not in found:
        raise RuntimeError("the gateway has no worker process")
    return found


def _dump(scratch: Path, pid: int, number: int, timeout: float = 60.0) -> Path:
    """A process's ``number``th callgrind dump, once callgrind has written it (it does so asynchronously)."""
    path = scratch / f"callgrind.{pid}.{number}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.stat().st_size and "totals:" in path.read_text(errors="replace"):
            return path
        time.sleep(0.1)  # polling a file callgrind writes; no event to wait on
    raise RuntimeError(f"callgrind wrote no dump {number} for process {pid} within {timeout:.0f}s")


def _count(scratch: Path, pid: int, number: int) -> int:
    """Instructions in a process's ``number``th dump: those since the dump before (a dump resets them)."""
    dump = _dump(scratch, pid, number).read_text(errors="replace")
    return int(re.search(r"^(?:summary|totals): (\d+)", dump, re.M).group(1))  # type: ignore[union-attr]


def _counted(processes: dict[str, int], scratch: Path, number: int) -> dict[str, int]:
    """Dump every process's counters (their ``number``th dump) and read them."""
    for pid in processes.values():
        subprocess.run(["callgrind_control", "--dump", str(pid)], check=True, capture_output=True)
    return {name: _count(scratch, pid, number) for name, pid in processes.items()}


def _config(backend: str, backend_url: str) -> tuple[str, str]:
    """(config text, tool to call) for the measured backend."""
    head = "server: {port: 0, workers: 1, standby_workers: 0, log_level: warning}\nbackends:\n"
    if backend == "stdio":
        return head + f"  - name: s\n    command: {sys.executable}\n    args: [-m, only1mcp.demo_server]\n", "s_echo"
    return head + f"  - name: h\n    url: {backend_url}\n", "h_echo"


def run(seconds: float, connections: int, backend_kind: str = "http", extra_config: str = "",
        idle: float = 5.0) -> dict[str, Any]:
    """``extra_config``: more top-level YAML sections (bench.auth_overhead adds auth and rbac); ``idle``: the
    seconds each process is counted at rest first."""
    for tool in ("valgrind", "callgrind_control", "wrk"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is needed: apt-get install valgrind wrk")
    backend = _spawn([sys.executable, "-m", "bench.fast_backend", "--port", "0"], "1", stdout=subprocess.PIPE,
                     cwd=HERE.parent)
    scratch = Path(tempfile.mkdtemp(prefix="only1mcp-instructions-"))
    gateway = None
    try:
        backend_url = _wait_line(backend, r"listening on (\S+)").group(1)
        config = scratch / "bench.yaml"
        text, tool = _config(backend_kind, backend_url)
        config.write_text(text + extra_config)
        gateway = _spawn(["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
                          f"--callgrind-out-file={scratch}/callgrind.%p", sys.executable, "-m",
                          "only1mcp.supervisor.main", "--config", str(config), "--log-level", "info"], "0",
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=HERE.parent)
        gateway.stdout = gateway.stderr
        url = _wait_line(gateway, r"ready url=(\S+)", timeout=600).group(1) + "/mcp"
        _drain(gateway)
        session = _session(url)
        _check_call(url, session, tool)
        _wrk(url, session, tool, connections, min(10.0, seconds), "1")  # warm pools, caches, imports
        processes = _processes(gateway.pid)
        for pid in processes.values():
            subprocess.run(["callgrind_control", "--instr=on", str(pid)], check=True, capture_output=True)
        started = time.monotonic()
        time.sleep(idle)  # the background's rate: nothing to wait for, a window to count
        background = _counted(processes, scratch, 1)
        rates = {name: count / (time.monotonic() - started) for name, count in background.items()}
        started = time.monotonic()
        measured = _wrk(url, session, tool, connections, seconds, "1")
        counts = _counted(processes, scratch, 2)
        elapsed = time.monotonic() - started
        return _result(backend_kind, connections, seconds, measured, counts, rates, elapsed)
    finally:
        if gateway is not None:
            os.killpg(gateway.pid, signal.SIGKILL)  # under valgrind a drain would take minutes; nothing to keep
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def _result(backend: str, connections: int, seconds: float, measured: dict[str, Any], counts: dict[str, int],
            rates: dict[str, float], elapsed: float) -> dict[str, Any]:
    calls = max(1, measured["requests"])
    result: dict[str, Any] = {"backend": backend, "connections": connections, "seconds": seconds,
                              "calls": measured["requests"], "non_2xx": measured["non_2xx"],
                              "instructions": counts["worker"]}
    for name, count in counts.items():
        prefix = "" if name == "worker" else f"{name}_"
        result[f"{prefix}instructions_per_call"] = round(count / calls)
        result[f"{prefix}background_instructions_per_second"] = round(rates[name])
        result[f"{prefix}net_instructions_per_call"] = round((count - rates[name] * elapsed) / calls)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--backend", choices=("http", "stdio"), default="http")
    parser.add_argument("--audit", action="store_true", help="with the audit trail on (a file)")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds the background's rate is counted over")
    args = parser.parse_args()
    # Not in the config's directory: the supervisor watches that one and would wake for every line.
    trail = Path(tempfile.mkdtemp(prefix="only1mcp-trail-")) if args.audit else None
    try:
        results = run(args.seconds, args.connections, args.backend,
                      f"audit: {{enabled: true, path: {trail / 'audit.log'}}}\n" if trail is not None else "",
                      idle=args.idle)
    finally:
        if trail is not None:
            shutil.rmtree(trail, ignore_errors=True)
    results["audit"] = args.audit
    name = "instructions" if args.backend == "http" else f"instructions_{args.backend}"
    path = save(name + ("_audit" if args.audit else ""), results)
    host = results.get("stdio_host_instructions_per_call")
    print(f"{results['instructions_per_call']:,} instructions per proxied tools/call in the worker"
          + (f", {host:,} in the stdio host" if host is not None else "")
          + f" ({results['calls']:,} calls at c{results['connections']}, user space only; {path})")
    net_host = results.get("stdio_host_net_instructions_per_call")
    print(f"without the background: {results['net_instructions_per_call']:,} in the worker"
          + (f", {net_host:,} in the stdio host" if net_host is not None else "")
          + f" ({results['background_instructions_per_second']:,} instructions/s at rest in the worker"
          + (f", {results['stdio_host_background_instructions_per_second']:,} in the stdio host)"
             if net_host is not None else ")"))

if __name__ == "__main__":
    main()
