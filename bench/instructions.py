"""Instructions a worker executes per proxied tools/call, counted by callgrind: repeatable on a noisy VM.

This box's speed varies with its host by up to 3x between days and by 20% within minutes, so a change
worth a few percent of CPU cannot be judged from seconds. Callgrind counts the instructions the worker
runs in user space (the kernel's share is not counted), and the count is the same from run to run for
the same code and requests. Compare two checkouts by running this in each.

    python -m bench.instructions [--seconds 15] [--connections 16] [--audit]

The gateway runs with 1 worker in front of bench.fast_backend, everything under ``valgrind
--tool=callgrind --trace-children=yes`` with instrumentation off; after a warm-up, instrumentation is
switched on in the worker for a wrk run and the counters are dumped (callgrind_control). Needs valgrind
and wrk (Debian packages). ``--audit`` runs the gateway with the audit trail on (a file): the instructions
it adds in user space (the write of each line is kernel time, which bench.audit_cost counts).
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


def _worker(root: int) -> int:
    """The pid of the gateway's one worker (a spawn child that is not the resource tracker)."""
    for pid in _tree(root):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline and b"resource_tracker" not in cmdline:
            return pid
    raise RuntimeError("the gateway has no worker process")


def _dump(scratch: Path, worker: int, timeout: float = 60.0) -> Path:
    """The worker's callgrind dump, once callgrind has written it (it does so asynchronously)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in scratch.glob(f"callgrind.{worker}.*"):
            if path.stat().st_size:
                return path
        time.sleep(0.1)  # polling a file callgrind writes; no event to wait on
    raise RuntimeError(f"callgrind wrote no dump for the worker within {timeout:.0f}s")


def run(seconds: float, connections: int, audit: bool = False) -> dict[str, Any]:
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
        trail = scratch / "log" / "audit.log"  # not in the config's directory, which the supervisor watches
        trail.parent.mkdir()
        config.write_text("server: {port: 0, workers: 1, standby_workers: 0, log_level: warning}\n"
                          f"audit: {{enabled: {str(audit).lower()}, path: {trail}}}\n"
                          f"backends:\n  - name: h\n    url: {backend_url}\n")
        gateway = _spawn(["valgrind", "--tool=callgrind", "--trace-children=yes", "--instr-atstart=no",
                          f"--callgrind-out-file={scratch}/callgrind.%p", sys.executable, "-m",
                          "only1mcp.supervisor.main", "--config", str(config), "--log-level", "info"], "0",
                         stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, cwd=HERE.parent)
        gateway.stdout = gateway.stderr
        url = _wait_line(gateway, r"ready url=(\S+)", timeout=600).group(1) + "/mcp"
        _drain(gateway)
        session = _session(url)
        _check_call(url, session, "h_echo")
        _wrk(url, session, "h_echo", connections, min(10.0, seconds), "1")  # warm pools, caches, imports
        worker = _worker(gateway.pid)
        subprocess.run(["callgrind_control", "--instr=on", str(worker)], check=True, capture_output=True)
        measured = _wrk(url, session, "h_echo", connections, seconds, "1")
        subprocess.run(["callgrind_control", "--dump", str(worker)], check=True, capture_output=True)
        dump = _dump(scratch, worker).read_text(errors="replace")
        total = int(re.search(r"^(?:summary|totals): (\d+)", dump, re.M).group(1))  # type: ignore[union-attr]
        calls = measured["requests"]
        return {"connections": connections, "seconds": seconds, "audit": audit, "calls": calls,
                "non_2xx": measured["non_2xx"],
                "instructions": total, "instructions_per_call": round(total / max(1, calls))}
    finally:
        if gateway is not None:
            os.killpg(gateway.pid, signal.SIGKILL)  # under valgrind a drain would take minutes; nothing to keep
        os.killpg(backend.pid, signal.SIGTERM)
        backend.wait(10)
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--audit", action="store_true", help="with the audit trail on (a file)")
    args = parser.parse_args()
    results = run(args.seconds, args.connections, args.audit)
    path = save("instructions_audit" if args.audit else "instructions", results)
    print(f"{results['instructions_per_call']:,} instructions per proxied tools/call in the worker "
          f"({results['calls']:,} calls at c{results['connections']}, user space only; {path})")


if __name__ == "__main__":
    main()
