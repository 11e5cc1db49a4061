"""One backend's access token: fetched, published, refreshed before it expires, fetched again on a refusal.

The token is replaced once ``oauth.refresh_at`` of its lifetime has passed (at least a second after the
fetch), so calls never carry an expired one. A backend that refuses it (a worker's ``TOKEN_REFUSED``, or
the supervisor's own discovery or probe) gets one fetch for everyone, never sooner than
``oauth.min_refresh_interval`` after the previous one; refusals of a token already replaced ask nothing.
A token endpoint that fails is retried with backoff while the current token keeps being used until it
expires; then it is withdrawn, and calls fail with an error that points to admin status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from only1mcp.backoff import Backoff
from only1mcp.bus.state import BackendToken
from only1mcp.config.oauth import OAuthClient
from only1mcp.http.client import Http1Pool
from only1mcp.redact import mask_url

from .token_fetch import TokenFetchError, fetch_token

__all__ = ["TokenKeeper"]

log = logging.getLogger("only1mcp.supervisor")

_UNKNOWN_LIFETIME = 3600.0  # seconds a token is taken to last when the endpoint gives no expires_in
_SOONEST = 1.0  # seconds after a fetch before the next scheduled one, however short the lifetime
_RETRY_BASE, _RETRY_CAP = 1.0, 60.0


class TokenKeeper:
    """Keeps ``token`` current for one backend; ``publish`` puts it into the shared state (None withdraws)."""

    __slots__ = ("_changed", "_early", "_http", "_last_fetch", "_publish", "_serials", "_wake", "backend", "client",
                 "deferred", "failing", "fetched_at", "fetches", "fetching", "last_error", "last_error_at", "next_at",
                 "refetches", "task", "token", "tried")

    def __init__(self, backend: str, client: OAuthClient, http: Http1Pool,
                 publish: Callable[[str, BackendToken | None], None], serials: Callable[[], int]) -> None:
        self.backend = backend
        self.client = client
        self._http = http
        self._publish = publish
        self._serials = serials
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._early: float | None = None  # monotonic time a refusal wants the next fetch at
        self._last_fetch = -1e18
        self.token: BackendToken | None = None
        self.tried = asyncio.Event()  # set once the first fetch was tried, good or not
        self.task: asyncio.Task[None] | None = None
        self.fetching = False
        self.failing = False
        self.fetched_at: float | None = None
        self.next_at: float | None = None
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.fetches = 0  # attempts, good or not
        self.refetches = 0  # early fetches a refusal caused
        self.deferred = 0  # refusals that caused no fetch of their own (one was due, running, or retrying)

    # ------------------------------------------------------------ the loop

    async def run(self) -> None:
        retry = Backoff(base=_RETRY_BASE, cap=_RETRY_CAP, jitter=0.2)
        while True:
            lifetime = await self._fetch()
            self.tried.set()
            if lifetime is not None:
                retry.reset()
                delay = max(_SOONEST, lifetime * self.client.refresh_at)
            else:
                delay = retry.next_delay()
            self.next_at = time.time() + delay
            await self._pause(time.monotonic() + delay)

    async def _fetch(self) -> float | None:
        """One fetch; the token's lifetime, or None when it failed."""
        self._last_fetch = time.monotonic()
        self._early = None
        self.fetches += 1
        self.fetching = True
        try:
            grant = await fetch_token(self._http, self.client)
        except TokenFetchError as exc:
            self._failed(str(exc))
            return None
        finally:
            self.fetching = False
        lifetime = grant.expires_in or _UNKNOWN_LIFETIME
        now = time.time()
        first = self.token is None
        self._set(BackendToken(self.backend, grant.access_token, now + lifetime, self._serials()))
        self.fetched_at = now
        level = logging.INFO if first or self.failing else logging.DEBUG
        again = " (the token endpoint answers again)" if self.failing else ""
        log.log(level, "backend '%s': access token from %s, valid for %gs%s", self.backend,
                mask_url(self.client.token_url), lifetime, again)
        self.failing = False
        return lifetime

    def _failed(self, error: str) -> None:
        token = self.current()
        kept = (f"the current token is used until it expires in {token.expires_at - time.time():.0f}s"
                if token is not None else "calls to it fail until a token is fetched")
        if not self.failing:  # once when it starts failing (admin status shows the latest error)
            log.warning("backend '%s': cannot get an access token: %s; %s; retrying with backoff", self.backend,
                        error, kept)
        else:
            log.debug("backend '%s': still cannot get an access token: %s", self.backend, error)
        self.last_error, self.last_error_at, self.failing = error, time.time(), True

    async def _pause(self, due: float) -> None:
        """Until the next fetch is due (or a refusal wants it sooner); withdraws the token when it expires
        meanwhile."""
        while True:
            target = due if self._early is None else min(due, self._early)
            timeout = target - time.monotonic()
            if timeout <= 0:
                return
            token = self.token
            if token is not None:
                left = token.expires_at - time.time()
                if left <= 0:
                    log.warning("backend '%s': its access token expired and no new one could be fetched; calls to it "
                                "fail until one is", self.backend)
                    self._set(None)
                    continue
                timeout = min(timeout, left)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _set(self, token: BackendToken | None) -> None:
        self.token = token
        self._publish(self.backend, token)
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()  # wakes every local waiter; later ones wait on the new event

    # ------------------------------------------------------------ refusals

    def refused(self, serial: int) -> None:
        """A backend answered 401 to token ``serial`` (0: to none): fetch a new one, once for everyone."""
        token = self.current()
        if token is not None and token.serial != serial:
            return  # already replaced (or, for 0, published but not yet seen): the asker gets it from the state
        if self.fetching or self.failing:
            self.deferred += 1  # a fetch is running, or the retry schedule is on it
            return
        when = max(time.monotonic(), self._last_fetch + self.client.min_refresh_interval)
        if self._early is not None and self._early <= when:
            self.deferred += 1
            return
        self.refetches += 1
        self._early = when
        log.info("backend '%s' refused the gateway's access token: fetching a new one%s", self.backend,
                 f" in {when - time.monotonic():.1f}s (oauth.min_refresh_interval)" if when > time.monotonic() else "")
        self._wake.set()

    def current(self) -> BackendToken | None:
        token = self.token
        return token if token is not None and token.expires_at > time.time() else None

    async def another(self, refused: BackendToken | None, timeout: float) -> BackendToken | None:
        """For the supervisor's own discovery and probes: a valid token other than ``refused``, asking for one
        and waiting at most ``timeout`` seconds."""
        serial = refused.serial if refused is not None else 0
        deadline = time.monotonic() + timeout
        self.refused(serial)
        while True:
            token = self.current()
            if token is not None and token.serial != serial:
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    # ------------------------------------------------------------ status

    def describe(self) -> dict[str, Any]:
        """For admin status: never the token, never the secret."""
        token = self.current()
        if token is not None:
            state = "failing" if self.failing else "ok"  # failing: the current token is kept until it expires
        else:
            state = "starting" if self.fetched_at is None and not self.failing else "no_token"
        return {"state": state, "token_url": mask_url(self.client.token_url), "client_id": self.client.client_id,
                "scope": self.client.scope, "fetched_at": self.fetched_at,
                "expires_at": token.expires_at if token is not None else None, "next_fetch_at": self.next_at,
                "last_error": self.last_error, "last_error_at": self.last_error_at, "fetches": self.fetches,
                "refetches": self.refetches, "refusals_deferred": self.deferred}

    def stop(self) -> None:
        """At once: a fetch in flight must not publish the token of a client the config no longer has."""
        if self.task is not None:
            self.task.cancel()
