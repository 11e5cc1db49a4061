"""The Only1MCP data plane: aiohttp workers sharing one port, each with a replica of shared state."""
