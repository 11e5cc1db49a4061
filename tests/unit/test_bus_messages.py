"""The typed bus protocol: every kind round-trips, malformed frames are refused naming what is wrong."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import msgpack
import pytest

from only1mcp.bus import BusProtocolError, Envelope, Kind, Namespace, Role, Sender, Target, decode, encode
from only1mcp.bus import messages as m
from only1mcp.bus.catalogue import refresh
from only1mcp.bus.codec import Codec
from only1mcp.bus.state import (
    BackendControl,
    BackendRoutes,
    BackendToken,
    CatalogState,
    ConfigState,
    JwksState,
    ReplicaRoute,
    Revocation,
    SessionKeys,
    StateEntry,
)
from only1mcp.bus.wire import WireError
from only1mcp.ratelimit.limits import Limit
from only1mcp.routing.breaker import State as BreakerState
from only1mcp.routing.health import Health

SENDER = Sender(Role.WORKER, 3, 4242)
ROUTE = ReplicaRoute(Health.DEGRADED, BreakerState.HALF_OPEN, 1700000000.5, "3 failures", 2)
ONE = Target(1, 77)

SAMPLES: dict[Kind, m.Payload] = {
    Kind.DELTA: m.Delta(9, StateEntry(Namespace.ROUTES, "files", BackendRoutes((ROUTE,)))),
    Kind.HEARTBEAT: m.Heartbeat(12),
    Kind.SNAPSHOT_REQUEST: m.Request(5),
    Kind.SNAPSHOT: m.Snapshot(5, 12, (
        StateEntry(Namespace.CONFIG, "", ConfigState(2, "abc", "file.yaml", 1.5, {"server": {"port": 1}})),
        StateEntry(Namespace.SESSIONS, "", SessionKeys(b"\x00" * 32, 60.0)),
        StateEntry(Namespace.CATALOG, "", CatalogState(4, {"tools": [{"name": "t"}]})),
        StateEntry(Namespace.REVOKED, "sid", Revocation(2e9)),
        StateEntry(Namespace.JWKS, "", JwksState("https://idp.test/keys", 1.5e9, {"keys": [{"kid": "k1"}]})),
        StateEntry(Namespace.TOKENS, "files", BackendToken("files", "eyJ.token.sig", 1.7e9, 3)),
        StateEntry(Namespace.OPERATOR, "files", BackendControl(True, 2)),
        StateEntry(Namespace.ROUTES, "gone", None))),
    Kind.STATUS_REQUEST: m.Request(6),
    Kind.STATUS: m.Status(6, {"workers": []}),
    Kind.REPLAY_REQUEST: m.ReplayRequest(7, "sid", 3),
    Kind.REPLAY: m.Replay(7, (4, 5), (b'{"a":1}', b'{"b":2}')),
    Kind.ADMIN_ACTION: m.AdminAction(8, m.AdminVerb.DRAIN, "files", -1),
    Kind.ADMIN_RESULT: m.AdminResult(8, 200, 14, {"backend": "files", "drained": True}),
    Kind.READY: m.ProcessReport(12, 2, 100, 1, {"time#0": {"pid": 9}}, 3),
    Kind.PROCESS_HEARTBEAT: m.ProcessReport(12, 2, 101, 0, {}, 0),
    Kind.BOOT_ERROR: m.BootError("cannot listen on 127.0.0.1:80: Permission denied"),
    Kind.STATE_APPLIED: m.ProcessReport(13, 2, 101, 0, {}, 0),
    Kind.STANDBY_READY: m.Empty(),
    Kind.CHILD_STATUS: m.ChildStatus("files", 0, m.ChildState.RESTARTING, None, 3, "exited with code 1"),
    Kind.BACKEND_REMOVED: m.BackendRemoved("files"),
    Kind.BACKEND_CHANGED: m.BackendChanged("files"),
    Kind.CALL_OUTCOMES: m.CallOutcomes((m.OutcomeBatch("files", 0, "1101", "timed out", 0.25),)),
    Kind.SESSION_SEND: m.SessionSend("sid", b'{"jsonrpc":"2.0"}'),
    Kind.SESSION_REVOKE: m.SessionRevoke("sid", 2e9),
    Kind.KEYS_WANTED: m.KeysWanted("rsa-2"),
    Kind.LEASE_ASK: m.LeaseAsks((m.LeaseAsk(Limit.PER_TOOL, "jwt:alice files_read", 3, (m.LeaseUse(7, 5),)),)),
    Kind.LEASE_RETURN: m.LeaseEnds((m.LeaseEnd(Limit.PER_BACKEND, "files", 7, 5),)),
    Kind.TOKEN_REFUSED: m.BackendTokenRefused("files", 4),
    Kind.CLIENT_RESPONSE: m.ClientResponse(ONE, {"jsonrpc": "2.0", "id": "o1.1.77.3", "result": {}}),
    Kind.CANCEL_CALL: m.CancelCall(Target(m.ALL_WORKERS), "sid", 12),
    Kind.LEGACY_POST: m.LegacyPost(ONE, "token", {"jsonrpc": "2.0", "method": "ping", "id": 1}),
    Kind.MODERN_RETRY: m.ModernRetry(ONE, Target(0, 66), "66.1", {"id": 1}),
    Kind.MODERN_RETRY_GONE: m.ModernRetryGone(ONE, "66.1"),
    Kind.MODERN_EVENT: m.ModernEvent(Target(0, 66), "66.1", None, {"id": 1, "result": {}}, 200),
    Kind.UNSUBSCRIBE: m.Unsubscribe(Target(m.ALL_WORKERS), "sid", "files", "file:///a"),
    Kind.TOOLS_FOUND: m.ToolsFound(Target(m.ALL_WORKERS), "sid", ("files_read", "files_write")),
    Kind.TASK_OWNED: m.TaskOwned(Target(m.ALL_WORKERS), "ev", "0:task-1", "sid"),
    Kind.LOG_LEVEL_SET: m.SessionLogLevel(Target(m.ALL_WORKERS), "sid", "warning"),
    Kind.SESSION_EVENT: m.SessionEvent(Target(m.ALL_WORKERS), "sid", 4, b"{}"),
    Kind.ADOPT: m.Adopt(Target(m.STANDBYS, 88), 1, 77),
    Kind.LEASE_GRANT: m.LeaseGrants(ONE, (m.LeaseGrant(Limit.PER_PRINCIPAL, "anonymous:127.0.0.1", 8, 10, 11.5, 12.5,
                                                       11.75),
                                          m.LeaseGrant(Limit.PER_TOOL, "jwt:bob t", 0, 0, 0.0, 0.0, 13.0))),
    Kind.LINK_HELLO: m.LinkHello(m.LinkPurpose.CALLS),
    Kind.LINK_SEND: m.LinkSend("sid", b'{"jsonrpc":"2.0","id":"w1.2","method":"tools/call"}'),
    Kind.LINK_RECEIVE: m.LinkReceive(b'{"jsonrpc":"2.0","id":"w1.2","result":{}}', "w1.2", None),
}


def test_every_kind_has_a_sample() -> None:
    assert set(SAMPLES) == set(Kind)


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.name)
def test_every_kind_round_trips(kind: Kind) -> None:
    envelope = Envelope.of(kind, SENDER, SAMPLES[kind])
    assert decode(encode(envelope)) == envelope


@pytest.mark.parametrize("kind", list(Kind), ids=lambda kind: kind.name)
def test_the_field_handler_gives_what_the_payload_holds(kind: Kind) -> None:
    """The link's data path checks a frame's fields without building its payload: the values it hands
    over are the payload's own."""
    payload = SAMPLES[kind]
    raw = Codec().unpack(encode(Envelope.of(kind, SENDER, payload)))[4]
    values = type(payload).field_handler()(raw, lambda *values: values)
    assert values == tuple(getattr(payload, field.name) for field in dataclasses.fields(payload))


