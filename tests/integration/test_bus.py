"""The state bus with real ZeroMQ sockets: convergence, write storms, lost deltas."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from only1mcp.bus import Endpoints, Kind, Namespace, Replica, Role, Sender, StatePublisher, decode
from only1mcp.bus.endpoints import create_runtime_dir
from only1mcp.bus.messages import Delta
from only1mcp.bus.state import BackendRoutes, ReplicaRoute, Revocation
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health
from tests.support.waiting import eventually

SUPERVISOR = Sender(Role.SUPERVISOR, -1, 1)
WORKER = Sender(Role.WORKER, 0, 2)


def routes(n: int) -> BackendRoutes:
    """A distinct state value for ``n`` (the bus does not care what the values mean)."""
    return BackendRoutes((ReplicaRoute(Health.HEALTHY, BreakerState.CLOSED, None, f"value {n}", n),))


def put(publisher: StatePublisher, key: str, n: int | None) -> None:
    publisher.set(Namespace.ROUTES, key, None if n is None else routes(n))

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
async def bus(short_tmp_path: Path) -> AsyncIterator[tuple[zmq.asyncio.Context, Endpoints, StatePublisher]]:
    ctx = zmq.asyncio.Context()
    endpoints = Endpoints.in_dir(create_runtime_dir(short_tmp_path))
    publisher = StatePublisher(ctx, endpoints, SUPERVISOR)
    serving = asyncio.create_task(publisher.serve())
    yield ctx, endpoints, publisher
    serving.cancel()
    publisher.close()
    ctx.destroy(0)


def _converged(replica: Replica, publisher: StatePublisher):
    async def check() -> bool:
        return (replica.state.seq == publisher.seq
                and dict(replica.state.routes) == dict(publisher.entries(Namespace.ROUTES))
                and {sid for sid, _ in publisher.entries(Namespace.REVOKED)} == set(replica.revocations))

    return check


async def test_late_joiner_converges_after_1000_changes(bus) -> None:
    ctx, endpoints, publisher = bus
    for i in range(1000):
        put(publisher, f"k{i % 97}", i)
        if i % 10 == 0:
            put(publisher, f"k{(i * 7) % 97}", None)
        if i % 3 == 0:
            publisher.set(Namespace.REVOKED, f"s{i % 50}", None if i % 2 else Revocation(float(i)))
    replica = Replica(ctx, endpoints, WORKER)
    await replica.start()
    await eventually(_converged(replica, publisher), 5, "the late replica to converge")
    assert replica.state.seq == publisher.seq > 1000
    replica.close()


async def test_replica_joining_during_a_write_storm_converges(bus) -> None:
    ctx, endpoints, publisher = bus
    storm_done = asyncio.Event()

    async def storm() -> None:
        for i in range(5000):
            put(publisher, f"key{i % 300}", i)
            if i % 50 == 0:
                await asyncio.sleep(0)  # let the replica's snapshot request be served mid-storm
        storm_done.set()

    writer = asyncio.create_task(storm())
    await asyncio.sleep(0)
    replicas = [Replica(ctx, endpoints, WORKER) for _ in range(3)]
    first = await asyncio.gather(*(r.start() for r in replicas))
    await writer
    assert any(0 < state.seq < publisher.seq for state in first), "no replica joined during the storm"
    publisher.heartbeat()  # a replica that lost the tail of the storm learns it from the heartbeat
    for replica in replicas:
        await eventually(_converged(replica, publisher), 5, "a storm-time replica to converge")
        replica.close()
    assert storm_done.is_set()


async def test_replica_that_misses_a_delta_resnapshots(bus, short_tmp_path: Path) -> None:
    """Deltas reach the replica through a forwarder that drops exactly one of them."""
    ctx, endpoints, publisher = bus
    lossy = dataclasses.replace(endpoints, state=f"ipc://{short_tmp_path}/lossy.sock")
    upstream = ctx.socket(zmq.SUB)
    upstream.setsockopt(zmq.SUBSCRIBE, b"")
    upstream.connect(endpoints.state)
    downstream = ctx.socket(zmq.PUB)
    downstream.bind(lossy.state)
    forwarded = 0
    dropped: list[int] = []

    async def forward() -> None:
        nonlocal forwarded
        while True:
            frame = await upstream.recv()
            envelope = decode(frame)
            delta = envelope.payload
            if envelope.kind is Kind.DELTA and isinstance(delta, Delta) and delta.entry.name == "drop-me" \
                    and not dropped:
                dropped.append(delta.seq)
                continue
            forwarded += 1
            await downstream.send(frame)

    forwarder = asyncio.create_task(forward())
    replica = Replica(ctx, lossy, WORKER)
    await replica.start()
    assert replica.snapshots == 1

    # Make sure the forwarding path is live before the change that will be lost.
    def path_live() -> bool:  # a probe set on one poll has arrived by a later one
        put(publisher, "probe", publisher.seq)
        return replica.state.routes.get("probe") is not None

    await eventually(path_live, 5, "deltas to flow through the forwarder")
    put(publisher, "drop-me", 4242)
    put(publisher, "after", 1)  # arrives with a gap: the replica must re-snapshot
    await eventually(_converged(replica, publisher), 5, "the replica to recover the lost delta")
    assert dropped and replica.state.routes.get("drop-me") == routes(4242)
    assert replica.snapshots == 2

    put(publisher, "drop-me", None)
    dropped.clear()
    put(publisher, "drop-me", 4343)  # the last change is lost: only the heartbeat reveals it
    publisher.heartbeat()
    await eventually(_converged(replica, publisher), 5, "the heartbeat to reveal the lost delta")
    assert replica.snapshots == 3
    forwarder.cancel()
    replica.close()
    upstream.close(0)
    downstream.close(0)
