"""Lossless compaction of a JSON Schema: drop what changes neither validation nor meaning for the model.

``compact_schema`` returns a schema that accepts exactly the instances the original accepts (a property test
checks this over every tool of the real catalogs): it removes ``$schema`` when nothing in the schema reads
differently across dialects, titles that only repeat their property's name, an empty ``required``, keywords
set to the value JSON Schema assumes anyway, and shares sub-schemas that occur more than once through
``$defs``. Descriptions, defaults, examples and every validating keyword are kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from only1mcp.protocol.codec import dumps

__all__ = ["compact_schema", "walk"]

Schema = dict[str, Any]

# Keywords whose value is one sub-schema, a list of them, or a map of name -> sub-schema. Everything else is
# data (enum, const, default, examples, …) and never touched.
_ONE = ("additionalProperties", "not", "if", "then", "else", "contains", "propertyNames", "additionalItems",
        "unevaluatedItems", "unevaluatedProperties", "items")
_MANY = ("allOf", "anyOf", "oneOf", "prefixItems")
_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
# A keyword at the value JSON Schema gives it when absent validates nothing.
_NO_OP = {"additionalProperties": True, "additionalItems": True, "unevaluatedProperties": True,
          "unevaluatedItems": True, "uniqueItems": False, "minItems": 0, "minLength": 0, "minProperties": 0,
          "required": [], "dependentRequired": {}, "dependentSchemas": {}, "patternProperties": {},
          "$defs": {}, "definitions": {}}
# What reads differently in draft-07 and 2020-12 (the dialect a schema without $schema is read in).
_DIALECT_KEYWORDS = frozenset({"additionalItems", "dependencies", "prefixItems", "$recursiveRef",
                               "$dynamicRef", "$recursiveAnchor", "$dynamicAnchor", "unevaluatedItems",
                               "unevaluatedProperties", "dependentRequired", "dependentSchemas"})
_ANNOTATIONS = frozenset({"description", "title", "default", "examples", "$comment", "deprecated", "readOnly",
                          "writeOnly"})
# Sub-schemas shorter than this (serialized) cost more as a $ref than they save when shared.
_SHARE_AT = 64
_NOT_NAME = re.compile(r"[^a-z0-9]")
_ROOT_SUFFIX = re.compile(r"(arguments|args|input|params|parameters|request|schema)$")


def walk(schema: Any, visit: Callable[[Schema], Schema]) -> Any:
    """A copy of ``schema`` with ``visit`` applied to every sub-schema, innermost first."""
    if not isinstance(schema, dict):
        return schema
    return visit(_map_children(schema, lambda sub: walk(sub, visit)))


def _plain(text: str) -> str:
    return _NOT_NAME.sub("", text.lower())


def _drop_noise(schema: Schema) -> Schema:
    """One sub-schema without the keywords that validate nothing (titles are handled by the parent)."""
    return {k: v for k, v in schema.items() if not (k in _NO_OP and v == _NO_OP[k] and type(v) is type(_NO_OP[k]))}


def _types_union(schema: Schema) -> Schema:
    """``anyOf: [{type: string}, {type: null}]`` is ``type: [string, null]``: the same instances, fewer words."""
    branches = schema.get("anyOf")
    if "type" in schema or not isinstance(branches, list) or not branches or not all(
            isinstance(b, dict) and b.keys() == {"type"} and isinstance(b["type"], str) for b in branches):
        return schema
    types = list(dict.fromkeys(b["type"] for b in branches))
    out = {k: v for k, v in schema.items() if k != "anyOf"}
    out["type"] = types[0] if len(types) == 1 else types
    return out


_JSON_TYPE = {str: "string", bool: "boolean", type(None): "null", dict: "object", list: "array"}


def _implied_type(schema: Schema) -> Schema:
    """A ``type`` that every ``enum`` value (or the ``const``) already has says nothing more."""
    values = schema["enum"] if isinstance(schema.get("enum"), list) else [schema["const"]] if "const" in schema else []
    kind = schema.get("type")
    if not values or not isinstance(kind, str) or kind not in _JSON_TYPE.values():
        return schema  # numbers: 1.0 is an integer to JSON Schema, not to Python; leave them
    if all(_JSON_TYPE.get(type(value)) == kind for value in values):
        return {k: v for k, v in schema.items() if k != "type"}
    return schema


def _drop_echoes(schema: Schema) -> Schema:
    """Per property: a title that only says its name again (``repo_path`` titled "Repo Path"), and a default
    of null on an optional one (left out, it is absent anyway). Annotations both: validation is unchanged."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        return schema
    required = schema.get("required") if isinstance(schema.get("required"), list) else []
    kept = {}
    for name, sub in properties.items():
        if isinstance(sub, dict):
            echoed = isinstance(sub.get("title"), str) and _plain(sub["title"]) == _plain(name)
            null_default = "default" in sub and sub["default"] is None and name not in required
            sub = {k: v for k, v in sub.items()  # noqa: PLW2901
                   if not (k == "title" and echoed) and not (k == "default" and null_default)}
        kept[name] = sub
    return {**schema, "properties": kept}


