"""The provider's signing keys, as one immutable set built once from a JWKS document (RFC 7517).

Each key is parsed into a public key once, and wrapped once for every algorithm its type can verify, so a
token costs a dictionary lookup by ``kid`` and then the signature check. python-jose (cryptography
backend) parses the keys and checks RSA PKCS#1 and ECDSA signatures; RSASSA-PSS, which python-jose lacks,
is cryptography's own PSS check on the same parsed key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import padding
from jose.backends.cryptography_backend import CryptographyECKey, CryptographyRSAKey
from jose.exceptions import JWKError

__all__ = ["KeyEntry", "KeySet", "SignatureCheck"]

_RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_ALGORITHM_OF_CURVE = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}
_MAX_KEYS = 100  # a JWKS past this is not a provider's key set; the rest are ignored, and said so


class SignatureCheck(Protocol):
    def verify(self, msg: bytes, sig: bytes) -> bool: ...


class _RsaPss:
    """RSASSA-PSS (RFC 7518 §3.5: MGF1 with the same hash, salt as long as the hash) on a parsed RSA key."""

    __slots__ = ("_hash", "_key")

    def __init__(self, rsa: CryptographyRSAKey) -> None:
        self._key = rsa.prepared_key
        self._hash = rsa.hash_alg

    def verify(self, msg: bytes, sig: bytes) -> bool:
        digest = self._hash()
        try:
            self._key.verify(sig, msg, padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size), digest)
        except InvalidSignature:
            return False
        return True


@dataclass(frozen=True, slots=True)
class KeyEntry:
    """One usable signing key: its type ("RSA" or "EC", plus the curve), the algorithm the provider bound it
    to (``alg``, if any) and a signature check for each algorithm it may verify."""

    kid: str
    family: str  # "RSA", or "EC P-256" / "EC P-384" / "EC P-521"
    alg: str | None
    checks: Mapping[str, SignatureCheck]


def _rsa_checks(jwk: dict[str, Any]) -> dict[str, SignatureCheck]:
    parsed = CryptographyRSAKey(jwk, "RS256")
    if parsed.prepared_key.key_size < 2048:  # RFC 7518 §3.3: 2048 bits at least
        raise ValueError(f"an RSA key of {parsed.prepared_key.key_size} bits is too short (2048 at least)")
    checks: dict[str, SignatureCheck] = {}
    for alg in _RSA_ALGORITHMS:
        pkcs1 = CryptographyRSAKey(parsed.prepared_key, "RS" + alg[2:])  # the parsed key: no second parse
        checks[alg] = pkcs1 if alg.startswith("RS") else _RsaPss(pkcs1)
    return checks


def _ec_checks(jwk: dict[str, Any]) -> tuple[str, dict[str, SignatureCheck]]:
    curve = jwk.get("crv")
    alg = _EC_ALGORITHM_OF_CURVE.get(curve) if isinstance(curve, str) else None
    if alg is None:
        raise ValueError(f"curve {curve!r} is not one of P-256, P-384, P-521")
    return f"EC {curve}", {alg: CryptographyECKey(jwk, alg)}  # RFC 7518 §3.4: one curve, one algorithm


def _entry(jwk: Mapping[str, Any]) -> KeyEntry | str:
    """A key of the set, or why it is not used."""
    kty, use, alg = jwk.get("kty"), jwk.get("use"), jwk.get("alg")
    if use is not None and use != "sig":
        return f"for use {use!r}, not signatures"
    if kty == "oct":
        return "a symmetric key has no place in a published key set"
    if alg is not None and not isinstance(alg, str):
        return "its alg is not a string"
    try:
        if kty == "RSA":
            family, checks = "RSA", _rsa_checks(dict(jwk))
        elif kty == "EC":
            family, checks = _ec_checks(dict(jwk))
        else:
            return f"key type {kty!r} is not supported (RSA, EC)"
    except (JWKError, ValueError, TypeError, KeyError) as exc:  # a malformed key: kept out, the reason shown
        return f"cannot be read: {exc}"
    if alg is not None:
        if alg not in checks:
            return f"its alg {alg} does not fit a {family} key"
        checks = {alg: checks[alg]}  # RFC 7517 §4.4: a key bound to one algorithm verifies only that one
    return KeyEntry(str(jwk.get("kid", "")), family, alg, checks)


class KeySet:
    """kid → key, built once per published JWKS. A key without ``kid`` is held under ""."""

    __slots__ = ("_by_kid", "rejected")

    def __init__(self, entries: Mapping[str, KeyEntry] | None = None,
                 rejected: Mapping[str, str] | None = None) -> None:
        self._by_kid: Mapping[str, KeyEntry] = dict(entries or {})
        self.rejected: Mapping[str, str] = dict(rejected or {})  # kid -> why it is not used

    @classmethod
    def from_jwks(cls, document: Any) -> KeySet:
        """Parse a JWKS document; raises ValueError when it is not one. Keys that cannot be used (malformed,
        for encryption, symmetric, duplicated kid) are left out and listed in ``rejected``."""
        if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
            raise ValueError('not a JWKS document: expected an object with a "keys" array')
        entries: dict[str, KeyEntry] = {}
        rejected: dict[str, str] = {}
        seen: set[str] = set()
        for index, jwk in enumerate(document["keys"]):
            kid = jwk.get("kid", "") if isinstance(jwk, Mapping) else ""
            name = kid if isinstance(kid, str) and kid else f"#{index}"
            if index >= _MAX_KEYS:
                rejected[name] = f"past the first {_MAX_KEYS} keys"
            elif not isinstance(jwk, Mapping) or not isinstance(kid, str):
                rejected[name] = "not a JWK object with a string kid"
            elif kid in seen:
                # Two keys under one kid: a token naming it could be checked against either, so neither is used.
                rejected[name] = "its kid is used by another key too"
                entries.pop(kid, None)
            else:
                seen.add(kid)
                entry = _entry(jwk)
                if isinstance(entry, KeyEntry):
                    entries[kid] = entry
                else:
                    rejected[name] = entry
        return cls(entries, rejected)

    def get(self, kid: str) -> KeyEntry | None:
        return self._by_kid.get(kid)

    def only(self) -> KeyEntry | None:
        """The single key of a set that holds exactly one (what a token without a kid may use)."""
        if len(self._by_kid) == 1:
            return next(iter(self._by_kid.values()))
        return None

    @property
    def kids(self) -> tuple[str, ...]:
        return tuple(sorted(self._by_kid))

    def __contains__(self, kid: object) -> bool:
        return kid in self._by_kid

    def __len__(self) -> int:
        return len(self._by_kid)
