"""The running config: loaded, re-validated on reload, numbered, and published as shared state."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

from only1mcp.bus import Namespace, StatePublisher
from only1mcp.bus.state import ConfigState
from only1mcp.config.document import ConfigErrors
from only1mcp.config.loader import load_settings
from only1mcp.config.models import Settings
from only1mcp.config.reload import Pending, split_reload

__all__ = ["ConfigStore"]

log = logging.getLogger("only1mcp.supervisor")

_HISTORY = 20  # reloads kept for the admin API (/api/v1/admin/reloads)


def _digest(settings: Settings) -> str:
    text = json.dumps(settings.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class ConfigStore:
    """Owns the current Settings and its version; publishes ``config`` on the bus on every change."""

    __slots__ = ("_environ", "_overrides", "_path", "_publisher", "digest", "history", "last_apply_ms", "last_error",
                 "last_success", "loaded_at", "pending_restart", "reloads_failed", "reloads_ok", "settings", "source",
                 "version")

    def __init__(
        self,
        settings: Settings,
        source: str,
        path: str | os.PathLike[str] | None,
        overrides: Mapping[str, Any],
        environ: Mapping[str, str] | None,
        publisher: StatePublisher,
    ) -> None:
        self._path = path
        self._overrides = overrides
        self._environ = environ
        self._publisher = publisher
        self.settings = settings
        self.source = source
        self.version = 1
        self.digest = _digest(settings)
        self.loaded_at = time.time()
        self.reloads_ok = 0
        self.last_success = self.loaded_at  # the last load that validated (the start counts), for metrics
        self.reloads_failed = 0
        self.last_apply_ms: float | None = None  # how long the last reload took to apply, for status
        self.pending_restart: list[Pending] = []  # changed settings that apply only after a restart
        self.last_error = ""  # why the last failed reload failed (file:line errors; never a secret's value)
        self.history: deque[dict[str, Any]] = deque(maxlen=_HISTORY)  # newest last
        self.publish()

    def publish(self) -> None:
        self._publisher.set(Namespace.CONFIG, "", ConfigState(self.version, self.digest, self.source, self.loaded_at,
                                                             self.settings.model_dump(mode="json")))

    def reload(self, trigger: str = "signal") -> bool:
        """Validate the file again and publish it as a new version; on error keep running the old one.
        ``trigger`` (what asked for it: signal, file change, admin API) is kept in the history."""
        started = time.time()
        try:
            settings, doc = load_settings(self._path, self._overrides, self._environ)
        except ConfigErrors as exc:
            self.reloads_failed += 1
            self.last_error = str(exc)
            self.history.append({"at": started, "trigger": trigger, "ok": False, "version": self.version,
                                 "error": self.last_error})
            log.error("config reload failed; still serving version %d:\n%s", self.version, exc)
            return False
        settings, self.pending_restart = split_reload(self.settings, settings)
        for pending in self.pending_restart:
            log.warning("config: %s changed to %r; restart the supervisor to apply it (keeping %r until then)",
                        pending.path, pending.wanted, pending.running)
        digest = _digest(settings)
        self.reloads_ok += 1
        self.last_success = time.time()
        self.history.append({"at": started, "trigger": trigger, "ok": True, "version": self.version + (
            digest != self.digest), "changed": digest != self.digest,
            "needs_restart": [pending.path for pending in self.pending_restart]})
        if digest == self.digest:
            log.info("config reloaded from %s: unchanged (version %d)", doc.source, self.version)
            return True
        self.settings, self.digest, self.source = settings, digest, doc.source
        self.version += 1
        self.loaded_at = time.time()
        self.publish()
        log.info("config reloaded from %s: now version %d", doc.source, self.version)
        return True

    def describe(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "digest": self.digest,
            "source": self.source,
            "loaded_at": self.loaded_at,
            "reloads": {"ok": self.reloads_ok, "failed": self.reloads_failed, "last_apply_ms": self.last_apply_ms},
            # secrets are never shown: only which setting waits, not its values
            "needs_restart": [pending.path for pending in self.pending_restart],
            "history": list(self.history),
        }
