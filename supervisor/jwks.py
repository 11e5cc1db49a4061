"""The JWT issuer's signing keys as shared state: fetched by the supervisor, published to every worker.

One fetch serves every worker: on schedule (``auth.jwt.refresh_interval``), and early when a worker meets
a token naming a key it lacks (``KEYS_WANTED``; at most one such fetch per ``min_refresh_interval`` for
all workers together, so a flood of forged kids costs the provider nothing). An issuer that cannot be
reached keeps the last good keys in force and is retried with backoff; a reload that changes
``auth.jwt`` fetches at once (and drops the keys first when the issuer or jwks_uri changed: another
issuer's keys must not verify anything meanwhile).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from only1mcp.background import Background
from only1mcp.backoff import Backoff
from only1mcp.bus import Envelope, Kind, MessageRouter, Namespace, StatePublisher
from only1mcp.bus.messages import KeysWanted
from only1mcp.bus.state import JwksState
from only1mcp.config.auth import JwtSettings
from only1mcp.http.client import Http1Pool
from only1mcp.redact import mask_url

from .oidc_fetch import KeyFetchError, discover_jwks_uri, fetch_keys

__all__ = ["IssuerKeys"]

log = logging.getLogger("only1mcp.supervisor")

_RETRY_BASE = 1.0  # seconds before the first retry of a failed fetch, doubling up to the refresh interval
_RETRY_CAP = 60.0


_WANTED_KEPT = 64


class IssuerKeys:
    """Keeps ``Namespace.JWKS`` current for ``auth.jwt``; nothing is published while it is unset."""

    __slots__ = ("_deferred", "_first", "_http", "_last_fetch", "_publisher", "_resolved", "_settings", "_task",
                 "_tasks", "_wake", "_wanted_kids", "deferred", "failing", "fetched_at", "fetches", "kids",
                 "last_error", "last_error_at", "next_at", "refetches", "refused", "rejected", "source")

    def __init__(self, publisher: StatePublisher) -> None:
        self._publisher = publisher
        self._settings: JwtSettings | None = None
        self._http: Http1Pool | None = None
        self._tasks = Background("jwks")
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._first = asyncio.Event()
        self._resolved: str | None = None  # the jwks_uri discovery found
        self._last_fetch = -1e18  # monotonic time the last fetch started
        self.source = ""
        self.kids: tuple[str, ...] = ()
        self.rejected: dict[str, str] = {}
        self.fetched_at: float | None = None
        self.next_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.failing = False
        self.fetches = 0  # attempts, good or not
        self.refetches = 0  # early fetches a worker's unknown kid caused
        self.refused = 0  # unknown-kid reports not acted on (a refetch already due, or failing)
        self.deferred = 0  # unknown-kid reports within min_refresh_interval: fetched when it has passed
        self._deferred: asyncio.TimerHandle | None = None
        self._wanted_kids: set[str] = set()  # unknown kids reported while a refetch is deferred (bounded)

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.KEYS_WANTED, self._wanted)

    # ------------------------------------------------------------ configuration

    def apply(self, settings: JwtSettings | None) -> None:
        """Follow the (re)loaded ``auth.jwt``: an unchanged one keeps running, any change fetches at once."""
        old, self._settings = self._settings, settings
        if settings is None and old is None:
            self._first.set()  # nothing to fetch: "ready" need not wait for keys
            return
        if settings == old and self._task is not None and not self._task.done():
            return
        if self._task is not None:
            self._task.cancel()
            self._task = None
        same_source = old is not None and settings is not None and (old.issuer, old.jwks_uri) == (
            settings.issuer, settings.jwks_uri)
        if not same_source:
            self._forget()
        self._first.clear()
        if settings is None:
            self._first.set()
            return
        if self._http is None:
            self._http = Http1Pool(settings.fetch_timeout)
        self._task = self._tasks.spawn(self._run(settings), "fetch")

    def _forget(self) -> None:
        """Keys of an issuer no longer configured: out of every worker, before anything else is fetched."""
        self._publisher.set(Namespace.JWKS, "", None)
        self._resolved = None
        self.source, self.kids, self.rejected, self.fetched_at = "", (), {}, None
        self.last_error = self.last_error_at = self.next_at = None
        self.failing = False
        self._last_fetch = -1e18
        self._cancel_deferred()

    def _cancel_deferred(self) -> None:
        if self._deferred is not None:
            self._deferred.cancel()
            self._deferred = None

    async def wait_first(self, timeout: float) -> bool:
        """Until the first fetch for the current settings was tried (good or not); False on timeout."""
        try:
            await asyncio.wait_for(self._first.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # ------------------------------------------------------------ fetching

    async def _run(self, settings: JwtSettings) -> None:
        retry = Backoff(base=_RETRY_BASE, cap=min(_RETRY_CAP, settings.refresh_interval), jitter=0.2)
        while True:
            good = await self._refresh(settings)
            self._first.set()
            if good:
                retry.reset()
                delay = settings.refresh_interval
            else:
                delay = retry.next_delay()
            self.next_at = time.time() + delay
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _refresh(self, settings: JwtSettings) -> bool:
        assert self._http is not None
        self._last_fetch = time.monotonic()
        # Published as the keys' fetch time: workers count min_refresh_interval from it as this does from
        # _last_fetch, and do not ask for a refetch it would refuse.
        started = time.time()
        self.fetches += 1
        try:
            uri = settings.jwks_uri or self._resolved or await discover_jwks_uri(
                self._http, settings.issuer, settings.fetch_timeout)
            self._resolved = None if settings.jwks_uri else uri
            document, keys = await fetch_keys(self._http, uri, settings.fetch_timeout)
        except KeyFetchError as exc:
            self._resolved = None  # discover again next time: the provider may have moved its keys
            self._failed(str(exc))
            return False
        fetched_at = started
        self._publisher.set(Namespace.JWKS, "", JwksState(uri, fetched_at, document))
        if keys.kids != self.kids or self.failing or uri != self.source:
            log.info("JWT keys of %s: %s (from %s)", settings.issuer, ", ".join(keys.kids), mask_url(uri))
        if keys.rejected and keys.rejected != self.rejected:
            log.warning("JWT keys of %s: left out %s", settings.issuer,
                        "; ".join(f"{kid} ({why})" for kid, why in keys.rejected.items()))
        self.source, self.kids, self.rejected, self.fetched_at = uri, keys.kids, dict(keys.rejected), fetched_at
        self.failing = False
        return True

    def _failed(self, error: str) -> None:
        kept = f"keeping the {len(self.kids)} keys fetched before" if self.kids else "no keys yet: JWTs are refused"
        if not self.failing:  # once when it starts failing, not once per retry (admin status shows the latest)
            log.warning("cannot fetch the JWT issuer's keys: %s; %s, retrying with backoff", error, kept)
        else:
            log.debug("still cannot fetch the JWT issuer's keys: %s", error)
        self.last_error, self.last_error_at, self.failing = error, time.time(), True

    # ------------------------------------------------------------ workers' reports

    def _wanted(self, envelope: Envelope) -> None:
        wanted = envelope.payload
        assert isinstance(wanted, KeysWanted)
        settings = self._settings
        if settings is None or (wanted.kid and wanted.kid in self.kids):
            return  # nothing configured, or already published: that worker's copy is on its way
        if self.failing:
            self.refused += 1  # the retry schedule is on it
            return
        if self._deferred is not None:  # a refetch is already due: it will look for this kid too
            if len(self._wanted_kids) < _WANTED_KEPT:
                self._wanted_kids.add(wanted.kid)
            return
        wait = self._last_fetch + settings.min_refresh_interval - time.monotonic()
        if wait > 0:
            # Deferred, not dropped: the key may have been added at the issuer since the last fetch, and the
            # requests that named it wait for the next publication. Still one fetch per interval.
            self.deferred += 1
            log.debug("unknown JWT key %r from worker pid %d: fetching the keys again in %.1fs (min_refresh_"
                      "interval)", _shown(wanted.kid), envelope.sender.pid, wait)
            self._wanted_kids = {wanted.kid}
            self._deferred = asyncio.get_running_loop().call_later(wait, self._refetch_deferred)
            return
        self._refetch(wanted.kid)

    def _refetch_deferred(self) -> None:
        self._deferred = None
        missing = sorted(kid for kid in self._wanted_kids if kid not in self.kids)
        self._wanted_kids = set()
        if missing and self._settings is not None:  # (a scheduled fetch may have brought them meanwhile)
            self._refetch(missing[0])

    def _refetch(self, kid: str) -> None:
        self.refetches += 1
        self._last_fetch = time.monotonic()  # reports arriving before the loop wakes are within the limit too
        log.info("a token names JWT key %r, which the keys fetched do not hold: fetching them again", _shown(kid))
        self._wake.set()

    # ------------------------------------------------------------ status

    def describe(self) -> dict[str, Any]:
        """For admin status: key ids, never key material."""
        if self._settings is None:
            return {"configured": False}
        return {
            "configured": True,
            "issuer": self._settings.issuer,
            "source": mask_url(self.source) if self.source else None,
            "state": "failing" if self.failing else ("ok" if self.fetched_at is not None else "starting"),
            "kids": list(self.kids),
            "rejected": self.rejected,
            "fetched_at": self.fetched_at,
            "next_fetch_at": self.next_at,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            # before this wall-clock time a worker's unknown kid causes no immediate fetch (min_refresh_interval)
            "refetch_after": time.time() + max(0.0, self._last_fetch + self._settings.min_refresh_interval
                                               - time.monotonic()),
            "fetches": self.fetches,
            "refetches": self.refetches,
            "refetches_deferred": self.deferred,
            "refetches_refused": self.refused,
        }

    async def close(self) -> None:
        self._cancel_deferred()
        await self._tasks.close()
        if self._http is not None:
            self._http.close()


def _shown(kid: str) -> str:
    """A kid as logged: whoever sends a token chooses it, up to the token's length (16 KiB)."""
    return kid if len(kid) <= 64 else kid[:64] + "…"
