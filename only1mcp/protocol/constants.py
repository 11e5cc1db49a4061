"""Names and intervals of MCP's HTTP transports, in one place."""

from __future__ import annotations

__all__ = [
    "ACCEPT_BOTH",
    "LAST_EVENT_ID",
    "SESSION_HEADER",
    "SSE_HEADERS",
    "SSE_KEEPALIVE",
    "VERSION_HEADER",
]

SESSION_HEADER = "Mcp-Session-Id"
VERSION_HEADER = "MCP-Protocol-Version"
LAST_EVENT_ID = "Last-Event-ID"
ACCEPT_BOTH = "application/json, text/event-stream"  # what a Streamable HTTP client sends with every POST
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache, no-transform",
               "X-Accel-Buffering": "no"}  # the last one: nginx must not buffer an event stream
SSE_KEEPALIVE = 15.0  # seconds between comment lines on an idle stream: proxies close silent connections
