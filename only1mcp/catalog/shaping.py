"""A backend's tools and prompts as its shaping config shows them: filtered, renamed, described anew, with
fixed arguments taken out of what clients see.

Pure: the supervisor's merge calls it with what discovery found. A fixed argument the tool (or prompt) does
not have can only be found here, once the backend has answered: that override is left out and reported.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from only1mcp.config.shaping import PromptShaping, ToolShaping
from only1mcp.policy.patterns import glob_regex

__all__ = ["Shaped", "shape_prompts", "shape_tools"]


@dataclass(frozen=True, slots=True)
class Shaped:
    """One tool or prompt to expose: the backend's own name, the name to namespace (the override's or the
    same), the item as clients see it (its name is set by the merge) and the arguments the gateway sends."""

    original: str
    name: str
    item: dict[str, Any]
    fixed: dict[str, Any] = field(default_factory=dict)


def _matcher(globs: list[str]) -> Callable[[str], bool] | None:
    if not globs:
        return None
    regex = re.compile("|".join(f"(?:{glob_regex(g)})" for g in globs), re.DOTALL)
    return lambda name: regex.match(name) is not None


def _shown(allow: list[str], deny: list[str]) -> Callable[[str], bool]:
    allowed, denied = _matcher(allow), _matcher(deny)
    return lambda name: (allowed is None or allowed(name)) and (denied is None or not denied(name))


def _problem(backend: str, kind: str, name: str, text: str) -> dict[str, str]:
    return {"backend": backend, kind: name, "problem": text}


def _without_properties(schema: Any, names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The input schema without the properties ``names`` (and without them in ``required``); the names it
    does not have."""
    schema = schema if isinstance(schema, dict) else {}
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
    missing = [name for name in names if name not in properties]
    if missing:
        return schema, missing
    shaped = {**schema, "properties": {k: v for k, v in properties.items() if k not in names}}
    if isinstance(schema.get("required"), list):
        required = [r for r in schema["required"] if r not in names]
        if required:
            shaped["required"] = required
        else:
            del shaped["required"]
    return shaped, []


def _without_arguments(prompt: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], list[str]]:
    """The prompt without the arguments ``names``; the names it does not have."""
    arguments = [a for a in prompt.get("arguments") or [] if isinstance(a, dict)]
    missing = [name for name in names if name not in {a.get("name") for a in arguments}]
    if missing:
        return prompt, missing
    return {**prompt, "arguments": [a for a in arguments if a.get("name") not in names]}, []


def _with_schema_without(tool: dict[str, Any], names: list[str]) -> tuple[dict[str, Any], list[str]]:
    schema, missing = _without_properties(tool.get("inputSchema"), names)
    return ({**tool, "inputSchema": schema} if not missing else tool), missing


TakeOut = Callable[[dict[str, Any], list[str]], tuple[dict[str, Any], list[str]]]


def _shape(backend: str, kind: str, items: list[dict[str, Any]], shaping: ToolShaping | PromptShaping,
           take_out: TakeOut, problems: list[dict[str, str]]) -> list[Shaped]:
    shown = _shown(shaping.allow, shaping.deny)
    found: list[Shaped] = []
    offered = set()
    for entry in items:
        original = str(entry.get("name", ""))
        offered.add(original)
        if not shown(original):
            continue
        override = shaping.overrides.get(original)
        if override is None:
            found.append(Shaped(original, original, entry))
            continue
        item, fixed = entry, dict(override.fixed_arguments)
        if fixed:
            item, missing = take_out(entry, list(fixed))
            if missing:
                # Never half-applied: a client must not be told an argument is fixed that the backend ignores.
                problems.append(_problem(backend, kind, original, f"fixed_arguments {', '.join(missing)} are not "
                                         f"among the {kind}'s arguments; the override is not applied"))
                found.append(Shaped(original, original, entry))
                continue
        if override.description is not None:
            item = {**item, "description": override.description}
        found.append(Shaped(original, override.name or original, item, fixed))
    problems += [_problem(backend, kind, name, f"the backend offers no such {kind}; the override is not applied")
                 for name in shaping.overrides if name not in offered]
    return found


def shape_tools(backend: str, tools: list[dict[str, Any]], shaping: ToolShaping,
                problems: list[dict[str, str]]) -> list[Shaped]:
    """The tools to expose, in the backend's order; what cannot be applied is appended to ``problems``.
    Fixed arguments leave the input schema's properties (and ``required``)."""
    return _shape(backend, "tool", tools, shaping, _with_schema_without, problems)


def shape_prompts(backend: str, prompts: list[dict[str, Any]], shaping: PromptShaping,
                  problems: list[dict[str, str]]) -> list[Shaped]:
    """The prompts to expose, as ``shape_tools``; fixed arguments leave the prompt's argument list."""
    return _shape(backend, "prompt", prompts, shaping, _without_arguments, problems)
