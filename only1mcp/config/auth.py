"""The `auth` section: who may use the gateway, and how they prove it."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from .fields import LIVE, SENSITIVE, _hint, _Strict

__all__ = ["ApiKey", "AuthMode", "AuthSettings"]

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

    @property
    def modes(self) -> frozenset[str]:
        """The credential kinds accepted (empty: authentication is off)."""
        if isinstance(self.mode, list):
            return frozenset(self.mode)
        return frozenset() if self.mode == "none" else frozenset({self.mode})
