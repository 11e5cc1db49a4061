"""The gateway's own credentials for a backend, as its transports use them.

A backend with ``oauth`` gets the access token the supervisor fetched (workers read it from the shared
state, the supervisor's own discovery and probes from where it keeps it). A transport sends the current
token with every request; when the backend answers 401 it asks for a token other than the one refused,
sends the request once more with it, and fails the request when that one is refused too. A client's own
credential never reaches a backend: transports send only what the config and these tokens say.
"""

from __future__ import annotations

from typing import Protocol

from only1mcp.bus.state import BackendToken

from .base import BackendUnavailable

__all__ = ["Bearer", "Credentials", "CredentialsRefused"]


class Credentials(Protocol):
    """One backend's access token as this process holds it."""

    backend: str
    wait: float  # seconds ``renewed`` waits at most

    def current(self) -> BackendToken | None:
        """The token to send now; None while none is valid (not fetched yet, or expired while the token
        endpoint fails)."""

    async def renewed(self, refused: BackendToken | None) -> BackendToken | None:
        """A valid token other than ``refused`` (None: any), asking for one if needed and waiting at most
        ``wait`` seconds; None when none came."""


class CredentialsRefused(BackendUnavailable):
    """A backend refused the gateway's access token (HTTP 401), a fresh one too."""


class Bearer:
    """What one transport holds of its backend's credentials: the token its headers carry now.

    The check on every request is one lookup and an identity comparison (``stale``); the header is built
    only when the token changed.
    """

    __slots__ = ("_credentials", "_label", "token")

    def __init__(self, credentials: Credentials, label: str) -> None:
        self._credentials = credentials
        self._label = label
        self.token: BackendToken | None = None

    def stale(self) -> bool:
        """The headers must change: another token is current, or none is valid."""
        token = self._credentials.current()
        return token is None or token is not self.token

    async def header(self) -> str:
        """``Bearer <token>`` with the current token, waiting (bounded) for one when none is valid."""
        token = self._credentials.current()
        if token is None:
            token = await self._credentials.renewed(None)
            if token is None:
                raise BackendUnavailable(
                    f"{self._label} has no valid access token: the gateway could not get one from its oauth.token_url "
                    f"(see oauth.{self._credentials.backend} in admin status)", sent=False)
        self.token = token
        return f"Bearer {token.access_token}"

    async def after_refusal(self) -> str:
        """The backend answered 401 to the token in use: ``Bearer <another token>`` to send the request once
        more with; CredentialsRefused when none came in time."""
        token = await self._credentials.renewed(self.token)
        if token is None:
            raise CredentialsRefused(
                f"{self._label} refused the gateway's access token (HTTP 401) and no new one came from its "
                f"oauth.token_url within {self._credentials.wait:g}s (see oauth.{self._credentials.backend} in "
                "admin status)", sent=False)
        self.token = token
        return f"Bearer {token.access_token}"

    def refused_again(self) -> CredentialsRefused:
        """The error for a 401 to a fresh token: retrying would not help."""
        return CredentialsRefused(
            f"{self._label} refused the gateway's access token (HTTP 401), a fresh one from its oauth.token_url too; "
            "check what the backend expects (oauth.scope, oauth.audience, oauth.resource) and what the client "
            "oauth.client_id may do at the authorization server")
