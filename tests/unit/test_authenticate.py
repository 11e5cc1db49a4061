"""The Authenticator: from the credential headers a request carries to its principal or the precise refusal.

Tokens are real HS256 JWTs verified by the real JwtVerifier with a configured shared secret, so these run
without a provider process. Each case was found by the auth fuzz (tests/integration/test_auth_fuzz.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import pytest

from only1mcp.auth.authenticate import Authenticator, AuthRefused
from only1mcp.auth.jwt import JwtVerifier
from only1mcp.auth.keyset import KeySet
from only1mcp.auth.principal import AuthMethod
from only1mcp.config.auth import AuthSettings

SECRET = "s" * 40
ISSUER = "https://issuer.example.test"
RESOURCE = "https://mcp.example.test/mcp"
API_KEY = "unit-test-api-key-0123"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _token(**claims: Any) -> str:
    body = {"iss": ISSUER, "sub": "ann", "aud": RESOURCE, "exp": time.time() + 600, **claims}
    signing_input = f"{_b64(json.dumps({'alg': 'HS256'}).encode())}.{_b64(json.dumps(body).encode())}"
    mac = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


@pytest.fixture
def authenticator() -> Authenticator:
    settings = AuthSettings.model_validate({
        "mode": ["jwt", "api_key"],
        "api_keys": [{"name": "bot", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "roles": ["admin"]}],
        "jwt": {"issuer": ISSUER, "algorithms": ["HS256"], "shared_secret": SECRET},
    })
    assert settings.jwt is not None
    verifier = JwtVerifier(settings.jwt, RESOURCE)
    keys = KeySet()
    return Authenticator(settings, lambda token, now: verifier.verify(token, keys, now), lambda: keys)


def test_a_valid_token_and_a_valid_key_each_prove_their_principal(authenticator: Authenticator) -> None:
    assert authenticator.identify(f"Bearer {_token()}", None).key == "jwt:ann"
    assert authenticator.identify(f"Bearer {API_KEY}", None).method is AuthMethod.API_KEY
    assert authenticator.identify(None, API_KEY).key == "api_key:bot"


@pytest.mark.parametrize("header", [
    f"Bearer {API_KEY} extra", f"Bearer \t{API_KEY}", f"Bearer {API_KEY}, Bearer {API_KEY}",
    f"Bearer {_token()}, Bearer other",
])
def test_a_token_with_whitespace_inside_is_a_malformed_header(authenticator: Authenticator, header: str) -> None:
    """Two Authorization fields arrive joined by a comma (RFC 9110 5.3): the header is malformed, whatever
    either field holds, and the answer says so rather than "unknown API key"."""
    with pytest.raises(AuthRefused) as refused:
        authenticator.identify(header, None)
    assert (refused.value.status, refused.value.error) == (401, "invalid_request")


def test_an_api_key_header_decides_even_after_the_token_was_remembered(authenticator: Authenticator) -> None:
    """A request naming an X-API-Key is decided by it: the same request was refused before its token was
    remembered, and must be refused after too."""
    authorization = f"Bearer {_token()}"
    with pytest.raises(AuthRefused):
        authenticator.identify(authorization, "not-a-key")
    assert authenticator.identify(authorization, None).key == "jwt:ann"  # now remembered
    with pytest.raises(AuthRefused):
        authenticator.identify(authorization, "not-a-key")


def test_a_key_sent_as_non_ascii_bytes_is_compared_as_those_bytes() -> None:
    """Header values reach the authenticator decoded as UTF-8 (bytes that are not UTF-8 kept as surrogate
    escapes), whichever HTTP server read them: a key is the UTF-8 of its text."""
    key = "ключ-0123456789"
    settings = AuthSettings.model_validate({
        "mode": "api_key", "api_keys": [{"name": "ru", "sha256": hashlib.sha256(key.encode()).hexdigest()}]})
    authenticator = Authenticator(settings, None)
    assert authenticator.identify(None, key.encode().decode("utf-8", "surrogateescape")).key == "api_key:ru"
    with pytest.raises(AuthRefused):
        authenticator.identify(None, key.encode().decode("latin-1"))
    with pytest.raises(AuthRefused):
        authenticator.identify(None, b"\xe9t\xe9".decode("utf-8", "surrogateescape"))
