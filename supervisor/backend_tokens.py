"""The gateway's own access tokens for backends with ``oauth``, as shared state (``Namespace.TOKENS``).

The supervisor is the one OAuth client: one ``TokenKeeper`` per backend fetches, refreshes and publishes its
token, so N workers cost the authorization server one fetch. Workers report a backend's 401 as
``TOKEN_REFUSED``; the supervisor's own discovery and probes use the keepers directly
(``SupervisorCredentials``). A reload that changes a backend's ``oauth`` withdraws the old token and fetches
a new one at once; a removed one is withdrawn.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from only1mcp.backends.credentials import Credentials
from only1mcp.background import Background
from only1mcp.bus import Envelope, Kind, MessageRouter, Namespace, StatePublisher
from only1mcp.bus.messages import BackendTokenRefused
from only1mcp.bus.state import BackendToken
from only1mcp.config.models import Settings
from only1mcp.config.oauth import OAuthClient
from only1mcp.http.client import Http1Pool

from .token_keeper import TokenKeeper

__all__ = ["BackendTokens", "SupervisorCredentials"]

log = logging.getLogger("only1mcp.supervisor")


def oauth_clients(settings: Settings) -> dict[str, OAuthClient]:
    """The enabled backends that have ``oauth``, by name."""
    return {b.name: client for b in settings.enabled_backends() if (client := getattr(b, "oauth", None)) is not None}


class BackendTokens:
    """Runs one TokenKeeper per backend with ``oauth``; ``credentials(name)`` is what this process's own
    transports to that backend use."""

    __slots__ = ("_http", "_keepers", "_publisher", "_serials", "_tasks")

    def __init__(self, publisher: StatePublisher) -> None:
        self._publisher = publisher
        self._keepers: dict[str, TokenKeeper] = {}
        self._serials = itertools.count(1)  # one numbering for every backend: a serial names one fetch
        self._http = Http1Pool()
        self._tasks = Background("backend-tokens")

    def register(self, router: MessageRouter) -> None:
        router.register(Kind.TOKEN_REFUSED, self._refused)

    def apply(self, settings: Settings) -> None:
        """Follow the (re)loaded config: an unchanged ``oauth`` keeps its token, a changed one fetches anew."""
        wanted = oauth_clients(settings)
        for name, keeper in list(self._keepers.items()):
            if wanted.get(name) != keeper.client:
                del self._keepers[name]
                keeper.stop()
                self._publish(name, None)  # the old client's token must not be sent meanwhile
                if name not in wanted:
                    log.info("backend '%s': no oauth any more; its access token is withdrawn", name)
        for name, client in wanted.items():
            if name not in self._keepers:
                keeper = TokenKeeper(name, client, self._http, self._publish, lambda: next(self._serials))
                keeper.task = self._tasks.spawn(keeper.run(), f"token {name}")
                self._keepers[name] = keeper

    def _publish(self, name: str, token: BackendToken | None) -> None:
        self._publisher.set(Namespace.TOKENS, name, token)

    def keeper(self, name: str) -> TokenKeeper | None:
        return self._keepers.get(name)

    def credentials(self, name: str) -> Credentials | None:
        """For this process's transports to backend ``name`` (None: it has no ``oauth``)."""
        keeper = self._keepers.get(name)
        return SupervisorCredentials(self, name, keeper.client) if keeper is not None else None

    async def wait_first(self, timeout: float) -> None:
        """Until every backend's first fetch was tried (good or not), at most ``timeout`` seconds."""
        waits = [keeper.tried.wait() for keeper in self._keepers.values()]
        if waits:
            try:
                await asyncio.wait_for(asyncio.gather(*waits), timeout)
            except TimeoutError:
                log.warning("the first access tokens were not all fetched within %.0fs; starting anyway", timeout)

    def _refused(self, envelope: Envelope) -> None:
        report = envelope.payload
        assert isinstance(report, BackendTokenRefused)
        keeper = self._keepers.get(report.backend)
        if keeper is None:
            log.debug("backend '%s' has no oauth here (a reload may have removed it); refusal from pid %d ignored",
                      report.backend, envelope.sender.pid)
            return
        keeper.refused(report.serial)

    def describe(self) -> dict[str, Any]:
        """For admin status, per backend: state, where tokens come from, times and counts; never a token."""
        return {name: keeper.describe() for name, keeper in sorted(self._keepers.items())}

    async def close(self) -> None:
        await self._tasks.close()
        self._http.close()


class SupervisorCredentials:
    """A backend's token for the supervisor's own transports (discovery, probes), looked up by name on every
    use so a reload's new keeper is used at once."""

    __slots__ = ("_tokens", "backend", "wait")

    def __init__(self, tokens: BackendTokens, backend: str, client: OAuthClient) -> None:
        self._tokens = tokens
        self.backend = backend
        self.wait = client.fetch_timeout + client.min_refresh_interval

    def current(self) -> BackendToken | None:
        keeper = self._tokens.keeper(self.backend)
        return keeper.current() if keeper is not None else None

    async def renewed(self, refused: BackendToken | None) -> BackendToken | None:
        keeper = self._tokens.keeper(self.backend)
        return await keeper.another(refused, self.wait) if keeper is not None else None
