"""The `auth` section: who may use the gateway, and how they prove it."""

from __future__ import annotations

import re
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .fields import LIVE, SENSITIVE, _hint, _Strict, loopback

__all__ = ["ASYMMETRIC_ALGORITHMS", "HMAC_ALGORITHMS", "ApiKey", "AuthMode", "AuthSettings", "JwtAlgorithm",
           "JwtSettings", "url_problem"]

AuthMode = Literal["none", "jwt", "api_key"]
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ApiKey(_Strict):
    """One API key, known by the SHA-256 of its value only (``printf %s "$KEY" | sha256sum``)."""

    name: str = Field(min_length=1, max_length=128, description="Who holds the key: the principal's name in "
                      "the audit log, rate limits and sessions.",
                      json_schema_extra=_hint("write a name for the key's holder, e.g. ci-bot"))
    sha256: Annotated[str, SENSITIVE] = Field(
        description="Lower-case hex SHA-256 of the key. The key itself is never written in config.",
        json_schema_extra=_hint('write the output of: printf %s "$KEY" | sha256sum'))
    roles: list[str] = Field(default_factory=list, description="Roles of the key's holder (see `rbac`).")

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        value = value.strip().lower()
        if not _SHA256.match(value):
            raise PydanticCustomError("sha256", "sha256 must be 64 hexadecimal characters (the SHA-256 of the key, "
                                                "not the key itself)")
        return value


