"""Tool modes as a catalog view serves them (full unchanged byte for byte, compact, lazy), description
trimming, the search's rules, and the meta-tools' argument checks. On the real catalogs where it matters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from only1mcp.auth.principal import AuthMethod, Principal
from only1mcp.catalog.cursors import encode_cursor
from only1mcp.catalog.merge import Discovery, merge
from only1mcp.catalog.view import CatalogView
from only1mcp.config.context import CompactSettings, MaxChars
from only1mcp.config.models import Settings
from only1mcp.config.rbac import RbacSettings
from only1mcp.context.compact import compact_tool
from only1mcp.context.describe import KEEP, Shortening, Trim
from only1mcp.context.lazy import META_TOOLS, SearchRequest, unwrap_call
from only1mcp.context.present import Presentation
from only1mcp.context.schemas import compact_schema
from only1mcp.context.search import ToolIndex
from only1mcp.context.words import Words
from only1mcp.policy.policy import Policy
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.jsonrpc import JsonRpcError

CATALOGS = Path(__file__).resolve().parent.parent / "fixtures" / "catalogs"
ORDER = ("everything", "filesystem", "memory", "thinking", "github", "gitlab", "slack", "maps", "brave", "postgres",
         "puppeteer", "redis", "time", "git", "fetch")


@pytest.fixture(scope="module")
def catalog() -> dict[str, Any]:
    found = [Discovery(name, name, {"tools": {}}, tools=json.loads((CATALOGS / f"{name}.json").read_text())["tools"])
             for name in ORDER]
    return merge(found, "_", {})


def _tools(view: CatalogView, size: int = 100) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    params: dict[str, Any] | None = None
    while True:
        page = json.loads(view.page("tools/list", params, size))
        tools += page["tools"]
        if "nextCursor" not in page:
            return tools
        params = {"cursor": page["nextCursor"]}


def test_full_is_the_catalog_byte_for_byte(catalog: dict[str, Any]) -> None:
    view = CatalogView(catalog, 100, Presentation("full"))
    tools = catalog["tools"]
    assert view.page("tools/list", None, 100) == dumps({"tools": tools[:100], "nextCursor": encode_cursor(
        "tools/list", 100)})
    assert view.page("tools/list", {"cursor": encode_cursor("tools/list", 100)}, 100) == dumps({"tools": tools[100:]})
    assert CatalogView(catalog, 100).page("tools/list", None, 100) == view.page("tools/list", None, 100)
    assert not view.lazy() and view.search("open an issue", 5, None) == []


def test_compact_lists_every_tool_compacted(catalog: dict[str, Any]) -> None:
    view = CatalogView(catalog, 100, Presentation("compact"))
    assert _tools(view) == [compact_tool(tool) for tool in catalog["tools"]]
    assert len(dumps(_tools(view))) < len(dumps(catalog["tools"]))


def test_lazy_lists_the_two_meta_tools_whoever_asks(catalog: dict[str, Any]) -> None:
    view = CatalogView(catalog, 100, Presentation("lazy"))
    assert json.loads(view.page("tools/list", None, 100)) == {"tools": META_TOOLS}
    nobody = Policy(RbacSettings.model_validate({"roles": {"none": {"allow": ["prompts:*"]}}})).permissions(
        Principal("k", AuthMethod.API_KEY, roles=frozenset({"none"})))
    assert json.loads(view.page("tools/list", None, 100, nobody)) == {"tools": META_TOOLS}
    assert view.search("open an issue on GitHub", 5, nobody) == []


def test_lazy_search_finds_only_what_the_caller_may_use(catalog: dict[str, Any]) -> None:
    view = CatalogView(catalog, 100, Presentation("lazy"))
    everyone = [tool["name"] for tool in view.search("create an issue on GitHub", 5, None)]
    assert everyone[0] == "github_create_issue"
    policy = Policy(RbacSettings.model_validate({"roles": {"r": {"allow": ["tools:*"],
                                                                 "deny": ["tools:github_create_*"]}}}))
    limited = policy.permissions(Principal("k", AuthMethod.API_KEY, roles=frozenset({"r"})))
    names = [tool["name"] for tool in view.search("create an issue on GitHub", 5, limited)]
    assert names and not any(name.startswith("github_create_") for name in names)
    assert len(names) == 5  # the limit is filled from the tools the caller may use


def test_shortened_descriptions_do_not_change_what_a_search_finds(catalog: dict[str, Any]) -> None:
    """The index reads the catalog's own descriptions: shortening changes what a found tool shows, never
    which tools are found or their order."""
    whole = CatalogView(catalog, 100, Presentation("lazy"))
    split = CompactSettings.model_validate({"descriptions": {"max_chars": 32}, "arguments": "first_sentence"})
    short = CatalogView(catalog, 100, Presentation("lazy", split))
    for query in ("replace a word in a file", "forget a person", "open a pull request", "time in Tokyo"):
        found = short.search(query, 5, None)
        assert [t["name"] for t in found] == [t["name"] for t in whole.search(query, 5, None)]
        assert all(len(t["description"]) <= 32 for t in found)
    assert any(len(t.get("description", "")) > 32 for t in catalog["tools"])


def test_found_tools_carry_name_description_and_compact_schema(catalog: dict[str, Any]) -> None:
    view = CatalogView(catalog, 100, Presentation("lazy", CompactSettings(descriptions="first_sentence")))
    found = view.search("the current time in a timezone", 1, None)
    tool = next(t for t in catalog["tools"] if t["name"] == "time_get_current_time")
    first = Trim(first_sentence=True)
    assert found == [compact_tool({k: tool[k] for k in ("name", "description", "inputSchema")},
                                  Shortening(first, first))]
    assert set(found[0]) == {"name", "description", "inputSchema"}


def test_a_view_builds_its_index_once(catalog: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    built: list[int] = []
    original = Presentation.index

    def counting(self: Presentation, tools: list[dict[str, Any]], backends: list[str]) -> ToolIndex:
        built.append(len(tools))
        return original(self, tools, backends)

    monkeypatch.setattr(Presentation, "index", counting)
    view = CatalogView(catalog, 100, Presentation("lazy"))
    for query in ("read a file", "post to slack", "git commit"):
        assert view.search(query, 3, None)
    assert built == [len(catalog["tools"])]


_FIRST = Trim(first_sentence=True)


@pytest.mark.parametrize(("text", "how", "expected"), [
    ("Get the time. Then more.", _FIRST, "Get the time."),
    ("Use e.g. UTC here. Then more.", _FIRST, "Use e.g. UTC here."),
    ("First part\n\nSecond part", _FIRST, "First part"),
    ("No end", _FIRST, "No end"),
    ("a few words that go on and on", Trim(max_chars=16), "a few words…"),
    ("short", Trim(max_chars=16), "short"),
    ("Read the whole of one file. Then more words.", Trim(max_chars=30), "Read the whole of one file.…"),
    ("Read the whole of one file. Then more words.", Trim(True, 30), "Read the whole of one file."),
    ("Read the whole of one file from the disk. Then more.", Trim(True, 24), "Read the whole of one…"),
    ("anything", Trim(), "anything"),
    (None, _FIRST, None),
])
def test_trim(text: Any, how: Trim, expected: Any) -> None:
    assert how(text) == expected
    if how.max_chars is not None and isinstance(expected, str):
        assert len(expected) <= how.max_chars


def test_argument_descriptions_that_only_echo_names_are_left_out_when_shortened() -> None:
    tool = {"name": "repo_get_pull_request", "description": "Get details of a pull request. Long story.",
            "inputSchema": {"type": "object", "properties": {
                "pull_number": {"type": "number", "description": "Pull request number"},
                "owner": {"type": "string", "description": "Owner of the repository, a user or an organization"},
                "files": {"type": "array", "items": {"type": "object", "properties": {
                    "path": {"type": "string", "description": "The paths"},
                    "mode": {"type": "string", "description": "File mode, e.g. 100644. More here."}}}}}}}
    shown = compact_tool(tool, Shortening(Trim(first_sentence=True), Trim(first_sentence=True)))
    assert shown["description"] == "Get details of a pull request."
    properties = shown["inputSchema"]["properties"]
    assert "description" not in properties["pull_number"]  # pull, request, number: all in the names
    assert properties["owner"]["description"] == "Owner of the repository, a user or an organization"
    nested = properties["files"]["items"]["properties"]
    assert "description" not in nested["path"]  # "paths" stems to its own name
    assert nested["mode"]["description"] == "File mode, e.g. 100644."
    # Only shortened descriptions are checked for echoes: with arguments kept whole, every one stays.
    whole = compact_tool(tool, Shortening(Trim(first_sentence=True), Trim()))["inputSchema"]["properties"]
    assert whole["pull_number"]["description"] == "Pull request number"
    assert compact_tool(tool) == {**tool, "inputSchema": compact_schema(tool["inputSchema"])}


def test_words_split_identifiers_stem_and_add_synonyms() -> None:
    words = Words()
    assert words.of_text("get_pull_request_files getPRFiles") == ["get", "pull", "request", "file", "get", "pr",
                                                                  "file"]
    assert "move" in words.of_query("rename a file")
    assert {"file", "number"} <= set(words.of_query("open notes.txt at line 3"))
    assert Words.named("on GitHub, not git") == {"on", "github", "not", "git"}


def test_phrases_and_data_shapes_add_the_words_tools_use() -> None:
    words = Words()
    assert "reset" in words.of_query("take them all back out")  # a verb and its particle, two words apart
    assert "reset" not in words.of_query("take the dog for a walk and come back")  # too far apart
    assert "review" in words.of_query("did anyone sign off on it")
    assert "review" not in words.of_query("sign the form and send it off")  # "sign … off" is three apart
    assert "channel" in words.of_query("tell #deploys") and "channel" not in words.of_query("issue #12 and C#")
    assert "reaction" in words.of_query("put a :tada: on it") and "reaction" not in words.of_query("at 10:30:15")
    assert "user" in words.of_query("ask @jenna") and "user" not in words.of_query("mail me at bo@example.com")
    assert "review" not in words.of_query("commit 'sign off'")  # quoted: data, no phrase


def test_quoted_text_is_data_and_gets_no_synonyms() -> None:
    words = Words()
    plain = words.of_query("fix the typo")
    assert "edit" in plain and {"fix", "typo"} <= set(plain)
    for quoted in ("commit with the message 'fix the typo'", 'commit "fix the typo"',
                   "commit \u201cfix the typo\u201d"):
        terms = words.of_query(quoted)
        assert {"fix", "typo", "commit"} <= set(terms) and "edit" not in terms  # still searched, not expanded
    assert "edit" in words.of_query("don't fix it")  # an apostrophe quotes nothing


def test_a_query_naming_a_backend_favours_its_tools() -> None:
    tools = [{"name": "alpha_create_issue", "description": "Create an issue"},
             {"name": "beta_create_issue", "description": "Create an issue"}]
    index = ToolIndex(tools, groups=["alpha", "beta"])
    assert [hit.name for hit in index.search("create an issue in beta", 2)] == ["beta_create_issue",
                                                                                "alpha_create_issue"]
    assert index.search("nothing in common", 2) == []


def test_search_arguments_are_checked() -> None:
    assert SearchRequest({"query": "x"}, 5).limit == 5
    for bad in (None, {}, {"query": ""}, {"query": "x", "limit": 0}, {"query": "x", "limit": True}):
        with pytest.raises(JsonRpcError) as refused:
            SearchRequest(bad, 5)
        assert refused.value.code == -32602


def test_call_tool_is_a_rename_that_keeps_meta() -> None:
    params = {"name": "call_tool", "arguments": {"name": "git_git_log", "arguments": {"repo_path": "."}},
              "_meta": {"progressToken": 7}}
    assert unwrap_call(params) == {"name": "git_git_log", "arguments": {"repo_path": "."},
                                   "_meta": {"progressToken": 7}}
    assert unwrap_call({"arguments": {"name": "t"}})["arguments"] == {}
    for bad in ({}, {"arguments": {}}, {"arguments": {"name": 3}}, {"arguments": {"name": "t", "arguments": []}}):
        with pytest.raises(JsonRpcError):
            unwrap_call(bad)


def test_settings_read_the_modes() -> None:
    settings = Settings.model_validate({"proxy": {"tools_mode": "compact", "compact": {"descriptions":
                                                                                     {"max_chars": 80}}}})
    assert settings.proxy.compact.descriptions == MaxChars(max_chars=80)
    assert settings.proxy.compact.shortening == Shortening(Trim(max_chars=80), Trim(max_chars=80))
    assert Settings().proxy.tools_mode == "full" and Settings().proxy.compact.shortening == KEEP
    split = Settings.model_validate({"proxy": {"compact": {"descriptions": {"max_chars": 120}, "arguments": {
        "max_chars": 32, "first_sentence": True}}}}).proxy.compact.shortening
    assert split == Shortening(Trim(max_chars=120), Trim(first_sentence=True, max_chars=32))
    with pytest.raises(ValidationError, match="arguments"):
        Settings.model_validate({"proxy": {"compact": {"arguments": "some"}}})
