"""State propagation latency: a supervisor-side change -> applied on every one of N real worker processes.

The bench plays the supervisor's bus role with the same classes the supervisor uses (StatePublisher,
ObservationSink), spawns real worker processes exactly as the supervisor does, and times each change from
``set()`` to the last worker's STATE_APPLIED report. Changes are sent one at a time (each waits for all
workers), so the figure is latency, not throughput.

    python -m bench.state_propagation [--workers 4] [--changes 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import socket
import time

import uvloop
import zmq.asyncio

from only1mcp.bus import Endpoints, Envelope, Kind, MessageRouter, Namespace, ReportSink, Role, Sender, StatePublisher
from only1mcp.bus.endpoints import create_runtime_dir
from only1mcp.bus.messages import ProcessReport
from only1mcp.bus.state import BackendRoutes, ConfigState, ReplicaRoute
from only1mcp.process import run_entry
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health
from only1mcp.spec import WORKER_ENTRY, WorkerSpec

from .stats import percentile, save


async def measure(workers: int, changes: int) -> dict[str, object]:
    runtime = create_runtime_dir(None)
    endpoints = Endpoints.in_dir(runtime)
    ctx = zmq.asyncio.Context()
    applied: dict[int, int] = {}
    ready: set[int] = set()
    progress = asyncio.Event()

    def on_report(envelope: Envelope) -> None:
        slot = envelope.sender.slot
        if envelope.kind is Kind.READY:
            ready.add(slot)
        if isinstance(envelope.payload, ProcessReport):
            applied[slot] = max(applied.get(slot, 0), envelope.payload.seq)
        progress.set()

    reports = MessageRouter("bench reports")
    for kind in (Kind.READY, Kind.PROCESS_HEARTBEAT, Kind.STATE_APPLIED):
        reports.register(kind, on_report)
    publisher = StatePublisher(ctx, endpoints, Sender(Role.SUPERVISOR, -1, os.getpid()))
    sink = ReportSink(ctx, endpoints, reports)
    tasks = [asyncio.create_task(publisher.serve()), asyncio.create_task(sink.serve()),
             asyncio.create_task(publisher.run_heartbeats(1.0))]
    publisher.set(Namespace.CONFIG, "", ConfigState(1, "bench", "bench", time.time(), {}))
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    mp = multiprocessing.get_context("spawn")
    processes = []
    for slot in range(workers):
        spec = WorkerSpec(slot, "127.0.0.1", holder.getsockname()[1], endpoints, 1.0, 5.0, "warning", os.getpid(),
                          str(runtime))
        process = mp.Process(target=run_entry, args=(WORKER_ENTRY, spec))
        process.start()
        processes.append(process)

    async def until(condition) -> None:
        while not condition():
            progress.clear()
            await asyncio.wait_for(progress.wait(), 30)

    await until(lambda: len(ready) == workers)
    latencies = []
    for index in range(changes):
        started = time.perf_counter()
        seq = publisher.set(Namespace.ROUTES, f"bench{index % 50}", BackendRoutes(
            (ReplicaRoute(Health.HEALTHY, BreakerState.CLOSED, None, f"change {index}", 1),)))
        await until(lambda seq=seq: len(applied) == workers and min(applied.values()) >= seq)
        latencies.append((time.perf_counter() - started) * 1e3)

    for process in processes:
        process.terminate()
    for process in processes:
        process.join(10)
    for task in tasks:
        task.cancel()
    publisher.close()
    sink.close()
    ctx.destroy(0)
    holder.close()
    shutil.rmtree(runtime, ignore_errors=True)
    return {
        "workers": workers,
        "changes": changes,
        "p50_ms": round(percentile(latencies, 50), 3),
        "p99_ms": round(percentile(latencies, 99), 3),
        "max_ms": round(max(latencies), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--changes", type=int, default=1000)
    args = parser.parse_args()
    result = uvloop.run(measure(args.workers, args.changes))
    path = save("state_propagation", result)
    print(f"state propagation to {result['workers']} workers over {result['changes']} changes: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms  ({path})")


if __name__ == "__main__":
    main()
