"""Build the transport for one replica of a configured backend (a ``per_worker`` stdio backend: a child of
the calling process; a shared one: a connection to the stdio host)."""

from __future__ import annotations

from pathlib import Path
from typing import TypeGuard

from only1mcp.bus.messages import LinkPurpose, Sender
from only1mcp.config.models import HttpBackend, SseBackend, StdioBackend, WebSocketBackend
from only1mcp.http.client import Http1Pool
from only1mcp.spec import stdio_socket

from .base import Transport
from .child import ChildTransport
from .credentials import Credentials
from .http import HttpTransport, Limits
from .link import LinkTransport
from .sse import SseTransport
from .websocket import WebSocketTransport

__all__ = ["AnyBackend", "make_transport", "replica_count", "runs_per_worker"]

AnyBackend = StdioBackend | HttpBackend | SseBackend | WebSocketBackend


def replica_count(backend: AnyBackend) -> int:
    return backend.replicas if isinstance(backend, StdioBackend) else len(backend.urls)


def runs_per_worker(backend: AnyBackend) -> TypeGuard[StdioBackend]:
    """A stdio backend whose children each worker runs itself (not the shared stdio host)."""
    return isinstance(backend, StdioBackend) and backend.per_worker


def make_transport(backend: AnyBackend, replica: int, runtime_dir: Path, http: Http1Pool, sender: Sender,
                   purpose: LinkPurpose, credentials: Credentials | None = None) -> Transport:
    """``sender`` and ``purpose`` say who links to the stdio host and why (a shared stdio backend);
    ``credentials``: the gateway's token for a remote backend with ``oauth`` (every replica uses it)."""
    if runs_per_worker(backend):
        return ChildTransport(backend, replica)
    if isinstance(backend, StdioBackend):
        return LinkTransport(backend.name, str(stdio_socket(runtime_dir, backend.name, replica)), sender, purpose,
                             backend.max_event_bytes)
    limits = Limits(backend.max_response_bytes, backend.max_event_bytes)
    if isinstance(backend, HttpBackend):
        return HttpTransport(backend.name, backend.urls[replica], backend.headers, http, backend.timeouts.connect,
                             limits, credentials=credentials)
    if isinstance(backend, SseBackend):
        return SseTransport(backend.name, backend.urls[replica], backend.headers, http, backend.timeouts.connect,
                            limits, credentials)
    return WebSocketTransport(backend.name, backend.urls[replica], backend.headers, backend.timeouts.connect,
                              backend.max_event_bytes, credentials)
