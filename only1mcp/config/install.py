"""``only1mcp config install``: add the gateway to a desktop client's MCP config, carefully.

The entry runs ``only1mcp stdio --url URL``. The client's file keeps every other entry and key; it is
backed up before the first change; installing twice changes nothing; ``--dry-run`` shows a diff.
"""

from __future__ import annotations

import difflib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from .document import ConfigErrors
from .parsers import parse_json

__all__ = ["CLIENTS", "InstallError", "install"]


class InstallError(Exception):
    pass


# client -> (key that holds servers, default file per platform)
CLIENTS: dict[str, str] = {"claude-desktop": "mcpServers", "claude-code": "mcpServers", "cursor": "mcpServers",
                           "vscode": "servers"}


def default_path(client: str) -> Path:
    home = Path.home()
    mac = sys.platform == "darwin"
    if client == "claude-desktop":
        if mac:
            return home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json"
        if os.name == "nt":
            return Path(os.environ.get("APPDATA", home)) / "Claude" / "claude_desktop_config.json"
        return home / ".config" / "Claude" / "claude_desktop_config.json"
    if client == "claude-code":
        return home / ".claude.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if mac:
        return home / "Library" / "Application Support" / "Code" / "User" / "mcp.json"
    return home / ".config" / "Code" / "User" / "mcp.json"


def _entry(client: str, url: str) -> dict[str, Any]:
    command = shutil.which("only1mcp") or str(Path(sys.argv[0]).resolve())
    entry: dict[str, Any] = {"command": command, "args": ["stdio", "--url", url]}
    return {"type": "stdio", **entry} if client == "vscode" else entry


def install(client: str, url: str, name: str, path: str | None, dry_run: bool) -> str:
    """Returns what happened, in one line (or the diff, for a dry run)."""
    target = Path(path) if path else default_path(client)
    key = CLIENTS[client]
    before = target.read_text(encoding="utf-8") if target.exists() else ""
    data: dict[str, Any] = {}
    if before.strip():
        try:
            parsed = parse_json(before, str(target)).data
        except ConfigErrors as exc:
            raise InstallError(f"{exc}; fix the file or pass another one with --path") from None
        if not isinstance(parsed, dict):
            raise InstallError(f"{target} is not a JSON object; pass the client's config file with --path")
        data = parsed
    servers = data.get(key)
    if servers is not None and not isinstance(servers, dict):
        raise InstallError(f"'{key}' in {target} is not an object; fix it by hand first")
    entry = _entry(client, url)
    if (servers or {}).get(name) == entry:
        return f"{client}: '{name}' is already installed in {target}; nothing changed"
    data[key] = {**(servers or {}), name: entry}
    after = json.dumps(data, indent=2) + "\n"
    if dry_run:
        diff = difflib.unified_diff(before.splitlines(keepends=True), after.splitlines(keepends=True),
                                    fromfile=str(target), tofile=f"{target} (after install)")
        return "".join(diff).rstrip("\n")
    target.parent.mkdir(parents=True, exist_ok=True)
    backup = ""
    if target.exists():
        backup_path = target.with_name(f"{target.name}.bak-{time.strftime('%Y%m%d%H%M%S')}")
        shutil.copy2(target, backup_path)
        backup = f" (backup: {backup_path})"
    temporary = target.with_name(target.name + ".only1mcp-tmp")
    temporary.write_text(after, encoding="utf-8")
    temporary.replace(target)
    return f"{client}: installed '{name}' -> {url} in {target}{backup}; restart the client to use it"
