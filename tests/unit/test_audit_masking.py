"""Redaction of argument values by key name: the default patterns, case, depth, lists, configured patterns."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from only1mcp.audit.masking import Redactor
from only1mcp.config.audit import DEFAULT_REDACT, AuditSettings

DEFAULTS = Redactor(DEFAULT_REDACT)


@pytest.mark.parametrize("key", ["password", "Password", "db_password", "passwd", "token", "access_token",
                                 "refreshToken", "secret", "client_secret", "api_key", "API_KEY", "x-api-key",
                                 "apiKey", "authorization", "Authorization"])
def test_the_default_patterns_mask_credentials(key: str) -> None:
    assert DEFAULTS.mask({key: "v", "text": "kept"}) == {key: "***", "text": "kept"}


@pytest.mark.parametrize("key", ["text", "path", "query", "limit", "user", "keyword"])
def test_the_default_patterns_keep_ordinary_keys(key: str) -> None:
    assert DEFAULTS.mask({key: "v"}) == {key: "v"}


def test_masking_reaches_nested_objects_and_lists() -> None:
    arguments = {"query": "q", "auth": {"token": {"value": "t"}, "user": "u"},
                 "headers": [{"Authorization": "Bearer x"}, {"accept": "json"}], "n": 3}
    assert DEFAULTS.mask(arguments) == {"query": "q", "auth": {"token": "***", "user": "u"},
                                        "headers": [{"Authorization": "***"}, {"accept": "json"}], "n": 3}


def test_the_original_arguments_are_left_unchanged() -> None:
    arguments = {"password": "p", "inner": {"secret": "s"}}
    DEFAULTS.mask(arguments)
    assert arguments == {"password": "p", "inner": {"secret": "s"}}


def test_values_that_are_not_objects_pass_through() -> None:
    assert DEFAULTS.mask("password") == "password"
    assert DEFAULTS.mask([1, "token"]) == [1, "token"]
    assert DEFAULTS.mask(None) is None


def test_configured_patterns_replace_the_defaults() -> None:
    custom = Redactor(["ssn", "card_*"])
    assert custom.mask({"SSN": 1, "card_number": 2, "cardholder": 3, "password": 4}) == {
        "SSN": "***", "card_number": "***", "cardholder": 3, "password": 4}


def test_no_patterns_mask_nothing() -> None:
    assert Redactor([]).mask({"password": "p"}) == {"password": "p"}


def test_a_pattern_matches_the_whole_key() -> None:
    assert Redactor(["key"]).mask({"key": 1, "keys": 2, "monkey": 3}) == {"key": "***", "keys": 2, "monkey": 3}


def test_an_empty_pattern_is_refused_with_what_to_write() -> None:
    with pytest.raises(ValidationError, match="redact patterns cannot be empty"):
        AuditSettings(redact=["*token*", ""])


def test_path_and_syslog_together_are_refused() -> None:
    with pytest.raises(ValidationError, match="both `path` and `syslog`"):
        AuditSettings(path="/tmp/a.log", syslog="/dev/log")
