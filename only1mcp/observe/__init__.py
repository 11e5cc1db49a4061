"""Logs and traces: the request a log line belongs to, JSON lines, the access log, W3C trace context and
the optional OpenTelemetry export (docs/architecture.md, "Logs and traces")."""
