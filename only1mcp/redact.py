"""Credentials out of what is shown: URLs as they may appear in logs, errors sent to clients, and status.

A backend URL may carry a secret in its user info (``https://user:pass@host``) or its query
(``…?api_key=…``, ``?token=…``). Shown URLs keep the scheme, host, port, path and parameter names; user
info and every query value are replaced. A backend's answer quoted in an error may echo the headers it was
sent (a debugging server does): ``mask_secrets`` takes those values out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["MASK", "mask_secrets", "mask_url", "mask_urls_in"]

_SHORTEST = 6  # a shorter value is not worth hiding, and masking it would garble unrelated text

MASK = "***"
_URL = re.compile(r"\b(?:https?|wss?)://[^\s'\"<>)]+")


def mask_url(url: str) -> str:
    """``url`` with its user info and query values masked (a string that is not a URL comes back as is)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = f"{MASK}@{netloc.rpartition('@')[2]}"
    query = parts.query
    if query:
        query = urlencode([(name, MASK) for name, _ in parse_qsl(query, keep_blank_values=True)], safe="*")
    fragment = MASK if parts.fragment else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))


def mask_urls_in(text: str) -> str:
    """``text`` with every http(s)/ws(s) URL in it masked (error messages may quote the URL they failed on)."""
    if "://" not in text:
        return text
    def masked(match: re.Match[str]) -> str:
        url = match.group(0)
        core = url.rstrip(".,;:")  # punctuation after a URL in a sentence is not part of it
        return mask_url(core) + url[len(core):]

    return _URL.sub(masked, text)


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each of ``secrets`` masked, and the credential after a scheme (``Bearer <token>``,
    ``Basic <pair>``) on its own too."""
    for secret in secrets:
        scheme, _, credential = secret.partition(" ")
        for value in (secret, credential) if credential and scheme.isalpha() else (secret,):
            if len(value) >= _SHORTEST and value in text:
                text = text.replace(value, MASK)
    return text