def _root_title_echoes(title: Any, tool_name: str) -> bool:
    """A root title that is the tool's name, or its argument model's (``statusArguments`` of git_status)."""
    if not isinstance(title, str):
        return False
    stem = _ROOT_SUFFIX.sub("", _plain(title))
    return bool(stem) and stem in _plain(tool_name)


def _dialect_neutral(schema: Any) -> bool:
    """True when the schema means the same in draft-07 and 2020-12, so its ``$schema`` can go."""
    found = False

    def check(node: Schema) -> Schema:
        nonlocal found
        if _DIALECT_KEYWORDS & node.keys() or isinstance(node.get("items"), list):
            found = True
        if "$ref" in node and not node.keys() - _ANNOTATIONS - {"$ref"}:
            return node  # annotations beside a $ref validate nothing in either dialect
        if "$ref" in node:  # draft-07 ignores a $ref's validating siblings; 2020-12 applies them
            found = True
        return node

    walk(schema, check)
    return not found


def _share(schema: Schema) -> Schema:
    """Sub-schemas that occur more than once, moved to ``$defs`` and referenced, when that is shorter."""
    if any(key in schema for key in ("$defs", "definitions", "$id", "$anchor")) or _has_refs(schema):
        return schema  # addressing of its own: leave it alone
    counts: dict[bytes, int] = {}

    def count(node: Schema) -> Schema:
        key = dumps(node)
        if len(key) >= _SHARE_AT:  # the root is counted too, once: never shared
            counts[key] = counts.get(key, 0) + 1
        return node

    walk(schema, count)
    names = {key: f"s{index}" for index, key in enumerate(k for k, n in counts.items() if n > 1)}
    if not names:
        return schema
    definitions: dict[str, Any] = {}

    def substitute(node: Any, top: bool = False) -> Any:
        """Outermost first: a repeated sub-schema becomes a $ref, its own body defined once."""
        if not isinstance(node, dict):
            return node
        name = None if top else names.get(dumps(node))
        if name is not None:
            if name not in definitions:
                definitions[name] = {}  # reserve: a body never contains itself
                definitions[name] = _map_children(node, substitute)
            return {"$ref": f"#/$defs/{name}"}
        return _map_children(node, substitute)

    body = substitute(schema, top=True)
    shared = {**body, "$defs": definitions}
    return shared if len(dumps(shared)) < len(dumps(schema)) else schema


def _map_children(node: Schema, change: Callable[[Any], Any]) -> Schema:
    """``node`` with ``change`` applied to each of its direct sub-schemas."""
    out: Schema = {}
    for key, value in node.items():
        if key in _ONE:
            out[key] = [change(v) for v in value] if isinstance(value, list) else change(value)
        elif key in _MANY and isinstance(value, list):
            out[key] = [change(v) for v in value]
        elif key in _NAMED and isinstance(value, dict):
            out[key] = {name: change(v) for name, v in value.items()}
        else:
            out[key] = value
    return out


def _has_refs(schema: Any) -> bool:
    found = False

    def check(node: Schema) -> Schema:
        nonlocal found
        found = found or "$ref" in node or "$dynamicRef" in node or "$recursiveRef" in node
        return node

    walk(schema, check)
    return found


def compact_schema(schema: Any, tool_name: str = "") -> Any:
    """The smallest schema we know to accept exactly what ``schema`` accepts; anything not a JSON object
    (a malformed schema) is returned as it is."""
    if not isinstance(schema, dict):
        return schema
    out = walk(schema, lambda node: _drop_noise(_drop_echoes(_implied_type(_types_union(node)))))
    if "$schema" in out and _dialect_neutral(out):
        out = {k: v for k, v in out.items() if k != "$schema"}
    if _root_title_echoes(out.get("title"), tool_name):
        out = {k: v for k, v in out.items() if k != "title"}
    return _share(out)
