"""Where spans come from: the OpenTelemetry export when it is configured, else context passed on only."""

from __future__ import annotations

from only1mcp.config.observe import LoggingSettings

from .spans import PassingSpans, SpanSource

__all__ = ["span_source"]


def span_source(settings: LoggingSettings, process: str) -> SpanSource:
    """``OtlpSpans`` for ``settings.otlp_endpoint`` (the OpenTelemetry SDK is imported here and nowhere
    else), ``PassingSpans`` without one."""
    if settings.otlp_endpoint is None:
        return PassingSpans()
    # Imported here: a process that exports nothing loads no OpenTelemetry module at all.
    from .otlp import OtlpSpans  # noqa: PLC0415

    return OtlpSpans(settings.otlp_endpoint, settings.otlp_headers, settings.service_name, process,
                     settings.trace_sample, settings.otlp_timeout)
