"""Configs of one gateway measured side by side in one run: CPU per proxied call, the configs taking turns.

Each round starts one gateway per config (1 worker pinned to core 0, in front of bench.fast_backend), warms
it up and loads it with wrk at c32 on one session; the order turns every round, so a drift of the VM's speed
falls on every config alike. The medians of the rounds are compared with the first config's (the baseline),
and with ``count_instructions`` each config is also counted under callgrind (bench/instructions.py), which
does not move with the VM. bench.auth_overhead and bench.metrics_cost are its two users.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import instructions
from .proxy_overhead import _check_call, _drain, _gateway_cpu, _session, _spawn, _wait_line, _wrk

__all__ = ["arguments", "compare", "cpu_run", "report"]


def arguments(description: str | None) -> argparse.Namespace:
    """The command line every side-by-side bench takes: seconds per turn, rounds, and instruction counts."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--instructions", action="store_true")
    return parser.parse_args()


def cpu_run(backend_url: str, extra: str, seconds: float) -> dict[str, float]:
    """One gateway (1 worker pinned to core 0) with ``extra`` config, warmed up, then one wrk run at c32: CPU
    per call."""
    folder = Path(tempfile.mkdtemp(prefix="only1mcp-side-by-side-"))
    config = folder / "bench.yaml"
    config.write_text("server: {port: 0, workers: 1, standby_workers: 0, log_level: warning}\n"
                      f"backends:\n  - name: h\n    url: {backend_url}\n" + extra)
    gateway = _spawn([sys.executable, "-m", "only1mcp.supervisor.main", "--config", str(config),
                      "--log-level", "info"], "0", stderr=subprocess.PIPE, stdout=subprocess.DEVNULL)
    gateway.stdout = gateway.stderr
    try:
        url = _wait_line(gateway, r"ready url=(\S+)").group(1) + "/mcp"
        _drain(gateway)
        session = _session(url)
        _check_call(url, session, "h_echo")
        _wrk(url, session, "h_echo", 32, 2.0, "1")
        before = _gateway_cpu(gateway.pid)
        measured = _wrk(url, session, "h_echo", 32, seconds, "1")
        used = _gateway_cpu(gateway.pid) - before
        return {"cpu_us_per_call": round(used / max(1, measured["requests"]) * 1e6, 1), "rps": measured["rps"],
                "non_2xx": measured["non_2xx"]}
    finally:
        os.killpg(gateway.pid, signal.SIGTERM)
        gateway.wait(30)


def _nothing(_config: str) -> None:
    pass


def compare(configs: dict[str, str], backend_url: str, seconds: float, rounds: int, count_instructions: bool,
            entering: Callable[[str], None] = _nothing, label: str = "") -> dict[str, dict[str, Any]]:
    """Each of ``configs`` (name -> extra config) measured ``rounds`` times in turns; its medians and what it
    adds to the first one's. ``entering(name)`` runs before each of its gateways starts (a credential the
    load generator should send, say)."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in configs}
    for round_ in range(rounds):
        for name in (list(configs) if round_ % 2 == 0 else list(reversed(configs))):
            entering(name)
            runs[name].append(cpu_run(backend_url, configs[name], seconds))
            print(f"round {round_ + 1} {label}{name}: {runs[name][-1]}", file=sys.stderr)
    figures = {name: {key: statistics.median(r[key] for r in measured) for key in measured[0]}
               for name, measured in runs.items()}
    if count_instructions:
        for name, extra in configs.items():
            entering(name)
            figures[name]["instructions_per_call"] = instructions.run(seconds, 16, "http", extra)[
                "instructions_per_call"]
    base = figures[next(iter(configs))]
    for row in figures.values():
        row["added_cpu_us"] = round(row["cpu_us_per_call"] - base["cpu_us_per_call"], 1)
        if "instructions_per_call" in row:
            row["added_instructions"] = row["instructions_per_call"] - base["instructions_per_call"]
    return figures


def report(figures: dict[str, dict[str, Any]], label: str = "", width: int = 8) -> None:
    """One line per config: its CPU per call, what it adds, its rate (and instructions when counted)."""
    for name, row in figures.items():
        extra = (f", {row['instructions_per_call']:,} instructions (+{row['added_instructions']:,})"
                 if "instructions_per_call" in row else "")
        print(f"{label}{name:{width}} {row['cpu_us_per_call']:6.1f} us/call (+{row['added_cpu_us']:.1f}), "
              f"{row['rps']:,.0f} req/s{extra}")
