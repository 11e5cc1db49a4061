"""``only1mcp config import``: a client's ``mcpServers``/``servers`` JSON as native Only1MCP YAML."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from .document import ConfigError, Document
from .loader import build_settings
from .normalize import CLIENT_KEYS, normalize
from .parsers import parse_text

__all__ = ["import_client_config"]

_ORDER = ("name", "transport", "command", "args", "env", "cwd", "url", "replicas", "headers", "prefix",
          "enabled", "weight", "timeouts")


def import_client_config(path: str) -> tuple[str, list[str]]:
    """Return the native YAML text and notes about what was left out.

    ``${VAR}`` references are kept as they are, so secrets stay in the environment and out of the file.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(path, f"cannot read the file: {exc.strerror}") from None
    raw = parse_text(text, path)
    if not isinstance(raw.data, dict) or not any(key in raw.data for key in CLIENT_KEYS):
        raise ConfigError(path, "no 'mcpServers' (Claude Desktop, Cursor, Claude Code) or 'servers' (VS Code) "
                          "section found; pass the client's MCP config file")
    notes = [f"left out top-level key '{key}' (not an MCP server list)" for key in raw.data if key not in CLIENT_KEYS]
    selected = Document(raw.source, {k: v for k, v in raw.data.items() if k in CLIENT_KEYS}, raw.keys, raw.values)
    doc, problems = normalize(selected, {}, substitute=False)
    build_settings(doc, problems, {}, {})  # refuse to write a config that would not load
    backends: list[dict[str, Any]] = doc.data.get("backends", [])
    for backend in backends:
        if any("${input:" in str(v) for v in _strings(backend)):
            notes.append(f"backend '{backend['name']}' uses ${{input:...}}, which VS Code prompts for; replace "
                         "it with ${NAME} and set NAME in the environment")
    document = CommentedMap()
    entries = [CommentedMap((k, backend[k]) for k in _ORDER if k in backend) for backend in backends]
    document["backends"] = entries
    document.yaml_set_start_comment(f"Imported from {path} by `only1mcp config import`.\n"
                                    "Check it with `only1mcp validate`; ${VAR} values come from the environment.")
    yaml = YAML()
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump(document, out)
    return out.getvalue(), notes


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []
