"""Host/Origin policy against DNS rebinding."""

from __future__ import annotations

from only1mcp.workers.origins import OriginPolicy


def test_loopback_allows_local_hosts_and_origins_only() -> None:
    policy = OriginPolicy("127.0.0.1", [], [])
    assert policy.check("127.0.0.1:8080", None) is None
    assert policy.check("localhost:9", "http://localhost:3000") is None
    assert policy.check("[::1]:8080", "https://127.0.0.1") is None
    assert "Host 'evil.example:8080'" in (policy.check("evil.example:8080", None) or "")
    assert "Origin 'https://evil.example'" in (policy.check("localhost", "https://evil.example") or "")
    assert policy.check("localhost", "null") is not None


def test_configured_origins_and_hosts() -> None:
    policy = OriginPolicy("10.0.0.5", ["https://app.example.com/"], ["mcp.example.com"])
    assert policy.check("mcp.example.com", "https://app.example.com") is None
    assert policy.check("10.0.0.5:8080", None) is None
    assert policy.check("other.example.com", None) is not None
    assert policy.check("mcp.example.com", "http://localhost") is not None


def test_wildcard_bind_without_host_list_accepts_any_host() -> None:
    policy = OriginPolicy("0.0.0.0", [], [])
    assert policy.check("anything:1", None) is None
    assert policy.check("anything:1", "https://x.example") is not None
