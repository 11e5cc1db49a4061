"""`compact` is lossless for validation: for every tool of the real catalogs (tests/fixtures/catalogs), the
compact input schema accepts exactly the argument objects the original accepts.

Instances come from both schemas (hypothesis-jsonschema: everything one accepts must pass the other) and
from near misses (objects built from the schema's own property names with arbitrary JSON values, most of
them invalid): both schemas must agree on each. Each schema is validated in its own dialect, as a client
would: the original by its `$schema`, the compact one (which may have lost it) as 2020-12, MCP's default.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from only1mcp.context.compact import compact_tool
from only1mcp.context.schemas import compact_schema

CATALOGS = Path(__file__).resolve().parent.parent / "fixtures" / "catalogs"
TOOLS = [(catalog["backend"], tool) for path in sorted(CATALOGS.glob("*.json"))
         for catalog in [json.loads(path.read_text())] for tool in catalog["tools"]]
IDS = [f"{backend}.{tool['name']}" for backend, tool in TOOLS]
_EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                            HealthCheck.data_too_large])

_JSON = st.recursive(st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False)
                     | st.text(max_size=8), lambda inner: st.lists(inner, max_size=3)
                     | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _near_misses(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    names = [*(schema.get("properties") or {}), "unexpected"]
    return st.dictionaries(st.sampled_from(names), _JSON, max_size=len(names)) | _JSON


def test_the_fixtures_hold_every_real_tool() -> None:
    assert len(TOOLS) >= 100 and len({backend for backend, _ in TOOLS}) == 15


def test_compact_drops_noise_and_keeps_every_description() -> None:
    schemas = [compact_schema(tool["inputSchema"], tool["name"]) for _, tool in TOOLS]
    assert not any("$schema" in s for s in schemas)
    original = json.dumps([tool["inputSchema"] for _, tool in TOOLS])
    shown = json.dumps(schemas)
    assert len(shown) < 0.92 * len(original)
    for (_, tool), schema in zip(TOOLS, schemas, strict=True):
        # a shared sub-schema's descriptions are written once, in $defs
        assert set(_descriptions(schema)) == set(_descriptions(tool["inputSchema"])), tool["name"]
        assert compact_tool(tool)["description"] == tool.get("description", compact_tool(tool).get("description"))


def _descriptions(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["description"]] if isinstance(node.get("description"), str) else []
        return own + [d for key, value in node.items() if key != "description" for d in _descriptions(value)]
    if isinstance(node, list):
        return [d for value in node for d in _descriptions(value)]
    return []


@pytest.mark.parametrize(("backend", "tool"), TOOLS, ids=IDS)
def test_compact_accepts_exactly_what_the_original_accepts(backend: str, tool: dict[str, Any]) -> None:
    original = tool["inputSchema"]
    compact = compact_schema(original, tool["name"])
    before, after = _validator(original), _validator(compact)

    @_EXAMPLES
    @given(st.one_of(from_schema(original), from_schema(compact), _near_misses(original)))
    def agree(instance: Any) -> None:
        assert before.is_valid(instance) == after.is_valid(instance), (instance, compact)

    agree()
