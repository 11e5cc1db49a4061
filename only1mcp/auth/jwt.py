"""Verification of bearer JWTs (RFC 7519, JWS compact form) against the provider's published keys.

What is refused, and why it matters: ``alg: none`` and any algorithm not allow-listed (an attacker chooses
the header); HMAC algorithms unless a shared secret is configured, and then only with that secret (a
provider's public key used as an HMAC secret lets anyone sign); a key whose type does not fit the
algorithm. Then ``exp``/``nbf`` (with ``leeway``), ``iss`` and ``aud``. The header is parsed once, the key
found by ``kid``, the claims read only after the signature holds; nothing here touches the network.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import orjson
from jose.backends.cryptography_backend import CryptographyHMACKey

from only1mcp.config.auth import HMAC_ALGORITHMS, JwtSettings

from .keyset import KeyEntry, KeySet, SignatureCheck
from .principal import AuthMethod, Principal

__all__ = ["JwtVerifier", "KeySet", "TokenRefused", "UnknownKey"]

_MAX_TOKEN = 16 * 1024  # characters; far above any provider's tokens, bounds the work a stranger can ask for
_COMPACT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_PRINTABLE = re.compile(r"[\x20-\x7e]{0,64}")


class TokenRefused(Exception):
    """A bearer token that does not authenticate anyone. ``error`` is the RFC 6750 error code;
    ``description`` says what is wrong, in words safe to send back (never the token itself)."""

    error = "invalid_token"

    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


class UnknownKey(TokenRefused):
    """The token names a key (``kid``) the current key set does not hold: the provider may have rotated
    its keys since they were fetched, so the caller may ask for a refetch and verify again."""

    def __init__(self, kid: str) -> None:
        named = f"key '{_shown(kid)}'" if kid else "a key it does not name (no kid)"
        super().__init__(f"the token is signed with {named}, which the issuer does not publish")
        self.kid = kid


def _shown(value: object) -> str:
    """A value from the token, fit to quote in an answer: printable ASCII, at most 64 characters."""
    text = value if isinstance(value, str) else repr(value)
    return text if _PRINTABLE.fullmatch(text) else "(unprintable or too long)"


def _when(timestamp: float) -> str:
    try:
        return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):  # a date past what the platform can show: the number itself
        return repr(timestamp)


def _decode(part: str, what: str) -> Any:
    try:
        return orjson.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except ValueError:  # binascii.Error and orjson.JSONDecodeError are both ValueErrors
        raise TokenRefused(f"the token's {what} is not base64url-encoded JSON") from None


def _split(token: str) -> tuple[dict[str, Any], bytes, bytes, str]:
    """(header, signing input, signature, encoded claims) of a JWS in compact form."""
    if len(token) > _MAX_TOKEN:
        raise TokenRefused(f"the token is {len(token)} characters long; at most {_MAX_TOKEN} are accepted")
    if not _COMPACT.fullmatch(token):
        if token.count(".") == 4:
            raise TokenRefused("encrypted tokens (JWE) are not accepted; send a signed JWT")
        raise TokenRefused("the token is not a JWT: expected three base64url parts separated by dots")
    header_part, claims_part, signature_part = token.split(".")
    header = _decode(header_part, "header")
    if not isinstance(header, dict):
        raise TokenRefused("the token's header is not a JSON object")
    try:
        signature = base64.urlsafe_b64decode(signature_part + "=" * (-len(signature_part) % 4))
    except ValueError:  # a length no base64 text has
        raise TokenRefused("the token's signature is not base64url") from None
    return header, f"{header_part}.{claims_part}".encode("ascii"), signature, claims_part


def _strings(value: Any, claim: str) -> frozenset[str]:
    """A claim holding names: a list of strings, or one space-separated string; absent means none."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return frozenset(value)
    raise TokenRefused(f"the token's {claim} claim must be a list of strings or a space-separated string")


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRefused(f"the token's {name} claim must be a number of seconds since 1970")
    return float(value)


def _entry_for(kid: Any, keys: KeySet) -> KeyEntry:
    """The key a token names; a token without a kid may use the only key of a set that has one."""
    if isinstance(kid, str):
        entry = keys.get(kid)
        if entry is None:
            raise UnknownKey(kid)
        return entry
    if kid is not None:
        raise TokenRefused("the token's kid is not a string")
    entry = keys.only()
    if entry is not None:
        return entry
    if not len(keys):
        raise UnknownKey("")
    raise TokenRefused(f"the token names no key (kid) and the issuer publishes {len(keys)}")