def test_the_field_handler_refuses_what_from_wire_refuses() -> None:
    called: list[object] = []
    with pytest.raises(WireError, match=r"LinkReceive\.related: expected an integer or a string or nil"):
        m.LinkReceive.field_handler()([b"{}", 1.5, None], lambda *values: called.append(values))
    assert called == []


def test_a_kind_carries_only_its_own_payload() -> None:
    with pytest.raises(TypeError, match="HEARTBEAT carries Heartbeat"):
        Envelope.of(Kind.HEARTBEAT, SENDER, m.Request(1))


def test_a_namespace_holds_only_its_own_value_type() -> None:
    with pytest.raises(TypeError, match="ROUTES holds BackendRoutes"):
        StateEntry(Namespace.ROUTES, "x", Revocation(1.0))


@pytest.mark.parametrize(("frame", "problem"), [
    (b"", "malformed bus frame"),
    (b"\xc1", "malformed bus frame"),
    (msgpack.packb([1, 2]), "not an envelope of 5 fields"),
    (msgpack.packb([99, 2, 0, 1, []]), "unknown kind 99"),
    (msgpack.packb([[41], 2, 0, 1, []]), r"unknown kind \[41\]"),
    (msgpack.packb([True, 2, 0, 1, [1]]), "unknown kind True"),
    (msgpack.packb([2, 9, 0, 1, [1]]), "bad sender"),
    (msgpack.packb([2, 2, 0, 1, ["x"]]), "Heartbeat.seq: expected an integer"),
    (msgpack.packb([2, 2, 0, 1, [1, 2]]), "Heartbeat: expected 1 fields"),
    (msgpack.packb([15, 4, -1, 1, ["files", 0, "asleep", None, 0, "", 0]]), "ChildStatus.state: expected one of"),
    (msgpack.packb([41, 2, 0, 1, [3, b"{}"]]), "LinkSend.caller: expected a string or nil"),
    (msgpack.packb([18, 2, 0, 1, [[["files", "zero", "1", "", 0.1]]]]), r"CallOutcomes.batches\[\]: OutcomeBatch"),
    (msgpack.packb([1, 1, -1, 1, [1, [9, "x", None]]]), "unknown namespace 9"),
    (msgpack.packb("text"), "not an envelope"),
])
def test_malformed_frames_are_refused_saying_what_is_wrong(frame: bytes, problem: str) -> None:
    with pytest.raises(BusProtocolError, match=problem):
        decode(frame)


