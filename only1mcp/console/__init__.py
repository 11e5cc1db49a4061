"""The operator's console in a terminal: ``only1mcp top`` (live) and ``only1mcp status`` (once)."""
