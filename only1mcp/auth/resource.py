"""The gateway as an OAuth protected resource: its canonical URI, the metadata that says where tokens come
from, and the authenticator that checks them. Built once per config version in each worker."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from only1mcp.config.models import Settings
from only1mcp.protocol.codec import dumps

from .authenticate import Authenticator, JwtCheck
from .challenge import metadata_url, protected_resource_metadata
from .jwt import JwtVerifier
from .keyset import KeySet

__all__ = ["ProtectedResource", "canonical_resource"]


def canonical_resource(settings: Settings, host: str, port: int) -> str:
    """``auth.resource``, else the URL of /mcp on the address the gateway binds."""
    if settings.auth.resource:
        return settings.auth.resource.rstrip("/")
    shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
    return f"http://{shown}:{port}/mcp"


@dataclass(frozen=True, slots=True)
class ProtectedResource:
    authenticator: Authenticator
    resource: str
    metadata_url: str
    metadata: bytes  # the RFC 9728 document, serialized once

    @classmethod
    def build(cls, settings: Settings, host: str, port: int,
              keys: Callable[[], KeySet]) -> ProtectedResource | None:
        """None while authentication is off. ``keys``: the issuer's keys as last published (they change
        without a new config)."""
        auth = settings.auth
        if not auth.modes:
            return None
        resource = canonical_resource(settings, host, port)
        servers = list(auth.authorization_servers)
        if not servers and auth.jwt is not None:
            servers = [auth.jwt.issuer]
        scopes = list(auth.scopes_supported) or list(auth.required_scopes)
        document = protected_resource_metadata(resource, servers, scopes)
        check: JwtCheck | None = None
        if auth.jwt is not None and "jwt" in auth.modes:
            verify = JwtVerifier(auth.jwt, resource).verify
            check = lambda token, now: verify(token, keys(), now)  # noqa: E731 (one line, closes over both)
        return cls(Authenticator(auth, check, keys), resource, metadata_url(resource), dumps(document))
