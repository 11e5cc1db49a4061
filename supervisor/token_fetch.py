"""One OAuth 2.0 client credentials request (RFC 6749 section 4.4) to a backend's token endpoint.

The client authenticates with HTTP Basic (client_secret_basic, section 2.3.1: id and secret form-encoded,
then base64), the grant goes in a form body, and ``scope``, ``audience`` and RFC 8707's ``resource`` are
sent when configured. Nothing secret ever reaches an error message: the token endpoint's own error text is
quoted only with the secret masked out of it.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus, urlencode

import orjson

from only1mcp.config.oauth import OAuthClient
from only1mcp.http.client import ConnectError, Http1Pool, ResponseTooLarge, Target, render_headers
from only1mcp.redact import mask_secrets, mask_url

__all__ = ["Grant", "TokenFetchError", "fetch_token"]

_MAX_ANSWER = 256 * 1024  # bytes: a token answer is a few KiB
_QUOTED = 200  # characters of the endpoint's error description quoted


class TokenFetchError(Exception):
    """No token: the message says from where and why, with no secret in it."""


@dataclass(frozen=True, slots=True)
class Grant:
    access_token: str = field(repr=False)
    expires_in: float | None  # seconds, as the endpoint said (None: it did not)


def _basic(client: OAuthClient) -> str:
    pair = f"{quote_plus(client.client_id)}:{quote_plus(client.client_secret)}"
    return "Basic " + base64.b64encode(pair.encode()).decode("ascii")


def _form(client: OAuthClient) -> bytes:
    form = {"grant_type": "client_credentials"}
    for name in ("scope", "audience", "resource"):
        value = getattr(client, name)
        if value:
            form[name] = value
    return urlencode(form).encode()


async def fetch_token(http: Http1Pool, client: OAuthClient) -> Grant:
    """A fresh access token for ``client``; raises TokenFetchError."""
    shown = mask_url(client.token_url)
    try:
        status, body = await asyncio.wait_for(_post(http, client, shown), client.fetch_timeout)
    except TimeoutError:
        raise TokenFetchError(f"{shown} did not answer within {client.fetch_timeout:g}s "
                              "(oauth.fetch_timeout)") from None
    try:
        answer = orjson.loads(body)
    except orjson.JSONDecodeError:
        answer = None
    if status != 200:
        raise TokenFetchError(f"{shown} refused the client credentials of '{client.client_id}': HTTP {status}"
                              f"{_error_of(answer, client)}")
    return _grant(answer, shown)


async def _post(http: Http1Pool, client: OAuthClient, shown: str) -> tuple[int, bytes]:
    headers = render_headers({"Authorization": _basic(client), "Content-Type": "application/x-www-form-urlencoded",
                              "Accept": "application/json", "User-Agent": "only1mcp", "Cache-Control": "no-store"})
    try:
        response = await http.request("POST", Target(client.token_url), headers, _form(client),
                                      client.fetch_timeout, _MAX_ANSWER)
    except ConnectError as exc:
        raise TokenFetchError(f"cannot reach {shown}: {exc}") from None
    try:
        return response.status, await response.read()
    except ResponseTooLarge:
        raise TokenFetchError(f"{shown} answered with more than {_MAX_ANSWER} bytes") from None
    except ConnectError as exc:
        raise TokenFetchError(f"{shown} broke the connection: {exc}") from None
    finally:
        response.release()


def _error_of(answer: Any, client: OAuthClient) -> str:
    """The endpoint's `error` and `error_description` (RFC 6749 section 5.2), secret masked."""
    if not isinstance(answer, dict) or not isinstance(answer.get("error"), str):
        return ""
    text = answer["error"]
    description = answer.get("error_description")
    if isinstance(description, str) and description:
        text += f" ({description[:_QUOTED]})"
    return ": " + mask_secrets(text, [client.client_secret])


def _grant(answer: Any, shown: str) -> Grant:
    if not isinstance(answer, dict):
        raise TokenFetchError(f"{shown} did not answer with a JSON object")
    token = answer.get("access_token")
    if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
        raise TokenFetchError(f"{shown} answered without a usable access_token")
    kind = answer.get("token_type")
    if not isinstance(kind, str) or kind.lower() != "bearer":
        raise TokenFetchError(f"{shown} issued a token of type {kind!r}; only Bearer tokens can be sent")
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, str) and expires_in.isdigit():  # some servers send it as a string
        expires_in = int(expires_in)
    if expires_in is not None and (isinstance(expires_in, bool) or not isinstance(expires_in, (int, float))
                                   or expires_in <= 0):
        raise TokenFetchError(f"{shown} answered with an invalid expires_in ({expires_in!r})")
    return Grant(token, None if expires_in is None else float(expires_in))
