"""One worker's audit trail: configured from each published config, written once per audited request.

``record`` is the one call: the dispatcher makes it for every request it answers, the 2026-07-28 door for
each of its POSTs, and a policy refusal (401, 429, ...) made outside the dispatcher makes it with its own
outcome. It returns once the line is out of the process, so calling it before sending the answer is what
makes a request whose answer left the gateway have its line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from only1mcp.auth.principal import AuthMethod, Principal
from only1mcp.config.audit import AuditSettings
from only1mcp.sessions import SessionInfo

from .line import Clock, SessionHashes, encode, target_of
from .masking import Redactor
from .outcome import Outcome
from .sinks import Sink, describe, open_sink

__all__ = ["AuditTrail"]

log = logging.getLogger("only1mcp.audit")

_OFF = AuditSettings()


class AuditTrail:
    """``enabled`` is read on the data path: everything else happens only while the trail is on."""

    __slots__ = ("_clock", "_hashes", "_redactor", "_runtime_dir", "_settings", "_sink", "enabled")

    def __init__(self, runtime_dir: Path) -> None:
        self._runtime_dir = runtime_dir
        self._settings = _OFF
        self._sink: Sink | None = None
        self._redactor: Redactor | None = None
        self._clock = Clock()
        self._hashes = SessionHashes()
        self.enabled = False

    def configure(self, settings: AuditSettings) -> None:
        """Apply the ``audit`` section of a published config: a changed destination is reopened."""
        if settings == self._settings:
            return
        old, self._settings = self._settings, settings
        self._redactor = Redactor(settings.redact) if settings.include_arguments else None
        if _destination(settings) != _destination(old):
            self._close_sink()
            if settings.enabled:
                try:
                    self._open_sink()
                except OSError as exc:  # tried again with each line; each failure says so
                    log.error("cannot open the audit trail at %s: %s", describe(settings), exc.strerror or exc)
        self.enabled = settings.enabled

    def record(self, outcome: Outcome, message: Mapping[str, Any] | None, *, peer: str,
               session: SessionInfo | None = None, caller: Principal | None = None, backend: str | None = None,
               started: float | None = None, code: int | None = None) -> None:
        """Write the line of one request (``message``: the client's JSON-RPC request, None when it was refused
        before its body was read). ``caller`` defaults to the session's; without one the principal is the
        anonymous client at ``peer``. ``started``: ``time.perf_counter()`` when the request arrived."""
        if not self.enabled:
            return
        now = time.time()
        if caller is None and session is not None:
            caller = session.caller
        method = params = request_id = None
        if message is not None:
            method, request_id, params = message.get("method"), message.get("id"), message.get("params")
        record: dict[str, Any] = {
            "time": self._clock.stamp(now),
            "outcome": outcome,
            "method": method,
            "id": request_id,
            "target": target_of(method, params) if isinstance(method, str) else None,
            "backend": backend,
            "principal": caller.subject if caller is not None else peer,
            "auth": caller.method if caller is not None else AuthMethod.ANONYMOUS,
            "client": peer,
            "session": self._hashes.of(session.sid) if session is not None else None,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started is not None else None,
        }
        if code is not None:
            record["code"] = code
        if self._redactor is not None and isinstance(params, dict) and "arguments" in params:
            record["arguments"] = self._redactor.mask(params["arguments"])
        self._write(encode(record))

    def _write(self, line: bytes) -> None:
        try:
            if self._sink is None:
                self._open_sink()
            assert self._sink is not None
            self._sink.write(line)
        except OSError as exc:
            # The answer still goes out (the request has happened); this says, once per burst, what to fix.
            log.error("audit line not written to %s: %s; the request was answered without it. Fix the "
                      "destination (space, permissions, syslog daemon) or change audit in the config",
                      describe(self._settings), exc.strerror or exc)

    def _open_sink(self) -> None:
        self._sink = open_sink(self._settings, self._runtime_dir)

    def _close_sink(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None

    def close(self) -> None:
        self._close_sink()


def _destination(settings: AuditSettings) -> tuple[Any, ...]:
    return (settings.enabled, settings.path, settings.syslog, settings.facility, settings.max_bytes,
            settings.backups)
