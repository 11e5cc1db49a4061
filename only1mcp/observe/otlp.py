"""Spans recorded and exported over OTLP/HTTP (protobuf) with the OpenTelemetry SDK.

Imported only when ``logging.otlp_endpoint`` is set (``only1mcp.observe.export.span_source``): without it no
OpenTelemetry module is loaded in any process. The SDK is the optional extra ``only1mcp[otlp]``. Each worker
has its own provider and exporter (a batch sent from a thread of the SDK every second): spans are never
carried over the bus.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
    set_span_in_context,
)

from only1mcp.audit.line import SessionHashes

from .spans import Span
from .traceparent import TraceParent

__all__ = ["OtlpSpans"]

_BATCH_DELAY_MS = 1000  # how long a finished span may wait for its batch


class _Recorded(Span):
    """A span the SDK records: finished with what the request turned out to be."""

    __slots__ = ("_hashes", "_span")

    def __init__(self, span: Any, incoming: TraceParent | None, hashes: SessionHashes) -> None:
        context = span.get_span_context()
        super().__init__(f"{context.trace_id:032x}", f"{context.span_id:016x}", int(context.trace_flags),
                         incoming.state if incoming is not None else None, root=incoming is None)
        self._span = span
        self._hashes = hashes

    def finish(self, status: int, scope: Any, elapsed: float) -> None:
        span = self._span
        if not span.is_recording():
            return  # not sampled: nothing to say
        method = scope.method
        if method:
            span.update_name(method)
            span.set_attribute("mcp.method.name", method)
        span.set_attribute("http.response.status_code", status)
        span.set_attribute("only1mcp.request_id", scope.rid)
        if scope.backend is not None:
            span.set_attribute("only1mcp.backend", scope.backend)
        if scope.sid is not None:
            span.set_attribute("only1mcp.session", self._hashes.of(scope.sid))
        if scope.error is not None:
            span.set_attribute("rpc.jsonrpc.error_code", scope.error)
            span.set_status(Status(StatusCode.ERROR, f"JSON-RPC error {scope.error}"))
        elif status >= 500:
            span.set_status(Status(StatusCode.ERROR, f"HTTP {status}"))
        span.end()


class OtlpSpans:
    """Every request gets a span: a child of the client's when it sent a context (its sampled flag decides),
    else a new trace sampled at ``ratio``."""

    __slots__ = ("_hashes", "_provider", "_tracer")

    def __init__(self, endpoint: str, headers: dict[str, str], service: str, process: str, ratio: float,
                 timeout: float) -> None:
        resource = Resource.create({"service.name": service, "service.instance.id": f"{socket.gethostname()}/"
                                    f"{os.getpid()}", "only1mcp.process": process})
        self._provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(ratio)))
        exporter = OTLPSpanExporter(endpoint=endpoint, headers=headers or None, timeout=timeout)
        self._provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=_BATCH_DELAY_MS))
        self._tracer = self._provider.get_tracer("only1mcp")
        self._hashes = SessionHashes()

    def start(self, incoming: TraceParent | None) -> Span:
        context = None
        if incoming is not None:
            state = TraceState.from_header([incoming.state]) if incoming.state else None
            parent = SpanContext(int(incoming.trace_id, 16), int(incoming.parent_id, 16), is_remote=True,
                                 trace_flags=TraceFlags(incoming.flags), trace_state=state)
            context = set_span_in_context(NonRecordingSpan(parent))
        span = self._tracer.start_span("mcp", context=context, kind=SpanKind.SERVER)
        return _Recorded(span, incoming, self._hashes)

    def close(self) -> None:
        self._provider.shutdown()  # sends what is still batched
