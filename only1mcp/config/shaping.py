"""Shaping the catalog: per backend, which tools and prompts are shown and how (`backends[].tools`,
`backends[].prompts`), and the named profiles that each serve a smaller catalog (`profiles`).

What can be checked without a backend is checked here (globs, names, a profile's values). Whether a fixed
argument exists in a tool's schema is known only once the backend answers: the supervisor checks it when it
merges the catalog (only1mcp/catalog/shaping.py).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from .fields import _hint, _Strict

__all__ = ["TOOLS_MODES", "Glob", "Profile", "PromptOverride", "PromptShaping", "ToolOverride", "ToolShaping"]

# What proxy.tools_mode and a profile's tools_mode may name (the transformations live in the catalog view).
TOOLS_MODES = ("full", "compact", "lazy")
_NAME_CHARS = r"^[A-Za-z0-9_.-]{1,128}$"  # MCP tool names: 1-128 chars of [A-Za-z0-9_.-]
_GLOB_HINT = _hint("write a glob: `*` any run of characters, `?` one, e.g. 'read_*'")


def _check_glob(text: str) -> str:
    if not text or any(c.isspace() for c in text):
        raise PydanticCustomError("shaping_glob", "glob '{glob}' is empty or contains whitespace, which no name "
                                  "has; write e.g. 'read_*'", {"glob": text})
    return text


Glob = Annotated[str, AfterValidator(_check_glob)]


class ToolOverride(_Strict):
    """How one tool of a backend is shown to clients and called."""

    name: str | None = Field(
        None, pattern=_NAME_CHARS,
        description="The name clients see instead of the backend's, still behind the backend's prefix "
        "(`<prefix><sep><name>`; set the backend's `prefix: \"\"` for bare names).",
        json_schema_extra=_hint("use 1-128 characters of letters, digits, _ . -"))
    description: str | None = Field(
        None, description="The description clients see instead of the backend's.")
    fixed_arguments: dict[str, Any] = Field(
        default_factory=dict,
        description="Arguments the gateway sends on every call with these values. They are removed from the "
        "input schema clients see, and a call that sends one of them is refused (-32602 naming it). An argument "
        "the tool's schema does not have is reported when the backend's tools are discovered (logged once, shown "
        "in admin status under `catalog.shaping`), and that override is not applied.",
        json_schema_extra=_hint("map argument names to values, e.g. {root: /srv/data}"))


class PromptOverride(_Strict):
    """How one prompt of a backend is shown to clients and fetched."""

    name: str | None = Field(
        None, pattern=_NAME_CHARS,
        description="The name clients see instead of the backend's, still behind the backend's prefix.",
        json_schema_extra=_hint("use 1-128 characters of letters, digits, _ . -"))
    description: str | None = Field(None, description="The description clients see instead of the backend's.")
    fixed_arguments: dict[str, str] = Field(
        default_factory=dict,
        description="Prompt arguments (strings) the gateway sends on every prompts/get; removed from the "
        "prompt's argument list, and a request that sends one is refused (-32602 naming it).",
        json_schema_extra=_hint("map argument names to strings, e.g. {language: en}"))


class ToolShaping(_Strict):
    """Which of a backend's tools clients see, and how (`backends[].tools`)."""

    allow: list[Glob] = Field(
        default_factory=list,
        description="Globs over the backend's own tool names (before the prefix); when given, only tools matching "
        "one are shown and callable. Empty: every tool.", json_schema_extra=_GLOB_HINT)
    deny: list[Glob] = Field(
        default_factory=list,
        description="Globs over the backend's own tool names; a match is hidden and refused as unknown, even "
        "when `allow` matches too.", json_schema_extra=_GLOB_HINT)
    overrides: dict[str, ToolOverride] = Field(
        default_factory=dict,
        description="By the backend's own tool name: `{name, description, fixed_arguments}`.",
        json_schema_extra=_hint("map tool names to {name, description, fixed_arguments}"))


class PromptShaping(_Strict):
    """Which of a backend's prompts clients see, and how (`backends[].prompts`)."""

    allow: list[Glob] = Field(
        default_factory=list,
        description="Globs over the backend's own prompt names; when given, only matching prompts are shown. "
        "Empty: every prompt.", json_schema_extra=_GLOB_HINT)
    deny: list[Glob] = Field(
        default_factory=list, description="Globs over the backend's own prompt names that are hidden.",
        json_schema_extra=_GLOB_HINT)
    overrides: dict[str, PromptOverride] = Field(
        default_factory=dict,
        description="By the backend's own prompt name: `{name, description, fixed_arguments}`.",
        json_schema_extra=_hint("map prompt names to {name, description, fixed_arguments}"))


class Profile(_Strict):
    """One named catalog, served at `/mcp/<name>` (and `/sse/<name>`, `/ws/<name>`)."""

    include: list[Glob] = Field(
        default_factory=list,
        description="Globs, each matched against a backend's name and against the exposed tool and prompt names "
        "and resource URIs clients see: an entry is in the profile when one matches either. Empty: everything.",
        examples=[["github", "fs_read_*"]], json_schema_extra=_GLOB_HINT)
    exclude: list[Glob] = Field(
        default_factory=list,
        description="Globs as in `include`; a match is left out even when `include` matches.",
        json_schema_extra=_GLOB_HINT)
    tools_mode: Literal["full", "compact", "lazy"] | None = Field(
        None,
        description="How this profile's tools/list is presented: `full`, `compact` or `lazy`. Default: "
        "`proxy.tools_mode`.", json_schema_extra=_hint("write full, compact or lazy (or leave it out)"))
