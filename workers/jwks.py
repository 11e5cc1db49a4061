"""This worker's copy of the JWT issuer's keys, and the way to ask the supervisor for newer ones.

The key set is rebuilt only when the published document changes (every token is checked against the one
built last). A token naming an unknown key makes the worker report ``KEYS_WANTED`` (once per publication) and lets the
request wait, with a deadline, for the supervisor's next publication (at once, or once
``auth.jwt.min_refresh_interval`` since its last fetch has passed): a request signed with a key rotated in
a moment ago succeeds after one refetch.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from only1mcp.auth.keyset import KeySet
from only1mcp.bus import Kind, Reporter
from only1mcp.bus.messages import KeysWanted
from only1mcp.bus.state import JwksState
from only1mcp.config.auth import JwtSettings
from only1mcp.observe.scope import request_id

__all__ = ["WorkerKeys"]

log = logging.getLogger("only1mcp.worker")

_NEVER = -1e18


class WorkerKeys:
    """``keys`` is the current KeySet; ``generation`` counts the publications seen (every fetch the
    supervisor made, whether the keys changed or not)."""

    __slots__ = ("_asked_at", "_changed", "_document", "_pending", "_reporter", "_settings", "_value", "fetched_at",
                 "generation", "keys", "source", "wanted")

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._settings: JwtSettings | None = None
        self._value: JwksState | None = None
        self._document: dict[str, Any] | None = None
        self._changed = asyncio.Event()
        self._asked_at = _NEVER
        self._pending = False  # asked, and no publication since
        self.keys = KeySet()
        self.generation = 0
        self.fetched_at: float | None = None
        self.source = ""
        self.wanted = 0  # reports sent

    def on_state(self, value: JwksState | None, settings: JwtSettings | None) -> None:
        """A new state version: rebuild the key set if the published document changed."""
        self._settings = settings
        if value is self._value:
            return
        self._value = value
        document = value.document if value is not None else None
        if document != self._document:
            self._document = document
            self.keys = self._build(document)
        self.fetched_at = value.fetched_at if value is not None else None
        self.source = value.source if value is not None else ""
        self.generation += 1
        self._pending = False
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # wakes every waiter; later ones wait on the new event

    @staticmethod
    def _build(document: dict[str, Any] | None) -> KeySet:
        if document is None:
            return KeySet()
        try:
            return KeySet.from_jwks(document)
        except ValueError as exc:  # the supervisor checked it before publishing: a version mismatch at most
            log.error("the published JWT key set cannot be read (%s); tokens are refused until the next one", exc)
            return KeySet()

    def want(self, kid: str, within: float = 0.0) -> bool:
        """Ask the supervisor to fetch the keys again for ``kid``, once per publication: while an earlier
        ask has no answer yet, nothing more is sent (a flood of unknown kids costs one bus message per
        publication). True when newer keys come within ``within`` seconds: the supervisor fetches at once,
        or defers the fetch until ``min_refresh_interval`` since its last one (the published ``fetched_at``)
        has passed; False when that is further off (waiting would be in vain: the request is refused at
        once, and the deferred fetch still serves the next ones) or without ``auth.jwt``."""
        settings = self._settings
        if settings is None:
            return False
        now = time.monotonic()
        if not (self._pending and now - self._asked_at < settings.min_refresh_interval + 2 * settings.fetch_timeout):
            self._asked_at = now
            self._pending = True
            self.wanted += 1
            self._reporter.send(Kind.KEYS_WANTED, KeysWanted(kid, request_id()))
        age = time.time() - self.fetched_at if self.fetched_at is not None else None
        due = 0.0 if age is None else max(0.0, settings.min_refresh_interval - age)
        return due <= within

    async def newer_than(self, generation: int, timeout: float) -> KeySet:
        """The keys once a publication after ``generation`` arrived, or the current ones at the deadline."""
        deadline = time.monotonic() + timeout
        while self.generation <= generation:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                break
        return self.keys

    async def keys_for(self, kid: str, timeout: float) -> KeySet:
        """The keys to verify a token naming ``kid`` with: the current ones if they hold it, else those of the
        refetch it asks for (waiting at most ``timeout``), else the current ones."""
        if kid and kid in self.keys:
            return self.keys
        generation = self.generation
        if not self.want(kid, timeout):
            return self.keys
        return await self.newer_than(generation, timeout)

    def describe(self) -> dict[str, Any]:
        """For admin status: what this worker verifies tokens with (key ids, never key material)."""
        return {"kids": list(self.keys.kids), "fetched_at": self.fetched_at, "generation": self.generation,
                "refetches_asked": self.wanted}
