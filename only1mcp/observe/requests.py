"""The scope of each request a worker serves: begun at the door, ended when its answer is ready.

With the defaults (text lines, no access log, no export) a request costs one ``RequestScope``, one context
variable ``set`` and two header lookups here; the end is one test. What costs more runs only for a request
that is traced or whose access line was drawn (docs/architecture.md, "Logs and traces").
"""

from __future__ import annotations

import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

from only1mcp.config.observe import LoggingSettings
from only1mcp.logs import ACCESS_LOGGER

from .export import span_source
from .scope import RequestScope, enter, process_prefix, scope_class
from .spans import PassingSpans, SpanSource
from .traceparent import from_meta, parse

__all__ = ["RequestLog"]

# A client's own request id is used when it is plain text of a sane length: it is written into every line.
_GIVEN_ID = re.compile(r"[A-Za-z0-9._:@/+=-]{1,64}")

access_log = logging.getLogger(ACCESS_LOGGER)


class RequestLog:
    """One per worker process: numbers its requests, draws the sampled access lines, holds the span source
    (``configure`` swaps it when the config changes). ``hashes`` are the session hashes the lines show."""

    __slots__ = ("_always", "_counter", "_draw", "_exporting", "_process", "_sample", "_scope", "spans")

    def __init__(self, process: str, draw: Callable[[], float] = random.random) -> None:
        self._process = process
        self._scope = scope_class(process_prefix())
        self._counter = itertools.count(1)
        self._sample = 0.0  # the access log's share of requests; 0: off
        self._draw = draw
        self.spans: SpanSource = PassingSpans()
        self._always = False  # whether every request gets a span (an export decides its sampling itself)
        self._exporting: LoggingSettings | None = None  # the settings the export was built from

    def configure(self, settings: LoggingSettings) -> None:
        """Follow the ``logging`` settings: the access log at once; the export is built once (its settings
        are restart-only), importing OpenTelemetry only then."""
        self._sample = settings.access_log_sample if settings.access_log else 0.0
        if settings.otlp_endpoint is not None and self._exporting is None:
            self._exporting = settings
            self.spans = span_source(settings, self._process)
            self._always = True

    def close(self) -> None:
        """Send the spans still batched (the worker is stopping)."""
        self.spans.close()

    def begin(self, headers: Mapping[str, str]) -> RequestScope:
        """The scope of a request that came in now, made current for the task serving it. ``headers``: the
        request's, read with lower-case names (our server's dict, aiohttp's case-insensitive one)."""
        scope = self._scope()
        scope.number = next(self._counter)
        given = headers.get("x-request-id")
        if given is not None and _GIVEN_ID.fullmatch(given) is not None:
            scope.given = given
        traceparent = headers.get("traceparent")
        if traceparent is not None or self._always:
            incoming = parse(traceparent, headers.get("tracestate")) if traceparent is not None else None
            scope.span = self.spans.start(incoming)
            if scope.span is not None:
                scope.started = time.perf_counter()
        if self._sample:
            self._draw_access(scope)
        enter(scope)
        return scope

    def message(self) -> RequestScope:
        """The scope of one message of a stream (WebSocket, legacy SSE): an id of its own; traced when the
        export records every request, or when its ``_meta`` carries a context (see ``adopt``)."""
        scope = self._scope()
        scope.number = next(self._counter)
        if self._always:
            scope.span = self.spans.start(None)
            scope.started = time.perf_counter()
        if self._sample:
            self._draw_access(scope)
        enter(scope)
        return scope

    def _draw_access(self, scope: RequestScope) -> None:
        sample = self._sample
        if sample >= 1.0 or self._draw() < sample:
            scope.drawn = True
            if not scope.started:
                scope.started = time.perf_counter()

    def adopt(self, scope: RequestScope, params: Any) -> None:
        """A client that sent its trace context in ``params._meta`` (SEP-414) rather than as a header: the
        request continues that trace (called only for a request whose params carry ``_meta`` and whose span,
        if any, is a root: a root span left unfinished is never exported)."""
        incoming = from_meta(params)
        if incoming is None:
            return
        span = self.spans.start(incoming)
        if span is not None:
            scope.span = span
            if not scope.started:
                scope.started = time.perf_counter()

    def end(self, scope: RequestScope, status: int, http_method: str, path: str) -> None:
        """The request was answered with HTTP ``status``: its access line (when drawn), its span's end."""
        if not scope.started:
            return
        elapsed = time.perf_counter() - scope.started
        if scope.span is not None:
            scope.span.finish(status, scope, elapsed)
        if scope.drawn:
            self._access(scope, status, http_method, path, elapsed)

    def _access(self, scope: RequestScope, status: int, http_method: str, path: str, elapsed: float) -> None:
        fields: dict[str, Any] = {"http_method": http_method, "path": path, "status": status,
                                  "rpc_method": scope.method, "duration_ms": round(elapsed * 1000, 3)}
        if scope.error is not None:
            fields["rpc_error"] = scope.error
        access_log.info("%s %s %d %s %.1fms%s", http_method, path, status, scope.method or "-", elapsed * 1000,
                        f" error {scope.error}" if scope.error is not None else "", extra={"fields": fields})
