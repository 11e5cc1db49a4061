"""One client credentials request (supervisor/token_fetch.py) against the real test provider process, and
what is made of a token endpoint's answer: never the secret in an error."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from only1mcp.config.oauth import OAuthClient
from only1mcp.http.client import Http1Pool
from supervisor.token_fetch import TokenFetchError, _grant, fetch_token
from tests.support.oidc import OidcProvider

pytestmark = pytest.mark.timeout(60)

CLIENT = "gateway+eu/1"  # characters client_secret_basic must form-encode before base64
SECRET = "s3cr:t+with&odd=chars%"


@pytest.fixture(scope="module")
def provider() -> Iterator[OidcProvider]:
    started = OidcProvider.start("--client", f"{CLIENT}:{SECRET}", "--token-lifetime", "120")
    yield started
    started.close()


@pytest.fixture
async def http() -> AsyncIterator[Http1Pool]:
    pool = Http1Pool()
    yield pool
    pool.close()


def client(provider: OidcProvider, **options: Any) -> OAuthClient:
    return OAuthClient(token_url=provider.token_endpoint, client_id=CLIENT, client_secret=SECRET,
                       **{"fetch_timeout": 5, **options})


async def test_a_token_with_its_lifetime_and_the_parameters_asked(provider: OidcProvider, http: Http1Pool) -> None:
    grant = await fetch_token(http, client(provider, scope="a b", audience="api", resource="https://api.test/mcp"))
    assert grant.access_token.count(".") == 2 and grant.expires_in == 120
    assert grant.access_token not in repr(grant)
    last = (await provider.token_requests())[-1]
    assert last["auth"] == "basic" and last["client_id"] == CLIENT  # the odd characters survived the encoding
    assert last["form"] == {"grant_type": "client_credentials", "scope": "a b", "audience": "api",
                            "resource": "https://api.test/mcp"}


async def test_a_wrong_secret_is_named_without_the_secret(provider: OidcProvider, http: Http1Pool) -> None:
    wrong = client(provider).model_copy(update={"client_secret": "not-the-secret-123"})
    with pytest.raises(TokenFetchError) as refused:
        await fetch_token(http, wrong)
    message = str(refused.value)
    assert f"refused the client credentials of '{CLIENT}': HTTP 401: invalid_client" in message, message
    assert "not-the-secret-123" not in message and SECRET not in message


async def test_an_endpoint_that_is_down_or_absent(provider: OidcProvider, http: Http1Pool) -> None:
    await provider.set_down(True)
    try:
        with pytest.raises(TokenFetchError, match="HTTP 503: temporarily_unavailable"):
            await fetch_token(http, client(provider))
    finally:
        await provider.set_down(False)
    gone = client(provider).model_copy(update={"token_url": "http://127.0.0.1:1/token"})
    with pytest.raises(TokenFetchError, match=r"cannot reach http://127\.0\.0\.1:1/token"):
        await fetch_token(http, gone)


@pytest.mark.parametrize(("answer", "error"), [
    ([], "did not answer with a JSON object"),
    ({"token_type": "Bearer"}, "without a usable access_token"),
    ({"access_token": "a\r\nb", "token_type": "Bearer"}, "without a usable access_token"),
    ({"access_token": "t", "token_type": "mac"}, "issued a token of type 'mac'; only Bearer tokens"),
    ({"access_token": "t", "token_type": "Bearer", "expires_in": 0}, "invalid expires_in (0)"),
    ({"access_token": "t", "token_type": "Bearer", "expires_in": True}, "invalid expires_in (True)"),
])
def test_answers_that_give_no_usable_token(answer: Any, error: str) -> None:
    with pytest.raises(TokenFetchError) as refused:
        _grant(answer, "https://login.test/token")
    assert error in str(refused.value)


def test_lifetimes_as_servers_write_them() -> None:
    assert _grant({"access_token": "t", "token_type": "bearer", "expires_in": "300"}, "u").expires_in == 300
    assert _grant({"access_token": "t", "token_type": "Bearer"}, "u").expires_in is None
