"""Turn any accepted config shape into the native one, keeping positions for error messages.

Accepted shapes: the native ``backends:`` list, Claude Desktop / Cursor / Claude Code ``mcpServers``
mappings and VS Code ``servers`` mappings, in any of YAML, TOML and JSON, mixed with native sections.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from .document import ConfigErrors, Document, Path_, Position, Problem, dotted

__all__ = ["CLIENT_KEYS", "normalize", "substitute_env"]

# Keys other MCP clients write into their server entries that mean nothing to a gateway; accepted and
# ignored so a client's file can be used as it is.
_IGNORED_CLIENT_KEYS = frozenset({"autoApprove", "alwaysAllow", "description", "gallery", "version"})
CLIENT_KEYS = ("mcpServers", "servers")
_TRANSPORT_ALIASES = {
    "stdio": "stdio",
    "http": "http",
    "streamable-http": "http",
    "streamable_http": "http",
    "streamablehttp": "http",
    "sse": "sse",
    "websocket": "websocket",
    "ws": "websocket",
}
_TRANSPORT_KEYS = ("transport", "type", "transportType")
_VAR = re.compile(r"\$(\$)|\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}")


def normalize(
    doc: Document, environ: Mapping[str, str], substitute: bool = True
) -> tuple[Document, list[Problem]]:
    """The Document in the native shape (``mcpServers``/``servers`` entries appended to ``backends``) and
    the problems found on the way; the caller validates the rest so every error is reported at once."""
    problems: list[Problem] = []
    data = doc.data
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigErrors(
            [Problem(doc.source, "the top level must be a mapping of sections (server, proxy, backends, "
                     "or mcpServers)", doc.locate(()) or Position(1, 1))]
        )
    out = Document(doc.source, None)
    native: dict[str, Any] = {}
    backends: list[Any] = []
    for key, value in data.items():
        if key in CLIENT_KEYS:
            continue
        _copy_positions(doc, (key,), out, (key,))
        if key == "backends" and isinstance(value, list):
            for index, entry in enumerate(value):
                backends.append(_native_entry(entry, doc, (key, index), problems))
        else:
            native[key] = value
    for client_key in CLIENT_KEYS:
        _client_entries(doc, data.get(client_key), client_key, out, backends, problems)
    if backends or "backends" in data:
        native["backends"] = backends if isinstance(data.get("backends", []), list) else data["backends"]
    out.data = native  # named entries for the messages below
    if substitute:
        out.data = substitute_env(native, out, environ, problems)
    _duplicate_names(out, problems)
    return out, problems


def _client_entries(doc: Document, entries: Any, client_key: str, out: Document, backends: list[Any],
                    problems: list[Problem]) -> None:
    """A client file's ``mcpServers``/``servers`` entries, appended to ``backends`` with their positions."""
    if entries is None:
        return
    if not isinstance(entries, dict):
        problems.append(Problem(doc.source, f"'{client_key}' must map server names to their settings",
                                doc.locate((client_key,)), client_key, (client_key,)))
        return
    for name, entry in entries.items():
        index = len(backends)
        old: Path_ = (client_key, name)
        _copy_positions(doc, old, out, ("backends", index))
        if old in doc.keys:
            out.keys[("backends", index, "name")] = doc.keys[old]
            out.values[("backends", index, "name")] = doc.keys[old]
        backends.append(_client_entry(name, entry, doc, old, out, ("backends", index), problems))


def _duplicate_names(doc: Document, problems: list[Problem]) -> None:
    seen: dict[str, int] = {}
    backends = doc.data.get("backends") if isinstance(doc.data, dict) else None
    for index, entry in enumerate(backends if isinstance(backends, list) else []):
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            first = doc.locate(("backends", seen[name], "name"))
            where = f" (first at line {first.line})" if first else ""
            problems.append(Problem(doc.source, f"duplicate backend name '{name}'{where}; every backend needs "
                                    f"its own name, e.g. '{name}-2'", doc.locate(("backends", index, "name")),
                                    f"backends.{name}.name", ("backends", index, "name")))
        else:
            seen[name] = index


def _copy_positions(doc: Document, old: Path_, out: Document, new: Path_) -> None:
    size = len(old)
    for table_in, table_out in ((doc.keys, out.keys), (doc.values, out.values)):
        for path, pos in table_in.items():
            if path[:size] == old:
                table_out[(*new, *path[size:])] = pos


