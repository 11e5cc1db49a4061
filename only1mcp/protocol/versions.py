"""MCP protocol versions the gateway speaks, and negotiation."""

from __future__ import annotations

__all__ = ["ALL_VERSIONS", "BATCH_VERSIONS", "DEFAULT_HEADER_VERSION", "LATEST", "MODERN", "SUPPORTED", "negotiate"]

# Newest first. 2026-07-28 (the stateless revision) is served by a separate path.
SUPPORTED = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
LATEST = SUPPORTED[0]
# The stateless revisions: no initialize, no session, every request carries its version in _meta.
MODERN = ("2026-07-28",)
# Everything this gateway serves on /mcp, newest first (what server/discover and -32022 name).
ALL_VERSIONS = MODERN + SUPPORTED
# Without an MCP-Protocol-Version header a server assumes 2025-03-26 (Streamable HTTP spec).
DEFAULT_HEADER_VERSION = "2025-03-26"
# JSON-RPC batches were allowed in 2025-03-26 only.
BATCH_VERSIONS = frozenset({"2025-03-26"})


def negotiate(requested: object) -> str:
    """The client's version when we support it, else our latest (the client then decides)."""
    return requested if isinstance(requested, str) and requested in SUPPORTED else LATEST
