"""Catalog merging, namespacing, collisions, pagination and resource routing."""

from __future__ import annotations

import pytest

from only1mcp.catalog.cursors import decode_cursor, encode_cursor
from only1mcp.catalog.merge import Discovery, merge
from only1mcp.catalog.naming import MAX_NAME, Namer
from only1mcp.catalog.uris import template_regex
from only1mcp.catalog.view import CatalogView
from only1mcp.protocol.codec import loads
from only1mcp.protocol.jsonrpc import JsonRpcError


def _tool(name: str) -> dict:
    return {"name": name, "inputSchema": {"type": "object"}}


def test_prefixes_and_bare_names() -> None:
    namer = Namer("_")
    assert namer.assign("github", "gh", "search") == "gh_search"
    assert namer.assign("files", "", "read") == "read"


def test_collisions_are_resolved_in_config_order_and_reported() -> None:
    namer = Namer(".")
    assert namer.assign("a", "", "search") == "search"
    assert namer.assign("b", "", "search") == "search.b"
    assert namer.assign("b", "", "search") == "search.b.2"
    assert [c["renamed_to"] for c in namer.collisions] == ["search.b", "search.b.2"]
    assert namer.collisions[0]["kept_by"] == "a"


def test_long_and_invalid_names_fit_mcp_rules() -> None:
    namer = Namer("_")
    long = namer.assign("x", "p", "t" * 200)
    assert len(long) == MAX_NAME
    assert namer.assign("x", "p", "t" * 200 + "z") != long  # the hash keeps them apart
    assert namer.assign("x", "", "has space/slash") == "has_space_slash"


def _catalog(page_size: int = 2) -> CatalogView:
    a = Discovery("alpha", "a", {"tools": {}, "resources": {"subscribe": True}, "prompts": {}},
                  tools=[_tool("one"), _tool("two"), _tool("three")],
                  resources=[{"uri": "file:///shared", "name": "shared"}, {"uri": "alpha://only", "name": "o"}],
                  templates=[{"uriTemplate": "alpha://item/{id}", "name": "item"}],
                  prompts=[{"name": "greet"}])
    b = Discovery("beta", "", {"tools": {}, "resources": {}, "logging": {}},
                  tools=[_tool("one"), _tool("a_one")],
                  resources=[{"uri": "file:///shared", "name": "shared too"}],
                  templates=[{"uriTemplate": "alpha://item/{id}", "name": "dup"}])
    catalog = merge([a, b], "_", {"alpha": {"state": "ok"}, "beta": {"state": "ok"}})
    return CatalogView({**catalog, "version": 1}, page_size)


def test_merge_routes_and_capabilities() -> None:
    view = _catalog()
    assert view.tool("a_one") == ("alpha", "one")
    assert view.tool("one") == ("beta", "one")
    assert view.tool("a_one_beta") == ("beta", "a_one")  # beta's bare "a_one" collided with alpha's
    assert view.prompt("a_greet") == ("alpha", "greet")
    caps = view.capabilities
    assert caps["tools"] == {"listChanged": True} and caps["resources"]["subscribe"] is True
    assert "logging" in caps and "completions" not in caps


def test_pages_follow_cursors_to_the_end() -> None:
    view = _catalog(page_size=2)
    names, params = [], None
    while True:
        page = loads(view.page("tools/list", params, 2))
        names += [t["name"] for t in page["tools"]]
        if "nextCursor" not in page:
            break
        params = {"cursor": page["nextCursor"]}
    assert names == ["a_one", "a_two", "a_three", "one", "a_one_beta"]


@pytest.mark.parametrize("cursor", ["garbage", encode_cursor("prompts/list", 2), encode_cursor("tools/list", 3), 7])
def test_foreign_cursors_are_invalid_params(cursor: object) -> None:
    with pytest.raises(JsonRpcError) as caught:
        _catalog(page_size=2).page("tools/list", {"cursor": cursor}, 2)
    assert caught.value.code == -32602 and "invalid cursor" in caught.value.message


def test_cursor_round_trip() -> None:
    assert decode_cursor("tools/list", encode_cursor("tools/list", 40)) == 40
    assert decode_cursor("tools/list", "") is None


def test_resource_routing() -> None:
    view = _catalog()
    assert view.resource("file:///shared") == ("alpha", "file:///shared")
    assert view.resource("only1mcp://beta/file:///shared") == ("beta", "file:///shared")
    assert view.resource("alpha://item/42") == ("alpha", "alpha://item/42")
    assert view.resource("only1mcp://beta/alpha://item/42") == ("beta", "alpha://item/42")
    assert view.resource("nobody://x") is None  # two backends serve resources: no guessing
    assert view.exposed_uri("beta", "file:///shared") == "only1mcp://beta/file:///shared"
    assert view.template("only1mcp://beta/alpha://item/{id}") == ("beta", "alpha://item/{id}")


def test_template_regex() -> None:
    assert template_regex("file:///{path}").match("file:///a")
    assert not template_regex("file:///{path}").match("file:///a/b")
    assert template_regex("file:///{+path}").match("file:///a/b")
    assert template_regex("search{?q,lang}").match("search?q=x&lang=en")
