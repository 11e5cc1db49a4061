"""Readings of a running gateway's admin API, and the rates between two of them.

A reading is what ``/api/v1/admin/backends``, ``workers`` and ``reloads`` answer at one moment; rates and
recent latency quantiles come from the difference of two readings (counters since start), so nothing here
keeps a count of its own.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from only1mcp.admin.traffic import window_quantile

__all__ = ["AdminClient", "ConsoleError", "Reading", "rates"]


class ConsoleError(Exception):
    """The gateway could not be read; the message says what to check."""


class AdminClient:
    """GETs on the admin API with the given headers (``Authorization`` when authentication is on)."""

    def __init__(self, url: str, headers: dict[str, str], timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self._headers = headers
        self._timeout = timeout

    def get(self, path: str) -> dict[str, Any]:
        request = urllib.request.Request(f"{self.url}/api/v1/admin/{path}", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return dict(json.loads(response.read()))
        except urllib.error.HTTPError as exc:
            detail = _error_text(exc.read().decode("utf-8", "replace"))
            hint = " (pass a credential with --header 'Authorization: Bearer …')" if exc.code in (401, 403) else ""
            raise ConsoleError(f"{self.url}: GET /api/v1/admin/{path} answered {exc.code}: {detail}{hint}") from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ConsoleError(f"cannot reach the gateway at {self.url}: {reason} (is it running? check --url)") \
                from None

    def read(self) -> Reading:
        return Reading(time.monotonic(), self.get("backends"), self.get("workers"), self.get("reloads"))


def _error_text(body: str) -> str:
    """The ``error`` of a JSON answer, or the body as the server sent it."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return body
    return str(parsed.get("error", body)) if isinstance(parsed, dict) else body


@dataclass(frozen=True)
class Reading:
    at: float  # monotonic seconds
    backends: dict[str, Any]
    workers: dict[str, Any]
    reloads: dict[str, Any]


def rates(previous: Reading | None, current: Reading) -> dict[str, dict[str, float | None]]:
    """Per backend: requests and errors per second, and p50/p99 in ms of the calls between the readings
    (None without a previous reading, or without calls in between)."""
    out: dict[str, dict[str, float | None]] = {}
    before = {b["name"]: b["traffic"] for b in previous.backends["backends"]} if previous else {}
    elapsed = current.at - previous.at if previous else 0.0
    for backend in current.backends["backends"]:
        now, then = backend["traffic"], before.get(backend["name"])
        if then is None or elapsed <= 0:
            out[backend["name"]] = {"rps": None, "eps": None, "p50_ms": None, "p99_ms": None}
            continue
        calls = now["requests"] - then["requests"]
        p50 = window_quantile(0.5, then.get("buckets", []), now.get("buckets", [])) if calls > 0 else None
        p99 = window_quantile(0.99, then.get("buckets", []), now.get("buckets", [])) if calls > 0 else None
        out[backend["name"]] = {
            "rps": max(0.0, calls / elapsed),
            "eps": max(0.0, (now["errors"] - then["errors"]) / elapsed),
            "p50_ms": None if p50 is None else p50 * 1000,
            "p99_ms": None if p99 is None else p99 * 1000,
        }
    return out