def test_numbers_accept_integers_and_booleans_are_not_integers() -> None:
    frame = msgpack.packb([18, 2, 0, 1, [[["files", 0, "1", "", 1]]]])
    batch = decode(frame).payload.batches[0]  # type: ignore[attr-defined]
    assert batch.latency == 1.0 and isinstance(batch.latency, float)
    with pytest.raises(BusProtocolError, match="expected an integer"):
        decode(msgpack.packb([2, 2, 0, 1, [True]]))


def test_targets_name_their_topics() -> None:
    assert Target(m.ALL_WORKERS).topic == b"*"
    assert Target(m.STANDBYS, 5).topic == b"standby."
    assert Target(1).topic == b"w1." and not Target(10).topic.startswith(Target(1).topic)


def test_the_message_catalogue_in_the_docs_is_current() -> None:
    document = (Path(__file__).resolve().parents[2] / "docs" / "architecture.md").read_text()
    assert refresh(document) == document, ("docs/architecture.md's message catalogue is stale; run "
                                           "`python -m only1mcp.bus.catalogue docs/architecture.md`")


def test_a_backend_token_never_shows_in_its_repr() -> None:
    """Payloads end up in log lines (a bus error names what it got): the token must not."""
    token = BackendToken("files", "eyJ.secret-token.sig", 1.7e9, 3)
    assert "secret-token" not in repr(token) and "files" in repr(token)
