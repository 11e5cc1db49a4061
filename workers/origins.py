"""Host and Origin checks against DNS rebinding and cross-site calls from browsers."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["OriginPolicy"]

_LOCAL_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_only(value: str) -> str:
    """'example.com:8080' -> 'example.com'; '[::1]:80' -> '::1'."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class OriginPolicy:
    """Bound to loopback: only local Host names and local (or configured) Origins pass. Bound elsewhere:
    configured hosts (the bound address always), configured origins; requests without Origin (non-browser
    clients) always pass the Origin check."""

    __slots__ = ("_any_host", "_cache", "_hosts", "_local", "_origins")

    def __init__(self, bind_host: str, allowed_origins: list[str], allowed_hosts: list[str]) -> None:
        self._local = _is_loopback(bind_host)
        self._hosts = {_host_only(h) for h in allowed_hosts}
        self._hosts.add(_host_only(bind_host))
        if self._local:
            self._hosts |= _LOCAL_NAMES
        self._any_host = not self._local and bind_host in ("0.0.0.0", "::", "") and not allowed_hosts
        self._origins = {o.rstrip("/").lower() for o in allowed_origins}
        # Clients send the same Host/Origin on every request: remember verdicts (bounded).
        self._cache: dict[tuple[str | None, str | None], str | None] = {}

    def check(self, host: str | None, origin: str | None) -> str | None:
        """None when allowed, else why not (for a 403)."""
        key = (host, origin)
        try:
            return self._cache[key]
        except KeyError:
            pass
        verdict = self._check(host, origin)
        if len(self._cache) < 1024:
            self._cache[key] = verdict
        return verdict

    def _check(self, host: str | None, origin: str | None) -> str | None:
        if not self._any_host:
            name = _host_only(host or "")
            if name not in self._hosts:
                return (f"Host '{host}' is not served here (DNS-rebinding protection); add it to "
                        "server.allowed_hosts if it is yours")
        if origin is None:
            return None
        normalized = origin.rstrip("/").lower()
        if normalized in self._origins:
            return None
        if self._local and normalized != "null":
            parts = urlsplit(normalized)
            if parts.scheme in ("http", "https") and (parts.hostname or "") in _LOCAL_NAMES:
                return None
        return f"Origin '{origin}' is not allowed; add it to server.allowed_origins if it should be"
