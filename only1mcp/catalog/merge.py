"""Merge what every backend offers into the one catalog the supervisor publishes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from only1mcp.config.shaping import PromptShaping, ToolShaping

from .naming import Namer
from .shaping import Shaped, shape_prompts, shape_tools
from .uris import explicit_uri

__all__ = ["Discovery", "merge"]


@dataclass(slots=True)
class Discovery:
    """Everything one backend offered at its last successful discovery."""

    backend: str
    prefix: str
    capabilities: dict[str, Any] = field(default_factory=dict)
    server_info: dict[str, Any] = field(default_factory=dict)
    protocol_version: str = ""
    instructions: str | None = None
    tools: list[dict[str, Any]] = field(default_factory=list)
    prompts: list[dict[str, Any]] = field(default_factory=list)
    resources: list[dict[str, Any]] = field(default_factory=list)
    templates: list[dict[str, Any]] = field(default_factory=list)


def _client_capabilities(discoveries: list[Discovery]) -> dict[str, Any]:
    """Offer a client what at least one backend offers. List changes are always announced: the gateway
    itself changes its lists when backends come, go or reload."""
    offered: dict[str, Any] = {}
    for kind in ("tools", "prompts"):
        if any(kind in d.capabilities for d in discoveries):
            offered[kind] = {"listChanged": True}
    if any("resources" in d.capabilities for d in discoveries):
        subscribe = any((d.capabilities.get("resources") or {}).get("subscribe") for d in discoveries)
        offered["resources"] = {"listChanged": True, **({"subscribe": True} if subscribe else {})}
    for kind in ("logging", "completions"):
        if any(kind in d.capabilities for d in discoveries):
            offered[kind] = {}
    tasks = [d.capabilities["tasks"] for d in discoveries if isinstance(d.capabilities.get("tasks"), dict)]
    if tasks:
        offered["tasks"] = _union(tasks)
    return offered


def _union(parts: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(out.get(key), dict):
                out[key] = _union([out[key], value])
            elif key not in out:
                out[key] = value
    return out


# A backend's shaping config: (its `tools`, its `prompts`)
Shaping = dict[str, tuple[ToolShaping, PromptShaping]]
_UNSHAPED = (ToolShaping(), PromptShaping())


def _expose(found: Discovery, shaped: list[Shaped], namer: Namer, into: list[dict[str, Any]],
            routes: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Name one backend's tools (or prompts) in the merged namespace, with their routes and fixed arguments."""
    for entry in shaped:
        exposed = namer.assign(found.backend, found.prefix, entry.name)
        into.append({**entry.item, "name": exposed})
        routes[exposed] = [found.backend, entry.original]
        if entry.fixed:
            fixed[exposed] = entry.fixed


def merge(discoveries: list[Discovery], separator: str, status: dict[str, Any],
          shaping: Shaping | None = None) -> dict[str, Any]:
    """The catalog value: exposed lists, routes back to (backend, original), the arguments the gateway fixes
    per exposed tool and prompt, capabilities, collisions and the shaping that could not be applied."""
    tool_names, prompt_names = Namer(separator), Namer(separator)
    tools: list[dict[str, Any]] = []
    prompts: list[dict[str, Any]] = []
    resources: list[dict[str, Any]] = []
    templates: list[dict[str, Any]] = []
    routes: dict[str, Any] = {"tools": {}, "prompts": {}, "resources": {}, "templates": []}
    uri_owner: dict[str, str] = {}
    template_owner: dict[str, str] = {}
    collisions: list[dict[str, str]] = []
    problems: list[dict[str, str]] = []
    fixed: dict[str, dict[str, Any]] = {"tools": {}, "prompts": {}}
    for found in discoveries:
        tool_shaping, prompt_shaping = (shaping or {}).get(found.backend, _UNSHAPED)
        _expose(found, shape_tools(found.backend, found.tools, tool_shaping, problems), tool_names, tools,
                routes["tools"], fixed["tools"])
        _expose(found, shape_prompts(found.backend, found.prompts, prompt_shaping, problems), prompt_names,
                prompts, routes["prompts"], fixed["prompts"])
        for resource in found.resources:
            uri = str(resource.get("uri", ""))
            exposed = uri
            if uri in uri_owner:
                exposed = explicit_uri(found.backend, uri)
                collisions.append({"uri": uri, "kept_by": uri_owner[uri], "backend": found.backend,
                                   "renamed_to": exposed})
            else:
                uri_owner[uri] = found.backend
            resources.append({**resource, "uri": exposed})
            routes["resources"][exposed] = [found.backend, uri]
        for template in found.templates:
            pattern = str(template.get("uriTemplate", ""))
            exposed = pattern
            if pattern in template_owner:
                exposed = explicit_uri(found.backend, pattern)
                collisions.append({"uriTemplate": pattern, "kept_by": template_owner[pattern],
                                   "backend": found.backend, "renamed_to": exposed})
            else:
                template_owner[pattern] = found.backend
            templates.append({**template, "uriTemplate": exposed})
            routes["templates"].append([exposed, found.backend, pattern])
    collisions = tool_names.collisions + prompt_names.collisions + collisions
    instructions = "\n\n".join(f"[{d.backend}] {d.instructions}" for d in discoveries if d.instructions)
    if fixed["tools"] or fixed["prompts"]:
        routes["fixed"] = fixed
    return {
        "capabilities": _client_capabilities(discoveries),
        "instructions": instructions,
        "tools": tools,
        "prompts": prompts,
        "resources": resources,
        "templates": templates,
        "routes": routes,
        "collisions": collisions,
        "backends": status,
        **({"shaping": problems} if problems else {}),
    }