JwtAlgorithm = Literal["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                       "HS256", "HS384", "HS512"]
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"})

_CLAIM_PATH = r"^[A-Za-z0-9_:/-]+(\.[A-Za-z0-9_:/-]+)*$"
def url_problem(url: str, what: str) -> str | None:
    """Why ``url`` may not be where keys come from, or None. Keys fetched over plain HTTP from another machine
    could be swapped by anyone on the path, and with them every token: https is required except on loopback
    (a provider on this machine, or in tests)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{what} '{url}' is not an http(s) URL"
    if parts.scheme == "http" and not loopback(parts.hostname):
        return f"{what} '{url}' must use https: keys fetched over plain http can be replaced on the way"
    if parts.fragment or (parts.query and what == "issuer"):  # OpenID Connect: an issuer has neither
        return f"{what} '{url}' may not carry a query or fragment"
    return None


def _trusted_url(url: str, what: str) -> str:
    problem = url_problem(url, what)
    if problem is not None:
        raise PydanticCustomError("jwt_url", "{problem}", {"problem": problem})
    return url


class JwtSettings(_Strict):
    """Bearer JWTs from an OAuth 2.1 / OpenID Connect provider, verified against its published keys."""

    issuer: str = Field(
        description="The provider's issuer identifier: tokens must carry exactly this `iss`. Without `jwks_uri` "
        "the keys are found through its OpenID Connect discovery document (then RFC 8414's "
        "/.well-known/oauth-authorization-server).",
        json_schema_extra=_hint("write the issuer URL exactly as tokens carry it, e.g. "
                                "https://login.example.com/realms/main (https, or http on loopback)"),
    )
    jwks_uri: str | None = Field(
        None,
        description="Where the provider publishes its signing keys (JWKS). Default: from discovery.",
        json_schema_extra=_hint("write the JWKS URL, e.g. https://login.example.com/keys, or leave it out"),
    )
    audience: str | None = Field(
        None,
        description="The `aud` value tokens must contain. Default: the gateway's canonical resource URI, as the "
        "MCP authorization spec asks (RFC 8707).",
        json_schema_extra=_hint("write the audience your provider puts in tokens for this gateway"),
    )
    algorithms: list[JwtAlgorithm] = Field(
        default_factory=lambda: ["RS256", "ES256", "PS256"],
        min_length=1,
        description="Signature algorithms accepted; any other (and `none`) is refused. HS256/HS384/HS512 only "
        "together with `shared_secret`: a JWKS key is never used as an HMAC secret.",
        json_schema_extra=_hint("list algorithms from RS256 RS384 RS512 PS256 PS384 PS512 ES256 ES384 ES512 "
                                "(HS256 HS384 HS512 with shared_secret)"),
    )
    shared_secret: Annotated[str | None, SENSITIVE] = Field(
        None,
        min_length=32,
        description="The secret of HMAC-signed tokens (HS256/384/512), for providers that sign with a shared "
        "secret. Never shown.",
        json_schema_extra=_hint("write at least 32 random characters, e.g. from ${JWT_SECRET}"),
    )
    leeway: float = Field(
        30.0, ge=0, le=600,
        description="Seconds of clock difference allowed when checking `exp` and `nbf`.",
        json_schema_extra=_hint("write seconds from 0 to 600, e.g. 30"),
    )
    roles_claim: str = Field(
        "roles",
        pattern=_CLAIM_PATH,
        description="The claim holding the caller's roles, a dotted path for nested claims (Keycloak: "
        "`realm_access.roles`); a list of strings or a space-separated string.",
        json_schema_extra=_hint("write a claim name or dotted path, e.g. roles or realm_access.roles"),
    )
    refresh_interval: float = Field(
        300.0, ge=1, le=86400,
        description="Seconds between fetches of the provider's keys (removed keys stop working after the next).",
        json_schema_extra=_hint("write seconds from 1 to 86400, e.g. 300"),
    )
    min_refresh_interval: float = Field(
        10.0, ge=1, le=3600,
        description="A token signed by a key not yet known makes the gateway fetch the keys again, unless it "
        "fetched them less than this many seconds ago (one fetch for all workers together).",
        json_schema_extra=_hint("write seconds from 1 up to refresh_interval, e.g. 10"),
    )
    fetch_timeout: float = Field(
        10.0, gt=0, le=120,
        description="Seconds one fetch of the discovery document or the keys may take.",
        json_schema_extra=_hint("write seconds > 0, e.g. 10"),
    )

    @field_validator("issuer")
    @classmethod
    def _issuer_url(cls, issuer: str) -> str:
        return _trusted_url(issuer, "issuer")

    @field_validator("jwks_uri")
    @classmethod
    def _jwks_url(cls, url: str | None) -> str | None:
        return None if url is None else _trusted_url(url, "jwks_uri")

    @model_validator(mode="after")
    def _consistent(self) -> JwtSettings:
        hmac = sorted(HMAC_ALGORITHMS.intersection(self.algorithms))
        if hmac and self.shared_secret is None:
            raise PydanticCustomError(
                "jwt_hmac_secret",
                "algorithms lists {hmac} but no shared_secret is set; HMAC tokens are verified only with a "
                "configured secret (never with the provider's public keys). Set shared_secret or remove {hmac}",
                {"hmac": ", ".join(hmac)})
        if self.shared_secret is not None and ("-----BEGIN" in self.shared_secret
                                               or self.shared_secret.startswith(("ssh-", "ecdsa-"))):
            raise PydanticCustomError(
                "jwt_secret_is_key",
                "shared_secret holds a public or private key; an HMAC secret must be random text known only to "
                "the provider and the gateway (a public key as HMAC secret would let anyone sign tokens)", {})
        if self.shared_secret is not None and not hmac:
            raise PydanticCustomError(
                "jwt_unused_secret",
                "shared_secret is set but algorithms lists none of HS256, HS384, HS512; add the one your provider "
                "signs with, or remove shared_secret", {})
        if self.min_refresh_interval > self.refresh_interval:
            raise PydanticCustomError(
                "jwt_refresh_order",
                "min_refresh_interval ({low}) must not be larger than refresh_interval ({high})",
                {"low": self.min_refresh_interval, "high": self.refresh_interval})
        return self

    def claim_path(self) -> tuple[str, ...]:
        return tuple(self.roles_claim.split("."))


class AuthSettings(_Strict):
    """Authentication of clients. Env: ``ONLY1MCP_AUTH__<KEY>``."""

    mode: Annotated[AuthMode | list[Literal["jwt", "api_key"]], LIVE] = Field(
        "none", description="`none`, `jwt`, `api_key`, or both as a list (`[jwt, api_key]`). `none` is refused "
        "when the gateway binds a non-loopback address, unless `allow_unauthenticated` is true.",
        json_schema_extra=_hint("write none, jwt, api_key, or [jwt, api_key]"))
    allow_unauthenticated: Annotated[bool, LIVE] = Field(
        False, description="Serve clients without credentials on a non-loopback address, on purpose.")
    api_keys: Annotated[list[ApiKey], LIVE] = Field(
        default_factory=list, description="API keys, sent as `Authorization: Bearer <key>` or `X-API-Key`.")
    jwt: Annotated[JwtSettings | None, LIVE] = Field(
        None,
        description="The provider whose bearer JWTs are accepted when `mode` includes jwt (see `auth.jwt`). Its keys "
        "are fetched whenever this is set (ready when a reload turns jwt on); a change fetches them again.",
    )
    resource: Annotated[str | None, LIVE] = Field(
        None, description="The gateway's canonical resource URI, as clients reach it (e.g. "
        "`https://mcp.example.com/mcp`): the audience tokens must name, and the `resource` of the Protected "
        "Resource Metadata. Default: `http://<server.host>:<server.port>/mcp`.",
        json_schema_extra=_hint("write the https URL clients use for /mcp"))
    authorization_servers: Annotated[list[str], LIVE] = Field(
        default_factory=list, description="Authorization servers announced in the Protected Resource Metadata. "
        "Default: the JWT issuer.")
    scopes_supported: Annotated[list[str], LIVE] = Field(
        default_factory=list, description="Scopes announced in the Protected Resource Metadata.")
    required_scopes: Annotated[list[str], LIVE] = Field(
        default_factory=list, description="Scopes every JWT must carry; one without them gets 403 "
        "`insufficient_scope`. (API keys carry no scopes and are not checked.)")
    token_cache: Annotated[int, LIVE] = Field(
        10_000, ge=0, le=1_000_000, description="Verified tokens each worker remembers until they expire.",
        json_schema_extra=_hint("write a whole number, e.g. 10000"))

    @model_validator(mode="after")
    def _jwt_has_an_issuer(self) -> AuthSettings:
        if "jwt" in self.modes and self.jwt is None:
            raise PydanticCustomError(
                "jwt_without_issuer", "auth.mode includes jwt but auth.jwt is not set; add auth.jwt with at least "
                "the issuer (e.g. jwt: {issuer: https://login.example.com/realms/main})", {})
        return self

    @property
    def modes(self) -> frozenset[str]:
        """The credential kinds accepted (empty: authentication is off)."""
        if isinstance(self.mode, list):
            return frozenset(self.mode)
        return frozenset() if self.mode == "none" else frozenset({self.mode})
