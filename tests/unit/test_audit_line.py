"""The audit line: its fields, its time format, the session hash in place of the session id, and arguments
only when configured (masked)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from only1mcp.audit.line import Clock, SessionHashes, encode, session_hash, target_of
from only1mcp.audit.outcome import Outcome
from only1mcp.audit.trail import AuditTrail
from only1mcp.auth.principal import AuthMethod, Principal
from only1mcp.config.audit import AuditSettings
from only1mcp.protocol.codec import ExactNumber
from only1mcp.sessions import SessionInfo

CALL = {"jsonrpc": "2.0", "id": 7, "method": "tools/call",
        "params": {"name": "files_read", "arguments": {"path": "/etc/motd", "api_key": "sk-live-1"}}}


def _trail(tmp_path: Path, **settings: Any) -> tuple[AuditTrail, Path]:
    path = tmp_path / "audit.log"
    trail = AuditTrail(tmp_path)
    trail.configure(AuditSettings(enabled=True, path=path, **settings))
    return trail, path


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_line_has_every_field_in_order(tmp_path: Path) -> None:
    trail, path = _trail(tmp_path)
    session = SessionInfo("4f2a9c", "2025-06-18")
    trail.record(Outcome.OK, CALL, peer="10.1.2.3", session=session, backend="files", started=time.perf_counter())
    [line] = _lines(path)
    assert list(line) == ["time", "outcome", "method", "id", "target", "backend", "principal", "auth", "client",
                          "session", "duration_ms"]
    assert line["outcome"] == "ok" and line["method"] == "tools/call" and line["id"] == 7
    assert line["target"] == "files_read" and line["backend"] == "files"
    assert line["session"] == session_hash("4f2a9c") and "4f2a9c" not in path.read_text()
    assert 0 <= line["duration_ms"] < 1000


def test_without_authentication_the_principal_is_the_anonymous_client(tmp_path: Path) -> None:
    trail, path = _trail(tmp_path)
    trail.record(Outcome.OK, CALL, peer="10.1.2.3", session=SessionInfo("s", "2025-06-18"))
    [line] = _lines(path)
    assert (line["principal"], line["auth"], line["client"]) == ("10.1.2.3", "anonymous", "10.1.2.3")


def test_the_principal_and_how_it_authenticated_come_from_the_caller(tmp_path: Path) -> None:
    trail, path = _trail(tmp_path)
    alice = Principal("alice", AuthMethod.JWT, frozenset({"reader"}))
    trail.record(Outcome.OK, CALL, peer="10.1.2.3", session=SessionInfo("s", "2025-06-18", caller=alice))
    ci = Principal("ci-bot", AuthMethod.API_KEY)
    trail.record(Outcome.DENIED, CALL, peer="10.9.9.9", caller=ci, code=-32602)
    first, second = _lines(path)
    assert (first["principal"], first["auth"], first["client"]) == ("alice", "jwt", "10.1.2.3")
    assert (second["principal"], second["auth"], second["outcome"], second["code"]) == (
        "ci-bot", "api_key", "denied", -32602)
    assert second["session"] is None and second["duration_ms"] is None


def test_a_refusal_before_the_body_was_read_has_no_method(tmp_path: Path) -> None:
    trail, path = _trail(tmp_path)
    trail.record(Outcome.UNAUTHENTICATED, None, peer="192.0.2.1")
    [line] = _lines(path)
    assert line["outcome"] == "unauthenticated"
    assert line["method"] is None and line["id"] is None and line["target"] is None


def test_arguments_only_when_configured_and_masked(tmp_path: Path) -> None:
    (tmp_path / "quiet").mkdir()
    (tmp_path / "loud").mkdir()
    quiet, quiet_path = _trail(tmp_path / "quiet")
    quiet.record(Outcome.OK, CALL, peer="p")
    assert "arguments" not in _lines(quiet_path)[0] and "sk-live-1" not in quiet_path.read_text()
    loud, loud_path = _trail(tmp_path / "loud", include_arguments=True)
    loud.record(Outcome.OK, CALL, peer="p")
    assert _lines(loud_path)[0]["arguments"] == {"path": "/etc/motd", "api_key": "***"}
    assert "sk-live-1" not in loud_path.read_text()


def test_ids_are_written_exactly_as_the_client_sent_them(tmp_path: Path) -> None:
    trail, path = _trail(tmp_path)
    trail.record(Outcome.OK, {**CALL, "id": ExactNumber("18446744073709551617")}, peer="p")
    trail.record(Outcome.OK, {**CALL, "id": "req-1"}, peer="p")
    text = path.read_text()
    assert '"id":18446744073709551617,' in text and '"id":"req-1",' in text


def test_one_line_per_record_each_ending_in_a_newline(tmp_path: Path) -> None:
    trail, path = _trail(tmp_path, include_arguments=True)
    for n in range(3):
        trail.record(Outcome.OK, {**CALL, "params": {"name": "x", "arguments": {"text": "a\nb"}}, "id": n}, peer="p")
    data = path.read_bytes()
    assert data.count(b"\n") == 3 and data.endswith(b"\n")
    assert [line["id"] for line in _lines(path)] == [0, 1, 2]


def test_nothing_is_written_while_the_trail_is_off(tmp_path: Path) -> None:
    trail = AuditTrail(tmp_path)
    trail.configure(AuditSettings(enabled=False, path=tmp_path / "audit.log"))
    trail.record(Outcome.OK, CALL, peer="p")
    assert not (tmp_path / "audit.log").exists()


def test_a_changed_path_is_written_from_the_next_line(tmp_path: Path) -> None:
    trail, first = _trail(tmp_path)
    trail.record(Outcome.OK, CALL, peer="p")
    second = tmp_path / "other.log"
    trail.configure(AuditSettings(enabled=True, path=second))
    trail.record(Outcome.OK, {**CALL, "id": 8}, peer="p")
    assert [line["id"] for line in _lines(first)] == [7] and [line["id"] for line in _lines(second)] == [8]


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    clock = Clock()
    assert clock.stamp(0.0) == "1970-01-01T00:00:00.000Z"
    assert clock.stamp(1764468000.5) == "2025-11-30T02:00:00.500Z"
    assert clock.stamp(1764468000.999) == "2025-11-30T02:00:00.999Z"  # the cached second, new milliseconds
    assert clock.stamp(1764468001.0014) == "2025-11-30T02:00:01.001Z"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", clock.stamp(time.time()))


def test_session_hashes_are_stable_and_tell_sessions_apart() -> None:
    assert session_hash("abc") == session_hash("abc") != session_hash("abd")
    assert re.fullmatch(r"[0-9a-f]{32}", session_hash("abc"))


def test_the_target_is_what_each_method_acts_on() -> None:
    assert target_of("tools/call", {"name": "t"}) == "t"
    assert target_of("prompts/get", {"name": "p"}) == "p"
    assert target_of("resources/read", {"uri": "file:///x"}) == "file:///x"
    assert target_of("resources/subscribe", {"uri": "u"}) == "u"
    assert target_of("completion/complete", {"ref": {"type": "ref/prompt", "name": "p"}}) == "p"
    assert target_of("completion/complete", {"ref": {"type": "ref/resource", "uri": "u/{x}"}}) == "u/{x}"
    assert target_of("tasks/get", {"taskId": "b:0:1"}) == "b:0:1"
    assert target_of("tools/list", {"cursor": "x"}) is None
    assert target_of("tools/call", None) is None
    assert target_of("ping", {}) is None


def test_encode_is_one_json_object_per_line() -> None:
    line = encode({"a": "x\ny", "b": [1, 2]})
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"a": "x\ny", "b": [1, 2]}


def test_remembered_session_hashes_are_the_hashes_and_stay_bounded() -> None:
    hashes = SessionHashes()
    assert hashes.of("abc") == session_hash("abc") == hashes.of("abc")
    for n in range(10_000):
        hashes.of(f"s{n}")
    assert len(hashes._known) <= 4096
    assert hashes.of("s9999") == session_hash("s9999")
