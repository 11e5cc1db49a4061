"""The JWT verifier against tokens minted by a real OpenID Connect provider process (tests/fixtures/
oidc_provider.py, which signs with joserfc), its key set read from the provider's own JWKS."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from only1mcp.auth.jwt import JwtVerifier, KeySet, TokenRefused, UnknownKey
from only1mcp.auth.principal import AuthMethod
from only1mcp.config.auth import JwtSettings
from tests.support.oidc import OidcProvider

RESOURCE = "http://127.0.0.1:8080/mcp"
SECRET = "s" * 40

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    started = OidcProvider.start("--keys", "RS256,ES256,PS256", "--audience", RESOURCE,
                                 "--client", "backend-a:secret-a")
    yield started
    started.close()


@pytest.fixture
async def keys(provider: OidcProvider) -> KeySet:
    return KeySet.from_jwks(await provider.jwks())


def verifier(provider: OidcProvider, **settings: Any) -> JwtVerifier:
    return JwtVerifier(JwtSettings(issuer=provider.issuer, **settings), RESOURCE)


async def refused(provider: OidcProvider, keys: KeySet, token: str, **settings: Any) -> TokenRefused:
    """The refusal of ``token``, checked to be an invalid_token error that does not quote the token."""
    with pytest.raises(TokenRefused) as caught:
        verifier(provider, **settings).verify(token, keys, time.time())
    refusal = caught.value
    assert refusal.error == "invalid_token"
    assert not any(part in refusal.description for part in token.split(".") if len(part) >= 8)
    return refusal


@pytest.mark.parametrize("alg", ["RS256", "ES256", "PS256"])
async def test_a_valid_token_gives_its_principal(provider: OidcProvider, keys: KeySet, alg: str) -> None:
    expires = int(time.time()) + 120
    token = await provider.mint(alg, {"sub": "alice", "exp": expires})
    principal = verifier(provider).verify(token, keys, time.time())
    assert (principal.subject, principal.method, principal.expires) == ("alice", AuthMethod.JWT, expires)
    assert principal.key == "jwt:alice"


async def test_an_expired_token_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(claims={"exp": int(time.time()) - 100})
    assert "the token expired at" in (await refused(provider, keys, token, leeway=30)).description


async def test_a_token_not_yet_valid_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(claims={"nbf": int(time.time()) + 100})
    assert "not valid before" in (await refused(provider, keys, token, leeway=30)).description


async def test_leeway_covers_clock_difference_both_ways(provider: OidcProvider, keys: KeySet) -> None:
    now = int(time.time())
    expired_a_moment_ago = await provider.mint(claims={"exp": now - 10})
    valid_in_a_moment = await provider.mint(claims={"nbf": now + 10})
    lenient = verifier(provider, leeway=30)
    assert lenient.verify(expired_a_moment_ago, keys, now).subject == "user-1"
    assert lenient.verify(valid_in_a_moment, keys, now).subject == "user-1"
    await refused(provider, keys, expired_a_moment_ago, leeway=0)


async def test_a_token_without_expiry_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(claims={"exp": None})
    assert (await refused(provider, keys, token)).description == "the token has no expiry (exp)"


async def test_another_issuer_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(claims={"iss": "https://evil.example"})
    refusal = await refused(provider, keys, token)
    assert refusal.description == f"the token's issuer (iss) https://evil.example is not {provider.issuer}"


async def test_another_audience_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(claims={"aud": ["https://other.example/mcp", "account"]})
    refusal = await refused(provider, keys, token)
    assert refusal.description == f"the token is for another audience; it must include {RESOURCE}"


async def test_the_audience_is_the_resource_unless_configured(provider: OidcProvider, keys: KeySet) -> None:
    for_resource = await provider.mint(claims={"aud": RESOURCE})
    for_api = await provider.mint(claims={"aud": ["api://gateway", "account"]})
    assert verifier(provider).verify(for_resource, keys, time.time()).subject == "user-1"
    await refused(provider, keys, for_api)
    assert verifier(provider, audience="api://gateway").verify(for_api, keys, time.time()).subject == "user-1"
    await refused(provider, keys, for_resource, audience="api://gateway")


async def test_an_unknown_kid_raises_unknown_key(provider: OidcProvider, keys: KeySet) -> None:
    rotated_in = await provider.add_key("RS256")
    token = await provider.mint("RS256")  # the newest key signs: not in the key set fetched before
    with pytest.raises(UnknownKey) as caught:
        verifier(provider).verify(token, keys, time.time())
    assert caught.value.kid == rotated_in and caught.value.error == "invalid_token"
    fresh = KeySet.from_jwks(await provider.jwks())
    assert verifier(provider).verify(token, fresh, time.time()).subject == "user-1"


async def test_alg_none_is_refused_whatever_is_allowed(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(sign="none")
    assert (await refused(provider, keys, token)).description == "unsigned tokens (alg none) are never accepted"


async def test_hs256_signed_with_the_public_key_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(sign="public-pem")
    assert (await refused(provider, keys, token)).description.startswith("algorithm HS256 is not accepted")
    # Even where HS256 is accepted, only the configured secret verifies it: never the issuer's public key.
    refusal = await refused(provider, keys, token, algorithms=["RS256", "HS256"], shared_secret=SECRET)
    assert refusal.description == "the token's signature does not verify"


async def test_hs256_with_the_configured_secret_is_accepted(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint("HS256", sign="secret", secret=SECRET)
    accepting = verifier(provider, algorithms=["HS256"], shared_secret=SECRET)
    assert accepting.verify(token, keys, time.time()).subject == "user-1"


async def test_an_algorithm_not_allowed_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint("RS256")
    refusal = await refused(provider, keys, token, algorithms=["ES256"])
    assert refusal.description == "algorithm RS256 is not accepted; accepted: ES256"


async def test_a_key_of_another_type_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    rsa_kid = next(kid for kid in keys.kids if kid.startswith("rs256"))
    token = await provider.mint("ES256", header={"kid": rsa_kid})  # signed with the EC key, naming the RSA one
    refusal = await refused(provider, keys, token)
    assert refusal.description == f"key '{rsa_kid}' is a RSA key bound to RS256; it cannot verify ES256"


async def test_a_tampered_token_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    header, _, signature = (await provider.mint("ES256")).split(".")
    _, claims, _ = (await provider.mint("ES256", {"sub": "mallory"})).split(".")
    forged = f"{header}.{claims}.{signature}"
    assert (await refused(provider, keys, forged)).description == "the token's signature does not verify"


@pytest.mark.parametrize(("token", "problem"), [
    ("not-a-token", "the token is not a JWT: expected three base64url parts separated by dots"),
    ("a.b.c.d.e", "encrypted tokens (JWE) are not accepted; send a signed JWT"),
    ("e30.e30.", "the token's header names no algorithm (alg)"),
    ("W10.e30.", "the token's header is not a JSON object"),
    ("!!!.e30.", "the token is not a JWT: expected three base64url parts separated by dots"),
    ("eyJhbGc.e30.", "the token's header is not base64url-encoded JSON"),
])
async def test_malformed_tokens_are_refused_saying_why(provider: OidcProvider, keys: KeySet, token: str,
                                                       problem: str) -> None:
    assert (await refused(provider, keys, token)).description == problem


async def test_roles_from_a_dotted_claim(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(claims={"realm_access": {"roles": ["reader", "writer"]}, "roles": ["ignored"]})
    principal = verifier(provider, roles_claim="realm_access.roles").verify(token, keys, time.time())
    assert principal.roles == {"reader", "writer"}
    spaced = await provider.mint(claims={"groups": "reader admin"})
    assert verifier(provider, roles_claim="groups").verify(spaced, keys, time.time()).roles == {"reader", "admin"}
    absent = verifier(provider, roles_claim="realm_access.roles").verify(spaced, keys, time.time())
    assert absent.roles == frozenset()


async def test_a_roles_claim_of_the_wrong_shape_is_refused(provider: OidcProvider, keys: KeySet) -> None:
    token = await provider.mint(claims={"roles": {"reader": True}})
    refusal = await refused(provider, keys, token)
    assert refusal.description == "the token's roles claim must be a list of strings or a space-separated string"


async def test_scopes_from_scope_or_scp(provider: OidcProvider, keys: KeySet) -> None:
    spaced = await provider.mint(claims={"scope": "tools:read tools:call"})
    listed = await provider.mint(claims={"scp": ["tools:read", "admin"]})
    check = verifier(provider)
    assert check.verify(spaced, keys, time.time()).scopes == {"tools:read", "tools:call"}
    assert check.verify(listed, keys, time.time()).scopes == {"tools:read", "admin"}


async def test_the_token_endpoint_issues_client_credentials_tokens(provider: OidcProvider, keys: KeySet) -> None:
    status, body = await provider.token("backend-a", "secret-a", scope="tools:read", resource="https://api.test/mcp")
    assert status == 200 and body["token_type"] == "Bearer" and body["expires_in"] > 0
    principal = verifier(provider, audience="https://api.test/mcp").verify(body["access_token"], keys, time.time())
    assert (principal.subject, principal.scopes) == ("backend-a", {"tools:read"})
    status, body = await provider.token("backend-a", "wrong")
    assert (status, body) == (401, {"error": "invalid_client"})


def test_a_key_set_leaves_out_keys_it_cannot_use() -> None:
    keys = KeySet.from_jwks({"keys": [
        {"kty": "oct", "kid": "shared", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        {"kty": "EC", "kid": "odd", "crv": "P-192", "x": "AA", "y": "AA"},
        {"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": "AA"},
        {"kty": "RSA", "kid": "short", "n": "AQAB", "e": "AQAB"},
    ]})
    assert len(keys) == 0
    assert set(keys.rejected) == {"shared", "enc", "odd", "ed", "short"}
    assert keys.rejected["shared"] == "a symmetric key has no place in a published key set"
    with pytest.raises(ValueError, match="not a JWKS document"):
        KeySet.from_jwks({"key": []})


async def test_two_keys_under_one_kid_are_both_left_out(provider: OidcProvider) -> None:
    document = await provider.jwks()
    first = document["keys"][0]
    keys = KeySet.from_jwks({"keys": [first, {**document["keys"][1], "kid": first["kid"]}, first]})
    assert first["kid"] not in keys and keys.rejected[first["kid"]] == "its kid is used by another key too"


def test_settings_refuse_hmac_without_a_secret_and_a_key_as_secret() -> None:
    with pytest.raises(ValueError, match="no shared_secret is set"):
        JwtSettings(issuer="https://idp.example", algorithms=["HS256"])
    with pytest.raises(ValueError, match="holds a public or private key"):
        JwtSettings(issuer="https://idp.example", algorithms=["HS256"],
                    shared_secret="-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA")
    with pytest.raises(ValueError, match="must use https"):
        JwtSettings(issuer="http://idp.example")
    with pytest.raises(ValueError, match="'none'"):
        JwtSettings(issuer="https://idp.example", algorithms=["none"])