class JwtVerifier:
    """Checks tokens against ``settings`` and a key set; ``resource`` (the gateway's canonical resource URI)
    is the audience expected unless ``settings.audience`` names another. Built once per config."""

    __slots__ = ("_allowed", "_audience", "_hmac", "_issuer", "_leeway", "_roles", "_roles_claim")

    def __init__(self, settings: JwtSettings, resource: str) -> None:
        self._allowed = frozenset(settings.algorithms)
        self._issuer = settings.issuer
        self._audience = settings.audience or resource
        self._leeway = settings.leeway
        self._roles = settings.claim_path()
        self._roles_claim = settings.roles_claim
        secret = settings.shared_secret
        # Only the configured secret ever verifies an HMAC token: never a key from the JWKS.
        self._hmac: dict[str, SignatureCheck] = {} if secret is None else {
            alg: CryptographyHMACKey(secret, alg) for alg in HMAC_ALGORITHMS & self._allowed}

    def verify(self, token: str, keys: KeySet, now: float) -> Principal:
        """The principal ``token`` authenticates at wall-clock time ``now``; raises TokenRefused (UnknownKey
        when its ``kid`` is not in ``keys``)."""
        header, signing_input, signature, claims_part = _split(token)
        check = self._check_for(header, keys)
        if not check.verify(signing_input, signature):
            raise TokenRefused("the token's signature does not verify")
        claims = _decode(claims_part, "payload")
        if not isinstance(claims, dict):
            raise TokenRefused("the token's payload is not a JSON object")
        return self._principal(claims, now)

    def _check_for(self, header: Mapping[str, Any], keys: KeySet) -> SignatureCheck:
        alg = header.get("alg")
        if not isinstance(alg, str):
            raise TokenRefused("the token's header names no algorithm (alg)")
        if alg not in self._allowed:
            if alg.lower() == "none":
                raise TokenRefused("unsigned tokens (alg none) are never accepted")
            raise TokenRefused(f"algorithm {_shown(alg)} is not accepted; accepted: {', '.join(sorted(self._allowed))}")
        if "crit" in header:  # RFC 7515 §4.1.11: extensions we do not understand make the token invalid
            raise TokenRefused("the token's header lists critical extensions (crit), which are not supported")
        if alg in HMAC_ALGORITHMS:
            return self._hmac[alg]
        entry = _entry_for(header.get("kid"), keys)
        check = entry.checks.get(alg)
        if check is None:
            bound = f" bound to {entry.alg}" if entry.alg else ""
            raise TokenRefused(f"key '{_shown(entry.kid)}' is a {entry.family} key{bound}; it cannot verify {alg}")
        return check

    def _principal(self, claims: dict[str, Any], now: float) -> Principal:
        expires = self._check_time(claims, now)
        if claims.get("iss") != self._issuer:
            raise TokenRefused(f"the token's issuer (iss) {_shown(claims.get('iss'))} is not {self._issuer}")
        self._check_audience(claims.get("aud"))
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise TokenRefused("the token has no subject (sub)")
        roles = self._roles_of(claims)
        scope = claims.get("scope")
        scopes = _strings(scope, "scope") if scope is not None else _strings(claims.get("scp"), "scp")
        return Principal(subject, AuthMethod.JWT, roles, scopes, expires)

    def _check_time(self, claims: Mapping[str, Any], now: float) -> float:
        expires = _number(claims, "exp")
        if expires is None:
            raise TokenRefused("the token has no expiry (exp)")
        if now > expires + self._leeway:
            raise TokenRefused(f"the token expired at {_when(expires)}")
        not_before = _number(claims, "nbf")
        if not_before is not None and now + self._leeway < not_before:
            raise TokenRefused(f"the token is not valid before {_when(not_before)}")
        return expires

    def _check_audience(self, audience: Any) -> None:
        if isinstance(audience, str):
            audiences = (audience,)
        elif isinstance(audience, list) and all(isinstance(item, str) for item in audience):
            audiences = tuple(audience)
        elif audience is None:
            raise TokenRefused(f"the token has no audience (aud); it must include {self._audience}")
        else:
            raise TokenRefused("the token's aud claim must be a string or a list of strings")
        if self._audience not in audiences:
            raise TokenRefused(f"the token is for another audience; it must include {self._audience}")

    def _roles_of(self, claims: Mapping[str, Any]) -> frozenset[str]:
        value: Any = claims
        for step in self._roles:
            value = value.get(step) if isinstance(value, dict) else None
        return _strings(value, self._roles_claim)
