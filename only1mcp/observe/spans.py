"""The gateway's span of one client request: what a backend is told its parent is.

Without an OpenTelemetry export (``PassingSpans``) only a request whose client sent a trace context is
traced: its span gets a new span id in the client's trace, with the client's flags, and nothing is recorded.
With the export configured, ``only1mcp.observe.otlp.OtlpSpans`` makes the spans and records them.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from .traceparent import TraceParent, header_value, with_meta

__all__ = ["PassingSpans", "Span", "SpanSource"]


class Span:
    """One request's span: its ``traceparent`` for the backends it calls. ``finish`` is called once, when
    the request is answered (recording it, when spans are recorded)."""

    __slots__ = ("flags", "header", "root", "span_id", "state", "trace_id")

    def __init__(self, trace_id: str, span_id: str, flags: int, state: str | None, root: bool = False) -> None:
        self.root = root  # begun by the gateway, not continuing a client's trace
        self.trace_id = trace_id
        self.span_id = span_id
        self.flags = flags
        self.state = state
        self.header = header_value(trace_id, span_id, flags)

    def meta(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """``params`` for a backend: ``_meta`` carrying this span as the parent (SEP-414)."""
        return with_meta(params, self.header, self.state)

    def header_lines(self) -> bytes:
        """This span as HTTP header lines for a backend request (``traceparent``, and ``tracestate`` when
        the client sent one: printable ASCII, checked when it was read)."""
        lines = f"traceparent: {self.header}\r\n"
        if self.state is not None:
            lines += f"tracestate: {self.state}\r\n"
        return lines.encode("ascii")

    def finish(self, status: int, scope: Any, elapsed: float) -> None:
        """Nothing to record for a span that is only passed on."""


class SpanSource(Protocol):
    def start(self, incoming: TraceParent | None) -> Span | None:
        """The span of a request whose client sent ``incoming`` (None: no context), or None: untraced."""

    def close(self) -> None:
        """Send what is still buffered (at process exit)."""


class PassingSpans:
    """Trace context passed on, nothing recorded: a span only for a request that came with a context."""

    __slots__ = ()

    def start(self, incoming: TraceParent | None) -> Span | None:
        if incoming is None:
            return None
        return Span(incoming.trace_id, new_span_id(), incoming.flags, incoming.state)

    def close(self) -> None:
        """Nothing buffered."""


def new_span_id() -> str:
    while True:
        span_id = os.urandom(8).hex()
        if span_id != "0000000000000000":
            return span_id
