"""The Only1MCP control plane: config, shared state, worker lifecycle. Never on the request path."""
