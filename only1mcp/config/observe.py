"""The `logging` section: how log lines are written, the access log, and where traces go."""

from __future__ import annotations

import importlib.util
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from only1mcp.redact import mask_url

from .fields import LIVE, RESTART, SENSITIVE, _hint, _Strict

__all__ = ["OTLP_EXTRA", "LoggingSettings"]

OTLP_EXTRA = "pip install 'only1mcp[otlp]'"


class LoggingSettings(_Strict):
    """Log lines, the access log and traces. Env: ``ONLY1MCP_LOGGING__<KEY>``."""

    format: Annotated[Literal["text", "json"], LIVE] = Field(
        "text",
        description="`text`: one readable line per event. `json`: one JSON object per line with `time`, `level`, "
        "`process` and `slot`, `pid`, `logger`, `message`, and, for a line a request caused, `request_id`, "
        "`session` (the hash of its session id, as in the audit trail), `backend` and `trace_id`.",
        json_schema_extra=_hint("write text or json"),
    )
    access_log: Annotated[bool, LIVE] = Field(
        False,
        description="Write an access line (logger `only1mcp.access`: HTTP method, path, status, JSON-RPC method, "
        "duration, error code) for a share `access_log_sample` of the requests. Access lines are never held back "
        "as repeats: the sample is their bound.",
    )
    access_log_sample: Annotated[float, LIVE] = Field(
        0.1,
        gt=0,
        le=1,
        description="The share of requests that get an access line when `access_log` is on, drawn at random per "
        "request (1 writes every request).",
        json_schema_extra=_hint("write a number greater than 0 and at most 1, e.g. 0.1"),
    )
    otlp_endpoint: Annotated[str | None, RESTART] = Field(
        None,
        description="Export a span per client request over OTLP/HTTP (protobuf) to this URL, e.g. "
        "http://127.0.0.1:4318/v1/traces. Needs the OpenTelemetry SDK (" + OTLP_EXTRA + "); unset, no "
        "OpenTelemetry code is loaded. A client's `traceparent` is continued to the backends either way.",
        examples=["http://127.0.0.1:4318/v1/traces"],
        json_schema_extra=_hint("write the collector's traces URL, e.g. http://127.0.0.1:4318/v1/traces"),
    )
    otlp_headers: Annotated[dict[str, str], RESTART, SENSITIVE] = Field(
        default_factory=dict,
        description="Headers sent with every export (e.g. the collector's API key); values may use `${VAR}` and "
        "are never shown.",
        examples=[{"x-api-key": "${COLLECTOR_KEY}"}],
    )
    otlp_timeout: Annotated[float, RESTART] = Field(
        10.0,
        gt=0,
        le=300,
        description="Seconds one export may take.",
        json_schema_extra=_hint("write a number of seconds greater than 0, e.g. 10"),
    )
    service_name: Annotated[str, RESTART] = Field(
        "only1mcp",
        min_length=1,
        description="The `service.name` of the exported spans.",
        json_schema_extra=_hint("write a name, e.g. only1mcp"),
    )
    trace_sample: Annotated[float, RESTART] = Field(
        1.0,
        ge=0,
        le=1,
        description="With `otlp_endpoint`: the share of requests without a client trace context whose new trace "
        "is recorded. A client's context decides by its own sampled flag.",
        json_schema_extra=_hint("write a number from 0 to 1, e.g. 0.1"),
    )

    @field_validator("otlp_endpoint")
    @classmethod
    def _endpoint(cls, url: str | None) -> str | None:
        if url is None:
            return None
        if not url.startswith(("http://", "https://")):
            raise PydanticCustomError("otlp_scheme", "otlp_endpoint '{url}' must be an http:// or https:// URL (OTLP "
                                      "over HTTP)", {"url": mask_url(url)})
        # Found, not imported: the settings are validated in every process, most of which never export.
        if importlib.util.find_spec("opentelemetry") is None or importlib.util.find_spec(
                "opentelemetry.exporter.otlp.proto.http") is None:
            raise PydanticCustomError("otlp_missing", "otlp_endpoint is set but the OpenTelemetry SDK is not "
                                      "installed; run {extra}, or remove otlp_endpoint", {"extra": OTLP_EXTRA})
        return url
