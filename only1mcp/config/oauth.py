"""``backends[].oauth``: the OAuth 2.0 client credentials the gateway gets its own access token for a backend with.

A client's credential never reaches a backend (the MCP authorization spec forbids passing tokens through):
a backend that wants a bearer token gets one the gateway obtained for itself, with the client credentials
grant (RFC 6749 section 4.4).
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from only1mcp.redact import mask_url

from .fields import SENSITIVE, _hint, _Strict, loopback

__all__ = ["OAuthClient"]

class OAuthClient(_Strict):
    """The gateway as an OAuth client of the backend's authorization server."""

    token_url: str = Field(
        description="The authorization server's token endpoint. The supervisor posts the client credentials "
        "grant there (client_secret_basic) and hands the token to every worker.",
        json_schema_extra=_hint("write the token endpoint URL, e.g. https://login.example.com/oauth2/token "
                                "(https, or http on loopback)"),
    )
    client_id: str = Field(
        min_length=1, max_length=1024, description="The gateway's client id at that server.",
        json_schema_extra=_hint("write the client id the authorization server gave the gateway"),
    )
    client_secret: Annotated[str, SENSITIVE] = Field(
        min_length=1, max_length=4096,
        description="The client secret. Never shown; write it as `${VAR}` to keep it out of the file.",
        json_schema_extra=_hint("write ${NAME} and set NAME in the gateway's environment"),
    )
    scope: str | None = Field(
        None, description="Scopes to ask for, space-separated (the `scope` parameter); default: none asked.",
    )
    audience: str | None = Field(
        None, description="The `audience` parameter some servers (Auth0, Okta) use to pick the API the token "
        "is for; default: not sent.",
    )
    resource: str | None = Field(
        None, description="The backend's resource URI (RFC 8707 `resource` parameter): the audience a token "
        "for it must name; default: not sent.",
        json_schema_extra=_hint("write an absolute URI without a fragment, e.g. https://mcp.example.com/mcp"),
    )
    refresh_at: float = Field(
        0.8, ge=0.1, le=0.95,
        description="A token is replaced once this share of its lifetime (`expires_in`) has passed, so calls "
        "never carry an expired one. A token endpoint that names no lifetime: taken as one hour.",
        json_schema_extra=_hint("write a share from 0.1 to 0.95, e.g. 0.8"),
    )
    min_refresh_interval: float = Field(
        5.0, ge=0.1, le=3600,
        description="A backend answering 401 makes the supervisor fetch a new token (one fetch for all "
        "workers), but never sooner than this many seconds after the previous fetch.",
        json_schema_extra=_hint("write seconds, e.g. 5"),
    )
    fetch_timeout: float = Field(
        10.0, gt=0, le=120, description="Seconds one request to the token endpoint may take.",
        json_schema_extra=_hint("write seconds > 0, e.g. 10"),
    )

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, url: str) -> str:
        parts = urlsplit(url)
        shown = mask_url(url)  # a URL may carry a credential: errors are printed and logged
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError("oauth_url", "token_url '{url}' is not an http(s) URL", {"url": shown})
        if parts.scheme == "http" and not loopback(parts.hostname):
            raise PydanticCustomError(
                "oauth_url", "token_url '{url}' must use https: the client secret and the tokens would cross the "
                "network in clear", {"url": shown})
        if parts.fragment:
            raise PydanticCustomError("oauth_url", "token_url '{url}' may not carry a fragment", {"url": shown})
        return url

    @field_validator("resource")
    @classmethod
    def _resource(cls, resource: str | None) -> str | None:
        if resource is None:
            return None
        parts = urlsplit(resource)
        if not parts.scheme or not (parts.netloc or parts.path) or parts.fragment:
            raise PydanticCustomError(
                "oauth_resource", "resource '{uri}' must be an absolute URI without a fragment (RFC 8707)",
                {"uri": resource})
        return resource
