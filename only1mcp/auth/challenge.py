"""What a refused client is told: the `WWW-Authenticate` challenge of RFC 6750 / the MCP authorization
spec, and the Protected Resource Metadata (RFC 9728) that names where to get a token."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = ["metadata_url", "protected_resource_metadata", "www_authenticate"]

WELL_KNOWN = "/.well-known/oauth-protected-resource"


def metadata_url(resource: str) -> str:
    """Where the metadata of ``resource`` is served: the well-known path with the resource's path as suffix
    (RFC 9728 section 3.1), e.g. https://h/mcp -> https://h/.well-known/oauth-protected-resource/mcp."""
    parts = urlsplit(resource)
    path = parts.path.rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, WELL_KNOWN + path, "", ""))


def _quoted(value: str) -> str:
    # An auth-param value is a quoted-string: backslash and double quote escaped, no line breaks.
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\r", " ").replace("\n", " ") + '"'


def www_authenticate(metadata: str, error: str | None = None, description: str | None = None,
                     scope: str | None = None) -> str:
    """The challenge: always the metadata URL; ``error`` (invalid_token, insufficient_scope) once a
    credential was presented and refused."""
    params = [f"resource_metadata={_quoted(metadata)}"]
    if error is not None:
        params.append(f"error={_quoted(error)}")
    if description is not None:
        params.append(f"error_description={_quoted(description)}")
    if scope is not None:
        params.append(f"scope={_quoted(scope)}")
    return "Bearer " + ", ".join(params)


def protected_resource_metadata(resource: str, authorization_servers: list[str],
                                scopes: list[str]) -> dict[str, Any]:
    document: dict[str, Any] = {"resource": resource, "bearer_methods_supported": ["header"]}
    if authorization_servers:
        document["authorization_servers"] = authorization_servers
    if scopes:
        document["scopes_supported"] = scopes
    return document
