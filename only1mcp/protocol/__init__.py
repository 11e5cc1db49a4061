"""MCP and JSON-RPC facts the gateway relies on: codec, message shapes, errors, versions, SSE."""
