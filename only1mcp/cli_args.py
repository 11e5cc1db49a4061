"""The run flags shared by ``only1mcp-supervisor`` and ``only1mcp start``."""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_run_arguments", "overrides_from"]


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="config file (YAML, TOML or mcpServers JSON); default: $ONLY1MCP_CONFIG, else the "
                        "built-in demo config")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind; 0 lets the OS choose (default 8080)")
    parser.add_argument("--workers", type=int, help="worker processes; 0 = one per CPU (default)")
    parser.add_argument("--log-level", choices=["debug", "info", "warning", "error"], help="log level")


def overrides_from(args: argparse.Namespace) -> dict[str, Any]:
    """Command-line flags as a nested settings mapping (highest precedence)."""
    server = {
        key: value
        for key, value in (("host", args.host), ("port", args.port), ("workers", args.workers),
                           ("log_level", args.log_level))
        if value is not None
    }
    return {"server": server} if server else {}
