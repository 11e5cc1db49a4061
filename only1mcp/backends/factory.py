"""Build the transport for one replica of a configured backend."""

from __future__ import annotations

from pathlib import Path

from only1mcp.config.models import HttpBackend, SseBackend, StdioBackend, WebSocketBackend
from only1mcp.spec import stdio_socket

from .base import BackendUnavailable, Transport
from .http import HttpTransport
from .http1 import Http1Pool
from .lines import UnixTransport

__all__ = ["AnyBackend", "make_transport", "replica_count"]

AnyBackend = StdioBackend | HttpBackend | SseBackend | WebSocketBackend


def replica_count(backend: AnyBackend) -> int:
    return backend.replicas if isinstance(backend, StdioBackend) else len(backend.urls)


def make_transport(backend: AnyBackend, replica: int, runtime_dir: Path, http: Http1Pool) -> Transport:
    if isinstance(backend, StdioBackend):
        return UnixTransport(backend.name, str(stdio_socket(runtime_dir, backend.name, replica)))
    if isinstance(backend, HttpBackend):
        return HttpTransport(backend.name, backend.urls[replica], backend.headers, http, backend.timeouts.connect)
    raise BackendUnavailable(f"backend '{backend.name}': the {backend.transport} transport is not available in "
                             "this version of Only1MCP yet; use stdio or http")
