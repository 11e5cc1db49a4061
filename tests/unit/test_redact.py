"""Credentials in URLs never reach logs, status or clients."""

from __future__ import annotations

import pytest

from only1mcp.backends.base import BackendUnavailable
from only1mcp.redact import mask_secrets, mask_url, mask_urls_in


@pytest.mark.parametrize(("url", "shown"), [
    ("https://search.example/mcp?api_key=SECRET&region=eu", "https://search.example/mcp?api_key=***&region=***"),
    ("http://user:pass@10.0.0.1:8080/sse?token=t#frag", "http://***@10.0.0.1:8080/sse?token=***#***"),
    ("ws://127.0.0.1:3002/mcp", "ws://127.0.0.1:3002/mcp"),
    ("no url here", "no url here"),
])
def test_urls_keep_where_they_point_and_lose_their_secrets(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_urls_inside_messages_are_masked_and_punctuation_kept() -> None:
    text = "cannot reach backend 'x' at https://h/mcp?api_key=SECRET: 403 (see URL('wss://h/ws?token=T'))."
    masked = mask_urls_in(text)
    assert "SECRET" not in masked and "token=T" not in masked
    assert masked == ("cannot reach backend 'x' at https://h/mcp?api_key=***: 403 (see "
                      "URL('wss://h/ws?token=***')).")


def test_backend_errors_never_carry_a_url_credential() -> None:
    error = BackendUnavailable("cannot reach backend 'search' at https://u:p@h/mcp?key=K: refused")
    assert error.message == "cannot reach backend 'search' at https://***@h/mcp?key=***: refused"


def test_an_echoed_header_value_or_token_is_masked() -> None:
    text = "400 bad request: got Authorization: Bearer eyJ.tok.sig and X-Key: k-123456; token eyJ.tok.sig"
    masked = mask_secrets(text, ["Bearer eyJ.tok.sig", "k-123456", "json"])
    assert masked == "400 bad request: got Authorization: *** and X-Key: ***; token ***"