def _transport(
    entry: dict[str, Any], doc: Document, path: Path_, scope: Path_, problems: list[Problem]
) -> str | None:
    """The entry's transport: named by ``transport``/``type``/``transportType``, else inferred."""
    for key in _TRANSPORT_KEYS:
        if key in entry:
            raw = entry[key]
            name = _TRANSPORT_ALIASES.get(str(raw).lower().replace(" ", ""))
            if name is None:
                problems.append(Problem(doc.source, f"unknown transport {raw!r}; write one of stdio, http, sse, "
                                        "websocket", doc.locate((*path, key)), dotted((*path, key), doc.data), scope))
            return name
    if "command" in entry:
        return "stdio"
    url = entry.get("url")
    if isinstance(url, str):
        if url.startswith(("ws://", "wss://")):
            return "websocket"
        if url.rstrip("/").endswith("/sse"):
            return "sse"
        return "http"
    label = entry.get("name", path[-1])
    for key in entry:
        close = difflib.get_close_matches(str(key), ["command", "url"], n=1, cutoff=0.6)
        if close and key != close[0]:
            problems.append(Problem(doc.source, f"unknown key '{key}'; did you mean '{close[0]}'? (backend "
                                    f"'{label}' needs `command` or `url`)", doc.locate((*path, key), prefer_key=True),
                                    dotted((*path, key), doc.data), scope))
            return None
    problems.append(Problem(doc.source, f"backend '{label}' needs `command` (to run a local stdio server) or "
                            "`url` (for a remote server)", doc.locate(path, prefer_key=True),
                            dotted(path, doc.data), scope))
    return None


def _native_entry(entry: Any, doc: Document, path: Path_, problems: list[Problem]) -> Any:
    if not isinstance(entry, dict):
        return entry  # the model reports the wrong type with its position
    out = {k: v for k, v in entry.items() if k not in _TRANSPORT_KEYS}
    transport = _transport(entry, doc, path, path, problems)
    if transport is not None:
        out["transport"] = transport
    return out


def _client_entry(
    name: str, entry: Any, doc: Document, old: Path_, out_doc: Document, new: Path_, problems: list[Problem]
) -> Any:
    if not isinstance(entry, dict):
        problems.append(Problem(doc.source, f"server '{name}' must be a mapping with `command` or `url`",
                                doc.locate(old), dotted(old, doc.data), new))
        return {"name": name}
    out: dict[str, Any] = {"name": name}
    transport = _transport(entry, doc, old, new, problems)
    if transport is not None:
        out["transport"] = transport
    for key, value in entry.items():
        if key in _TRANSPORT_KEYS or key in _IGNORED_CLIENT_KEYS:
            continue
        if key == "disabled":  # Cline, Roo and others write `disabled: true`
            out["enabled"] = not value if isinstance(value, bool) else value
            _move(out_doc, (*new, key), (*new, "enabled"))
        elif key == "timeout":  # seconds, as Cline writes it
            out["timeouts"] = {"call": value}
            _move(out_doc, (*new, key), (*new, "timeouts", "call"))
        else:
            out[key] = value
    return out


def _move(doc: Document, old: Path_, new: Path_) -> None:
    for table in (doc.keys, doc.values):
        if old in table:
            table[new] = table[old]


def substitute_env(node: Any, doc: Document, environ: Mapping[str, str], problems: list[Problem],
                   path: Path_ = ()) -> Any:
    """Replace ``${VAR}``, ``${env:VAR}`` and ``${VAR:-default}`` in every string; ``$$`` is a literal ``$``."""
    if isinstance(node, dict):
        return {k: substitute_env(v, doc, environ, problems, (*path, k)) for k, v in node.items()}
    if isinstance(node, list):
        return [substitute_env(v, doc, environ, problems, (*path, i)) for i, v in enumerate(node)]
    if not isinstance(node, str) or "$" not in node:
        return node

    def replace(match: re.Match[str]) -> str:
        if match.group(1):
            return "$"
        if match.group(4) is not None:
            inner = match.group(4)
            hint = ("VS Code prompts for ${input:...} values; Only1MCP cannot, so write ${env:NAME} and set "
                    "NAME in the environment") if inner.startswith("input:") else "write ${NAME} or ${NAME:-default}"
            problems.append(Problem(doc.source, f"cannot substitute ${{{inner}}}; {hint}", doc.locate(path),
                                    dotted(path, doc.data), path))
            return match.group(0)
        name, default = match.group(2), match.group(3)
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        problems.append(Problem(doc.source, f"environment variable {name} is not set; set it, or write "
                                f"${{{name}:-default}} to give a default", doc.locate(path),
                                dotted(path, doc.data), path))
        return match.group(0)

    return _VAR.sub(replace, node)
