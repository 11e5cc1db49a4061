"""This worker's copy of the gateway's access tokens for backends with ``oauth``, and the way to ask for a new one.

The supervisor publishes each backend's token (``Namespace.TOKENS``); transports read the current one on
every request. When a backend answers 401, the transport asks here for a token other than the one refused:
the worker reports ``TOKEN_REFUSED`` (once per refused token; the supervisor fetches once for every
worker) and the request waits, with a deadline, for the next publication. A worker that asked and got
nothing in time does not make later requests wait again for that token until ``min_refresh_interval``
has passed: while the token endpoint is down, calls fail at once with an error saying so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from only1mcp.backends.credentials import Credentials
from only1mcp.bus import Kind, Reporter
from only1mcp.bus.messages import BackendTokenRefused
from only1mcp.bus.state import BackendToken
from only1mcp.config.oauth import OAuthClient
from only1mcp.observe.scope import request_id

__all__ = ["WorkerTokens"]

_NONE: Mapping[str, BackendToken] = MappingProxyType({})


class _Ask:
    """The last time this worker asked for a backend's token to be replaced."""

    __slots__ = ("at", "in_vain", "serial")

    def __init__(self, serial: int, at: float) -> None:
        self.serial = serial
        self.at = at
        self.in_vain = False  # a request waited for the answer and none came in time


class WorkerTokens:
    """``current(name)`` is a dictionary lookup; ``renewed`` is for a backend's 401."""

    __slots__ = ("_asks", "_changed", "_reporter", "_tokens", "reports")

    def __init__(self, reporter: Reporter) -> None:
        self._reporter = reporter
        self._tokens = _NONE
        self._changed = asyncio.Event()
        self._asks: dict[str, _Ask] = {}
        self.reports = 0  # TOKEN_REFUSED sent

    def on_state(self, tokens: Mapping[str, BackendToken]) -> None:
        """A new state version: wake the requests waiting for a new token if any changed."""
        if tokens is self._tokens:
            return
        self._tokens = tokens
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def current(self, name: str) -> BackendToken | None:
        token = self._tokens.get(name)
        return token if token is not None and token.expires_at > time.time() else None

    async def renewed(self, name: str, refused: BackendToken | None, client: OAuthClient,
                      wait: float) -> BackendToken | None:
        """A valid token other than ``refused`` (None: any), or None after ``wait`` seconds."""
        serial = refused.serial if refused is not None else 0
        token = self.current(name)
        if token is not None and token.serial != serial:
            return token  # already replaced
        now = time.monotonic()
        ask = self._asks.get(name)
        if ask is None or ask.serial != serial or now - ask.at >= client.min_refresh_interval:
            ask = self._asks[name] = _Ask(serial, now)
            self.reports += 1
            self._reporter.send(Kind.TOKEN_REFUSED, BackendTokenRefused(name, serial, request_id()))
        elif ask.in_vain:
            return None  # asked a moment ago and nothing came: do not make this request wait as well
        deadline = now + wait
        while True:
            token = self.current(name)
            if token is not None and token.serial != serial:
                return token
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                ask.in_vain = True
                return None
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                continue

    def credentials(self, name: str, client: OAuthClient | None) -> Credentials | None:
        """What a transport to backend ``name`` uses (None: it has no ``oauth``)."""
        return _WorkerCredentials(self, name, client) if client is not None else None

    def describe(self) -> dict[str, Any]:
        """For admin status: which token (by serial) this worker sends to each backend; never the token."""
        return {name: {"serial": token.serial, "expires_at": token.expires_at}
                for name, token in sorted(self._tokens.items())}


class _WorkerCredentials:
    __slots__ = ("_client", "_tokens", "backend", "wait")

    def __init__(self, tokens: WorkerTokens, backend: str, client: OAuthClient) -> None:
        self._tokens = tokens
        self._client = client
        self.backend = backend
        # bounded: a fetch may have to wait out min_refresh_interval, then take up to fetch_timeout
        self.wait = client.fetch_timeout + client.min_refresh_interval

    def current(self) -> BackendToken | None:
        return self._tokens.current(self.backend)

    async def renewed(self, refused: BackendToken | None) -> BackendToken | None:
        return await self._tokens.renewed(self.backend, refused, self._client, self.wait)
