"""Backend transports (stdio, Streamable HTTP, …) behind one interface, and the MCP client session."""
