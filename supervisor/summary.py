"""The start-up summary: what the gateway serves once it is ready (backends, transports, tool counts,
address). A rich table when stderr is a terminal (someone is watching it start), plain log lines otherwise
(a journal or a file reads those better)."""

from __future__ import annotations

import logging
import sys
from typing import Any, TextIO

from rich.console import Console
from rich.table import Table

from only1mcp.backends.factory import replica_count
from only1mcp.config.models import Settings

__all__ = ["startup_summary"]

log = logging.getLogger("only1mcp.supervisor")


def _rows(settings: Settings, catalog: dict[str, Any]) -> list[tuple[str, str, int, int, str]]:
    """(name, transport, replicas, tools, state) per enabled backend."""
    tools: dict[str, int] = {}
    for backend, _original in ((catalog.get("routes") or {}).get("tools") or {}).values():
        tools[backend] = tools.get(backend, 0) + 1
    found = catalog.get("backends") or {}
    rows = []
    for backend in settings.enabled_backends():
        replicas = replica_count(backend)
        state = (found.get(backend.name) or {}).get("state", "starting")
        rows.append((backend.name, backend.transport, replicas, tools.get(backend.name, 0), state))
    return rows


def startup_summary(settings: Settings, catalog: dict[str, Any], url: str, workers: int,
                    stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    rows = _rows(settings, catalog)
    if stream.isatty():
        _table(rows, url, workers, stream)
        return
    for name, transport, replicas, tools, state in rows:
        log.info("backend %s: transport=%s replicas=%d tools=%d state=%s", name, transport, replicas, tools, state)
    log.info("serving %d backend(s), %d tool(s) at %s/mcp with %d workers", len(rows),
             sum(row[3] for row in rows), url, workers)


def _table(rows: list[tuple[str, str, int, int, str]], url: str, workers: int, stream: TextIO) -> None:
    table = Table(title=f"Only1MCP at {url}/mcp ({workers} workers)", title_justify="left")
    for column in ("backend", "transport", "replicas", "tools", "state"):
        table.add_column(column, justify="right" if column in ("replicas", "tools") else "left")
    for name, transport, replicas, tools, state in rows:
        table.add_row(name, transport, str(replicas), str(tools), state)
    Console(file=stream).print(table)
