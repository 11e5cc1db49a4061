"""State propagation latency: a supervisor-side change -> applied on every one of N real worker processes,
fresh and again once 20,000 sessions are revoked (revocations must not make other changes dearer).

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
from collections.abc import Callable

import uvloop
import zmq.asyncio

from only1mcp.bus import Endpoints, Envelope, Kind, MessageRouter, Namespace, ReportSink, Role, Sender, StatePublisher
from only1mcp.bus.endpoints import create_runtime_dir
from only1mcp.bus.messages import ProcessReport
from only1mcp.bus.state import BackendRoutes, ConfigState, ReplicaRoute, Revocation
from only1mcp.process import run_entry
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health
from only1mcp.spec import WORKER_ENTRY, WorkerSpec

from .stats import percentile, save


def _spawn_workers(count: int, port: int, endpoints: Endpoints, runtime: str) -> list[multiprocessing.Process]:
    """Real worker processes, started exactly as the supervisor starts them."""
    mp = multiprocessing.get_context("spawn")
    processes = []
    for slot in range(count):
        spec = WorkerSpec(slot, "127.0.0.1", port, endpoints, 1.0, 5.0, "warning", os.getpid(), runtime)
        process = mp.Process(target=run_entry, args=(WORKER_ENTRY, spec))
        process.start()
        processes.append(process)
    return processes  # type: ignore[return-value]


class _Reports:
    """What the workers report: who is ready, and the state seq each has applied."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.applied: dict[int, int] = {}
        self.ready: set[int] = set()
        self.progress = asyncio.Event()
        self.router = MessageRouter("bench reports")
        for kind in (Kind.READY, Kind.PROCESS_HEARTBEAT, Kind.STATE_APPLIED):
            self.router.register(kind, self._report)

    def _report(self, envelope: Envelope) -> None:
        slot = envelope.sender.slot
        if envelope.kind is Kind.READY:
            self.ready.add(slot)
        if isinstance(envelope.payload, ProcessReport):
            self.applied[slot] = max(self.applied.get(slot, 0), envelope.payload.seq)
        self.progress.set()

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            self.progress.clear()
            await asyncio.wait_for(self.progress.wait(), 30)

    async def all_applied(self, seq: int) -> None:
        await self.until(lambda: len(self.applied) == self.workers and min(self.applied.values()) >= seq)


async def _changes(publisher: StatePublisher, reports: _Reports, changes: int) -> list[float]:
    """Milliseconds from each change to the last worker applying it."""
    latencies = []
    for index in range(changes):
        started = time.perf_counter()
        seq = publisher.set(Namespace.ROUTES, f"bench{index % 50}", BackendRoutes(
            (ReplicaRoute(Health.HEALTHY, BreakerState.CLOSED, None, f"change {index}", 1),)))
        await reports.all_applied(seq)
        latencies.append((time.perf_counter() - started) * 1e3)
    return latencies


async def _revoke(publisher: StatePublisher, reports: _Reports, count: int) -> None:
    expires = time.time() + 3600
    for index in range(count):
        seq = publisher.set(Namespace.REVOKED, f"{index:024x}", Revocation(expires))
        if index % 1000 == 999 or index == count - 1:
            await reports.all_applied(seq)


async def measure(workers: int, changes: int, revoked: int) -> dict[str, object]:
    runtime = create_runtime_dir(None)
    endpoints = Endpoints.in_dir(runtime)
    ctx = zmq.asyncio.Context()
    reports = _Reports(workers)
    publisher = StatePublisher(ctx, endpoints, Sender(Role.SUPERVISOR, -1, os.getpid()))
    sink = ReportSink(ctx, endpoints, reports.router)
    tasks = [asyncio.create_task(publisher.serve()), asyncio.create_task(sink.serve()),
             asyncio.create_task(publisher.run_heartbeats(1.0))]
    publisher.set(Namespace.CONFIG, "", ConfigState(1, "bench", "bench", time.time(), {}))
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind(("127.0.0.1", 0))
    processes = _spawn_workers(workers, holder.getsockname()[1], endpoints, str(runtime))
    await reports.until(lambda: len(reports.ready) == workers)
    latencies = await _changes(publisher, reports, changes)
    after: list[float] = []
    if revoked:  # the same changes again, with that many sessions revoked (what a busy gateway holds)
        await _revoke(publisher, reports, revoked)
        after = await _changes(publisher, reports, changes)

    for process in processes:
        process.terminate()
    for process in processes:
        process.join(10)
    for task in tasks:
        task.cancel()
    for closable in (publisher, sink, holder):
        closable.close()
    ctx.destroy(0)
    shutil.rmtree(runtime, ignore_errors=True)
    return _summary(workers, changes, latencies, revoked, after)


def _summary(workers: int, changes: int, latencies: list[float], revoked: int, after: list[float]) -> dict[str, object]:
    result: dict[str, object] = {"workers": workers, "changes": changes,
                                 "p50_ms": round(percentile(latencies, 50), 3),
                                 "p99_ms": round(percentile(latencies, 99), 3), "max_ms": round(max(latencies), 3)}
    if after:
        result.update(revoked=revoked, revoked_p50_ms=round(percentile(after, 50), 3),
                      revoked_p99_ms=round(percentile(after, 99), 3))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--revoked", type=int, default=20_000,
                        help="then revoke this many sessions and time the same changes again (0: skip)")
    args = parser.parse_args()
    result = uvloop.run(measure(args.workers, args.changes, args.revoked))
    path = save("state_propagation", result)
    print(f"state propagation to {result['workers']} workers over {result['changes']} changes: "
          f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, max {result['max_ms']} ms  ({path})")
    if "revoked" in result:
        print(f"  the same with {result['revoked']} sessions revoked: p50 {result['revoked_p50_ms']} ms, "
              f"p99 {result['revoked_p99_ms']} ms")


if __name__ == "__main__":
    main()
