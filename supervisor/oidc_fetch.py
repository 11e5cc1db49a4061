"""Fetching a JWT issuer's key set: its JWKS document, found through discovery when no jwks_uri is given.

Discovery tries OpenID Connect's ``<issuer>/.well-known/openid-configuration``, then RFC 8414's
``/.well-known/oauth-authorization-server<issuer path>``. Each document must name the configured issuer
exactly (both specifications require it: a document for another issuer would hand us its keys).
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import orjson

from only1mcp.auth.keyset import KeySet
from only1mcp.config.auth import url_problem
from only1mcp.http.client import ConnectError, Http1Pool, ResponseTooLarge, Target, render_headers
from only1mcp.redact import mask_url

__all__ = ["KeyFetchError", "discover_jwks_uri", "fetch_json", "fetch_keys"]

_MAX_DOCUMENT = 1024 * 1024  # bytes: a key set or a metadata document is a few KiB
_HEADERS = render_headers({"Accept": "application/json", "User-Agent": "only1mcp"})


class KeyFetchError(Exception):
    """The keys could not be fetched; the message says from where and why (URLs masked)."""


async def fetch_json(http: Http1Pool, url: str, timeout: float) -> Any:
    """GET ``url`` and parse its JSON body; raises KeyFetchError."""
    shown = mask_url(url)
    try:
        return await asyncio.wait_for(_get(http, url, shown), timeout)
    except TimeoutError:
        raise KeyFetchError(f"{shown} did not answer within {timeout:g}s") from None


async def _get(http: Http1Pool, url: str, shown: str) -> Any:
    try:
        response = await http.request("GET", Target(url), _HEADERS, limit=_MAX_DOCUMENT)
    except ConnectError as exc:
        raise KeyFetchError(str(exc)) from None
    try:
        body = await response.read()
    except ResponseTooLarge:
        raise KeyFetchError(f"{shown} answered with more than {_MAX_DOCUMENT} bytes") from None
    except ConnectError as exc:
        raise KeyFetchError(f"{shown} broke the connection: {exc}") from None
    finally:
        response.release()
    if response.status != 200:
        raise KeyFetchError(f"{shown} answered HTTP {response.status}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise KeyFetchError(f"{shown} did not answer with JSON") from None


def _discovery_urls(issuer: str) -> list[str]:
    parts = urlsplit(issuer)
    path = parts.path.rstrip("/")
    return [f"{issuer.rstrip('/')}/.well-known/openid-configuration",
            f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{path}"]


def _jwks_uri_in(metadata: Any, issuer: str, where: str) -> str:
    if not isinstance(metadata, dict):
        raise KeyFetchError(f"{where} is not a metadata document (a JSON object)")
    if metadata.get("issuer") != issuer:
        raise KeyFetchError(f"{where} is for issuer {metadata.get('issuer')!r}, not {issuer!r}; set auth.jwt.issuer "
                            "to the issuer exactly as the provider names it")
    uri = metadata.get("jwks_uri")
    if not isinstance(uri, str):
        raise KeyFetchError(f"{where} names no jwks_uri; set auth.jwt.jwks_uri")
    problem = url_problem(uri, "jwks_uri")
    if problem is not None:
        raise KeyFetchError(f"{where}: {problem}")
    return uri


async def discover_jwks_uri(http: Http1Pool, issuer: str, timeout: float) -> str:
    """The issuer's jwks_uri, from its discovery document; raises KeyFetchError."""
    failures = []
    for url in _discovery_urls(issuer):
        try:
            metadata = await fetch_json(http, url, timeout)
        except KeyFetchError as exc:  # the next kind of discovery document may be there
            failures.append(str(exc))
            continue
        return _jwks_uri_in(metadata, issuer, mask_url(url))
    raise KeyFetchError(f"no discovery document for issuer {mask_url(issuer)}: {'; '.join(failures)}")


async def fetch_keys(http: Http1Pool, uri: str, timeout: float) -> tuple[dict[str, Any], KeySet]:
    """The JWKS document at ``uri`` and the keys it holds; raises KeyFetchError when it holds none usable."""
    document = await fetch_json(http, uri, timeout)
    try:
        keys = KeySet.from_jwks(document)
    except ValueError as exc:
        raise KeyFetchError(f"{mask_url(uri)}: {exc}") from None
    if not len(keys):
        reasons = "; ".join(f"{kid}: {why}" for kid, why in keys.rejected.items()) or "it is empty"
        raise KeyFetchError(f"{mask_url(uri)} holds no usable signing key ({reasons})")
    return document, keys
