"""From a request's credential headers to the Principal it proves, or the precise refusal.

One Authenticator per worker and config version: API keys are compared by SHA-256 in constant time;
JWTs are verified by the configured verifier and remembered until they expire, so a client that sends the
same token on every request pays a dictionary lookup after its first.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from only1mcp.config.auth import AuthSettings

from .jwt import TokenRefused, UnknownKey
from .principal import AuthMethod, Principal

__all__ = ["AuthRefused", "Authenticator", "KeyUnknown", "TokenRefused"]

JwtCheck = Callable[[str, float], Principal]


# The verifier's refusals (only1mcp/auth/jwt.py), under the names this module has used: one class each.
KeyUnknown = UnknownKey


@dataclass(frozen=True, slots=True)
class AuthRefused(Exception):
    """What the client is answered: 401 (no credential, or one that is not valid) or 403 (valid but
    without the scope this gateway requires). ``error`` is None when no credential was presented."""

    status: int
    error: str | None
    description: str
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class _Key:
    digest: bytes
    principal: Principal


_NO_CREDENTIAL = AuthRefused(401, None, "this gateway needs a credential: send Authorization: Bearer <token>")


class Authenticator:
    __slots__ = ("_api_keys", "_cache", "_cache_size", "_jwt", "_keys", "_required", "_scope_text", "modes")

    def __init__(self, settings: AuthSettings, jwt: JwtCheck | None,
                 keys: Callable[[], object] = lambda: None) -> None:
        self.modes = settings.modes
        self._jwt = jwt if "jwt" in self.modes else None
        # The issuer's key set as last published: a remembered token counts only while the keys that
        # verified it are still the published ones (a key removed at the issuer stops its tokens).
        self._keys = keys
        self._api_keys = [_Key(bytes.fromhex(k.sha256), Principal(k.name, AuthMethod.API_KEY, frozenset(k.roles)))
                          for k in settings.api_keys] if "api_key" in self.modes else []
        self._required = frozenset(settings.required_scopes)
        self._scope_text = " ".join(settings.required_scopes) or None
        self._cache: OrderedDict[str, tuple[Principal, object]] = OrderedDict()
        self._cache_size = settings.token_cache

    def identify(self, authorization: str | None, api_key: str | None, now: float | None = None) -> Principal:
        """The principal these headers prove; AuthRefused otherwise. KeyUnknown (not refused yet) for a JWT
        whose key may have just been published by its issuer: the caller refreshes the keys and asks again."""
        if authorization is not None and api_key is None:
            # A token seen before: one lookup by the header as sent (it passed every check then, scopes
            # included), valid while it has not expired and its keys are still the published ones. Not when
            # the request names an API key too: that key decides, remembered token or not.
            cached = self._cache.get(authorization)
            if cached is not None and cached[1] is self._keys():
                principal = cached[0]
                if principal.expires is None or (time.time() if now is None else now) < principal.expires:
                    return principal
        if api_key is not None and self._api_keys:
            return self._api_key(api_key)
        token = _bearer(authorization)
        if token is None:
            if authorization is not None:
                raise AuthRefused(401, "invalid_request", "the Authorization header must be 'Bearer <token>'")
            raise _NO_CREDENTIAL
        if self._jwt is not None and token.count(".") == 2:
            principal = self._token(token, time.time() if now is None else now)
            self._remember(authorization, principal, self._keys())  # type: ignore[arg-type]
            return principal
        if self._api_keys:
            return self._api_key(token)
        raise AuthRefused(401, "invalid_token", "the bearer token is not a JWT")

    @property
    def reads_api_key_header(self) -> bool:
        return bool(self._api_keys)

    def _api_key(self, key: str) -> Principal:
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
        found: Principal | None = None
        for entry in self._api_keys:  # every entry compared, so the time does not say which one matched
            if hmac.compare_digest(digest, entry.digest):
                found = entry.principal
        if found is None:
            raise AuthRefused(401, "invalid_token", "unknown API key")
        return found

    def _token(self, token: str, now: float) -> Principal:
        assert self._jwt is not None
        try:
            principal = self._jwt(token, now)
        except KeyUnknown:
            raise
        except TokenRefused as exc:
            raise AuthRefused(401, exc.error, str(exc)) from None
        if self._required and not self._required <= principal.scopes:
            missing = " ".join(sorted(self._required - principal.scopes))
            raise AuthRefused(403, "insufficient_scope", f"the token lacks the scope(s) {missing}",
                              self._scope_text)
        return principal

    def _remember(self, token: str, principal: Principal, keys: object) -> None:
        if self._cache_size <= 0:
            return
        self._cache[token] = (principal, keys)
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)  # oldest first: bounded whatever clients send


def _bearer(authorization: str | None) -> str | None:
    """The token of ``Bearer <token>``: the scheme in any case, then one or more spaces (RFC 7235 2.1). None
    when the header is not that, including a token with whitespace inside: two Authorization fields arrive
    joined by a comma (RFC 9110 5.3), and a request must carry one credential, not a choice of two."""
    if authorization is None:
        return None
    if authorization.startswith("Bearer ") and " " not in authorization[7:] and "\t" not in authorization[7:]:
        return authorization[7:] or None  # as nearly every client writes it
    scheme, _, token = authorization.strip(" \t").partition(" ")
    token = token.lstrip(" ")
    if scheme.lower() != "bearer" or not token or " " in token or "\t" in token:
        return None
    return token
