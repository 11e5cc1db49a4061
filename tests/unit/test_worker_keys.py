"""A worker's copy of the issuer's keys: rebuilt only when they change, and a refetch asked over the real
report channel (Reporter -> ReportSink on ipc sockets), at most once per min_refresh_interval, with a
request waiting for the answer until its deadline."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import zmq.asyncio
from joserfc.jwk import RSAKey
from only1mcp.workers.jwks import WorkerKeys

from only1mcp.background import Background
from only1mcp.bus import Endpoints, Envelope, Kind, MessageRouter, Reporter, ReportSink, Role, Sender
from only1mcp.bus.messages import KeysWanted
from only1mcp.bus.state import JwksState
from only1mcp.config.auth import JwtSettings

SETTINGS = JwtSettings(issuer="https://idp.example", min_refresh_interval=30, fetch_timeout=2)


def jwks(*kids: str) -> dict[str, object]:
    return {"keys": [RSAKey.generate_key(2048, parameters={"kid": kid, "alg": "RS256"}).as_dict(private=False)
                     for kid in kids]}


class Supervisor:
    """The receiving end of the report channel: records each KEYS_WANTED and may answer it."""

    def __init__(self) -> None:
        self.wanted: list[str] = []
        self.arrived = asyncio.Event()
        self.answer: JwksState | None = None
        self.keys: WorkerKeys | None = None

    def on_report(self, envelope: Envelope) -> None:
        assert isinstance(envelope.payload, KeysWanted)
        self.wanted.append(envelope.payload.kid)
        self.arrived.set()
        if self.answer is not None and self.keys is not None:
            self.keys.on_state(self.answer, SETTINGS)  # as the supervisor's publication reaches the worker


@pytest.fixture
async def bus(short_tmp_path: Path) -> AsyncIterator[tuple[WorkerKeys, Supervisor]]:
    ctx = zmq.asyncio.Context()
    endpoints = Endpoints.in_dir(short_tmp_path)
    supervisor = Supervisor()
    router = MessageRouter("test reports")
    router.register(Kind.KEYS_WANTED, supervisor.on_report)
    sink = ReportSink(ctx, endpoints, router)
    tasks = Background("test")
    tasks.spawn(sink.serve(), "sink")
    reporter = Reporter(ctx, endpoints, Sender(Role.WORKER, 0, 1))
    keys = WorkerKeys(reporter)
    supervisor.keys = keys
    try:
        yield keys, supervisor
    finally:
        await tasks.close()
        reporter.close()
        sink.close()
        ctx.term()


async def test_the_key_set_is_rebuilt_only_when_the_document_changes(bus: tuple[WorkerKeys, Supervisor]) -> None:
    keys, _ = bus
    document = jwks("k1")
    keys.on_state(JwksState("https://idp.example/keys", 1.0, document), SETTINGS)
    first = keys.keys
    assert first.kids == ("k1",) and keys.generation == 1
    keys.on_state(JwksState("https://idp.example/keys", 2.0, dict(document)), SETTINGS)  # fetched again, same keys
    assert keys.keys is first and keys.generation == 2 and keys.fetched_at == 2.0
    keys.on_state(None, None)  # auth.jwt removed
    assert keys.keys.kids == () and keys.generation == 3


async def test_a_known_kid_asks_for_nothing(bus: tuple[WorkerKeys, Supervisor]) -> None:
    keys, supervisor = bus
    keys.on_state(JwksState("https://idp.example/keys", 1.0, jwks("k1")), SETTINGS)
    assert (await keys.keys_for("k1", 5)).kids == ("k1",)
    assert keys.wanted == 0 and supervisor.wanted == []


async def test_an_unknown_kid_waits_for_the_refetch_it_asked_for(bus: tuple[WorkerKeys, Supervisor]) -> None:
    keys, supervisor = bus
    keys.on_state(JwksState("https://idp.example/keys", 1.0, jwks("k1")), SETTINGS)
    supervisor.answer = JwksState("https://idp.example/keys", 2.0, jwks("k1", "k2"))
    fresher = await asyncio.wait_for(keys.keys_for("k2", 10), 15)
    assert supervisor.wanted == ["k2"] and "k2" in fresher and keys.keys is fresher


async def test_a_refetch_is_asked_once_per_publication(bus: tuple[WorkerKeys, Supervisor]) -> None:
    keys, supervisor = bus
    keys.on_state(JwksState("https://idp.example/keys", 1.0, jwks("k1")), SETTINGS)
    assert keys.want("k2") is True
    assert keys.want("k3") is True  # asked a moment ago, no answer yet: worth waiting for, not asking again
    await asyncio.wait_for(supervisor.arrived.wait(), 10)
    assert keys.wanted == 1 and supervisor.wanted == ["k2"]
    keys.on_state(JwksState("https://idp.example/keys", 2.0, jwks("k1")), SETTINGS)  # refetched: k2 still absent
    supervisor.arrived.clear()
    assert keys.want("k2") is True  # answered: the key may have been added since; the supervisor paces fetches
    await asyncio.wait_for(supervisor.arrived.wait(), 10)
    assert keys.wanted == 2 and supervisor.wanted == ["k2", "k2"]


async def test_a_fetch_that_cannot_come_in_time_is_not_waited_for(bus: tuple[WorkerKeys, Supervisor]) -> None:
    """The supervisor fetches at most once per min_refresh_interval, whichever worker asks, deferring a fetch
    asked for sooner: when that is further off than the request's deadline, the token is refused at once
    (the auth fuzz found every other unknown kid waiting the whole 5 s); the ask is still sent, so the
    deferred fetch serves the requests after it."""
    keys, supervisor = bus
    keys.on_state(JwksState("https://idp.example/keys", time.time(), jwks("k1")), SETTINGS)  # fetched just now
    started = time.monotonic()
    assert (await asyncio.wait_for(keys.keys_for("k2", 2), 5)).kids == ("k1",)
    assert time.monotonic() - started < 1  # not the whole deadline
    await asyncio.wait_for(supervisor.arrived.wait(), 10)
    assert keys.wanted == 1 and supervisor.wanted == ["k2"]
    often = JwtSettings(issuer="https://idp.example", refresh_interval=2, min_refresh_interval=1)
    keys.on_state(JwksState("https://idp.example/keys", time.time(), jwks("k1")), often)
    assert keys.want("k2", within=5) is True  # the deferred fetch comes within the deadline: wait for it
    keys.on_state(JwksState("https://idp.example/keys", time.time() - SETTINGS.min_refresh_interval, jwks("k1")),
                  SETTINGS)
    assert keys.want("k2") is True  # fetched longer ago than that: fetched at once


async def test_a_refetch_that_never_comes_ends_at_the_deadline(bus: tuple[WorkerKeys, Supervisor]) -> None:
    keys, supervisor = bus
    keys.on_state(JwksState("https://idp.example/keys", 1.0, jwks("k1")), SETTINGS)
    generation = keys.generation
    assert keys.want("k9") is True
    assert (await keys.newer_than(generation, 0.3)).kids == ("k1",)
    await asyncio.wait_for(supervisor.arrived.wait(), 10)
    assert supervisor.wanted == ["k9"] and keys.generation == generation


async def test_nothing_is_asked_without_auth_jwt(bus: tuple[WorkerKeys, Supervisor]) -> None:
    keys, _ = bus
    assert keys.want("k1") is False and keys.wanted == 0
