"""Idle CPU of a real supervisor and its workers: start, wait until ready, then sample /proc over a window.

    python -m bench.supervisor_idle [--workers 4] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from .stats import cpu_seconds, save


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    process = subprocess.Popen(
        [sys.executable, "-m", "only1mcp.supervisor.main", "--port", "0", "--workers", str(args.workers)],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if re.search(r"ready url=", line):
            break
    os.set_blocking(process.stderr.fileno(), False)
    time.sleep(2.0)  # let boot-time work settle before the idle window
    workers = children(process.pid)
    before_sup = cpu_seconds(process.pid)
    before_workers = {pid: cpu_seconds(pid) for pid in workers}
    time.sleep(args.seconds)
    supervisor_pct = (cpu_seconds(process.pid) - before_sup) / args.seconds * 100
    worker_pct = [(cpu_seconds(pid) - before) / args.seconds * 100 for pid, before in before_workers.items()]
    process.send_signal(signal.SIGTERM)
    process.wait(60)
    result = {"workers": args.workers, "window_s": args.seconds,
              "supervisor_cpu_pct": round(supervisor_pct, 3),
              "worker_cpu_pct_mean": round(sum(worker_pct) / max(1, len(worker_pct)), 3)}
    path = save("supervisor_idle", result)
    print(f"idle over {args.seconds:.0f}s with {args.workers} workers: supervisor {result['supervisor_cpu_pct']}% "
          f"of one core, each worker {result['worker_cpu_pct_mean']}%  ({path})")


if __name__ == "__main__":
    main()
