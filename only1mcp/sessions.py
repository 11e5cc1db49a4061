"""Sealed front-door sessions: any worker (or host sharing the secret) validates one with no lookup.

A token is ``base64url(payload || mac)``: payload is msgpack ``[sid, version, capabilities, client,
issued, principal]`` (then the profile of the endpoint it was opened at, when not `/mcp`), mac the first
16 bytes of HMAC-SHA256(secret, payload). It carries what the proxy must remember about a client
(negotiated version, declared capabilities, who it is); it is not encrypted, so it holds nothing secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .auth.principal import Principal

__all__ = ["NOT_ISSUED", "UNKNOWN_SESSION", "InvalidSession", "SessionInfo", "SessionSealer"]

_MAC_BYTES = 16
# A sealed value this gateway did not issue, or issued to someone else: one message for both
NOT_ISSUED = "not issued by this gateway (or issued before a restart)"
RELAYED = ("sampling", "elicitation", "roots")  # what a backend may ask of the client
_CACHE = 8192
_VALUE_DOMAIN = b"only1mcp-value:"
_TAG_DOMAIN = b"only1mcp-tag:"
_TAG_BYTES = 9  # 72 bits: 12 characters of base64url
UNKNOWN_SESSION = "unknown session id (not issued by this gateway, or issued before a restart)"


class InvalidSession(Exception):
    """The token is not one we issued (or no longer valid); the message says which."""


@dataclass(frozen=True, slots=True)
class SessionInfo:
    sid: str
    version: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    issued: int = 0
    principal: str | None = None
    # The profile of the endpoint the session was opened at (`/mcp/<name>`); None for `/mcp`.
    catalog_profile: str | None = None
    # The client-to-server request capabilities this client declared, in a fixed order: the key of the
    # backend sessions that may serve it (derived, not sealed).
    profile: tuple[str, ...] = field(default=(), compare=False)
    # Who sends the request being served (authenticated per request, not sealed; ``principal`` above is
    # the key of the one that opened the session). None while authentication is off.
    caller: Principal | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "profile", tuple(c for c in RELAYED if c in self.capabilities))

    def declares(self, capability: str) -> bool:
        return capability in self.capabilities

    def called_by(self, caller: Principal) -> SessionInfo:
        """This session as seen by one request of ``caller`` (a copy; the sealed fields are the same)."""
        copy = object.__new__(SessionInfo)
        for name in _FIELDS:
            object.__setattr__(copy, name, getattr(self, name))
        object.__setattr__(copy, "caller", caller)
        return copy


_FIELDS = ("sid", "version", "capabilities", "client", "issued", "principal", "catalog_profile", "profile")


class SessionSealer:
    """Seals and opens session tokens with one secret; remembers recently opened tokens."""

    __slots__ = ("_cache", "_secret", "_ttl")

    def __init__(self, secret: bytes, ttl: float) -> None:
        if len(secret) < 16:
            raise ValueError("the session secret must be at least 16 bytes")
        self._secret = secret
        self._ttl = ttl
        self._cache: OrderedDict[str, SessionInfo] = OrderedDict()

    def new(self, version: str, capabilities: dict[str, Any], client: dict[str, Any],
            principal: str | None = None, catalog_profile: str | None = None) -> tuple[str, SessionInfo]:
        info = SessionInfo(os.urandom(12).hex(), version, capabilities, client, int(time.time()), principal,
                           catalog_profile)
        return self.seal(info), info

    def seal(self, info: SessionInfo) -> str:
        fields = [info.sid, info.version, info.capabilities, info.client, info.issued, info.principal]
        if info.catalog_profile is not None:  # (absent for /mcp: those tokens stay as they were)
            fields.append(info.catalog_profile)
        payload = msgpack.packb(fields, use_bin_type=True)
        mac = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()

    def open(self, token: str) -> SessionInfo:
        info = self._cache.get(token)
        if info is None:
            info = self._open(token)
            self._cache[token] = info
            if len(self._cache) > _CACHE:
                self._cache.popitem(last=False)
        if time.time() - info.issued > self._ttl:
            raise InvalidSession("session expired")
        return info

    def _open(self, token: str) -> SessionInfo:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidSession("malformed session id") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        expected = hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise InvalidSession(UNKNOWN_SESSION)
        try:
            sid, version, capabilities, client, issued, principal, *rest = msgpack.unpackb(payload, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            raise InvalidSession("malformed session id") from None
        catalog_profile = rest[0] if rest and isinstance(rest[0], str) else None
        return SessionInfo(sid, version, capabilities or {}, client or {}, issued, principal, catalog_profile)

    # Other sealed values (a 2026-07-28 requestState): MACed under a derived key, so a session token can
    # never pass as one of these or the other way round.

    def tag(self, text: str) -> str:
        """A short MAC of ``text`` (base64url, no ``:``): what binds an id shown to one client (a task's) to
        that client, verifiable by every worker, with nothing stored."""
        mac = hmac.new(self._secret, _TAG_DOMAIN + text.encode("utf-8", "surrogatepass"), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()[:_TAG_BYTES]).decode()

    def seal_value(self, value: list[Any]) -> str:
        payload = msgpack.packb(value, use_bin_type=True)
        mac = hmac.new(self._secret, _VALUE_DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(payload + mac).rstrip(b"=").decode()

    def open_value(self, token: str) -> list[Any]:
        """The sealed list; InvalidSession when the token was not sealed here or was altered."""
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError):
            raise InvalidSession("malformed token") from None
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        expected = hmac.new(self._secret, _VALUE_DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]
        if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, expected):
            raise InvalidSession(NOT_ISSUED)
        try:
            value = msgpack.unpackb(payload, raw=False)
        except (ValueError, TypeError, msgpack.UnpackException):
            raise InvalidSession("malformed token") from None
        if not isinstance(value, list):
            raise InvalidSession("malformed token")
        return value
