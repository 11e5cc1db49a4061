"""Shaping the catalog (pure parts): per-backend allow/deny, renames, descriptions and fixed arguments as
the merge applies them; profiles and role pins as the view applies them; the catalog without shaping
unchanged byte for byte."""

from __future__ import annotations

from typing import Any

import pytest
from only1mcp.workers.dispatch import Dispatcher, _with_fixed
from pydantic import ValidationError

from only1mcp.catalog.merge import Discovery, merge
from only1mcp.catalog.profiles import ProfileRefused, choose_profile, compile_profiles
from only1mcp.catalog.shaping import shape_prompts, shape_tools
from only1mcp.catalog.view import CatalogView
from only1mcp.config.models import Settings
from only1mcp.config.shaping import Profile, PromptShaping, ToolShaping
from only1mcp.policy.patterns import PolicyKind
from only1mcp.protocol.codec import dumps, loads
from only1mcp.protocol.jsonrpc import JsonRpcError
from only1mcp.sessions import SessionSealer

READ = {"name": "read_file", "description": "Read a file", "inputSchema": {
    "type": "object", "properties": {"root": {"type": "string"}, "path": {"type": "string"}},
    "required": ["root", "path"]}}
WRITE = {"name": "write_file", "description": "Write a file", "inputSchema": {
    "type": "object", "properties": {"path": {"type": "string"}, "text": {"type": "string"}}}}
DELETE = {"name": "delete_file", "inputSchema": {"type": "object", "properties": {"path": {"type": "string"}}}}
GREET = {"name": "greet", "description": "Greet someone",
         "arguments": [{"name": "name", "required": True}, {"name": "tone"}]}


def _tools(**shaping: Any) -> tuple[list[Any], list[dict[str, str]]]:
    problems: list[dict[str, str]] = []
    return shape_tools("fs", [READ, WRITE, DELETE], ToolShaping.model_validate(shaping), problems), problems


def test_allow_and_deny_globs_choose_tools_by_the_backends_own_names() -> None:
    shaped, _ = _tools(allow=["*_file"], deny=["delete_*"])
    assert [s.original for s in shaped] == ["read_file", "write_file"]
    shaped, _ = _tools(allow=["read_*"])
    assert [s.original for s in shaped] == ["read_file"]


def test_an_override_renames_describes_and_takes_fixed_arguments_out_of_the_schema() -> None:
    shaped, problems = _tools(overrides={"read_file": {"name": "read", "description": "Read from the project",
                                                       "fixed_arguments": {"root": "/srv/project"}}})
    read = shaped[0]
    assert (read.original, read.name, read.fixed) == ("read_file", "read", {"root": "/srv/project"})
    assert read.item["description"] == "Read from the project"
    assert read.item["inputSchema"] == {"type": "object", "properties": {"path": {"type": "string"}},
                                        "required": ["path"]}
    assert READ["inputSchema"]["required"] == ["root", "path"]  # the discovered tool is not changed
    assert problems == []


def test_a_fixed_argument_the_schema_lacks_drops_that_override_and_is_reported() -> None:
    shaped, problems = _tools(overrides={"write_file": {"name": "write", "fixed_arguments": {"mode": "0644"}},
                                         "missing_tool": {"description": "x"}})
    write = shaped[1]
    assert (write.name, write.item, write.fixed) == ("write_file", WRITE, {})
    assert problems == [
        {"backend": "fs", "tool": "write_file",
         "problem": "fixed_arguments mode are not among the tool's arguments; the override is not applied"},
        {"backend": "fs", "tool": "missing_tool",
         "problem": "the backend offers no such tool; the override is not applied"}]


def test_prompt_fixed_arguments_leave_the_argument_list() -> None:
    problems: list[dict[str, str]] = []
    shaped = shape_prompts("fs", [GREET], PromptShaping.model_validate(
        {"overrides": {"greet": {"name": "hello", "fixed_arguments": {"tone": "warm"}}}}), problems)
    assert shaped[0].item["arguments"] == [{"name": "name", "required": True}]
    assert (shaped[0].name, shaped[0].fixed) == ("hello", {"tone": "warm"})


def _discovery() -> Discovery:
    return Discovery("fs", "fs", {"tools": {}, "prompts": {}}, tools=[READ, WRITE, DELETE], prompts=[GREET])


def test_merge_namespaces_renamed_tools_and_routes_them_to_the_backends_names() -> None:
    shaping = {"fs": (ToolShaping.model_validate({"deny": ["delete_*"], "overrides": {
        "read_file": {"name": "read", "fixed_arguments": {"root": "/srv"}}}}), PromptShaping())}
    catalog = merge([_discovery()], "_", {}, shaping)
    assert [t["name"] for t in catalog["tools"]] == ["fs_read", "fs_write_file"]
    assert catalog["routes"]["tools"]["fs_read"] == ["fs", "read_file"]
    view = CatalogView(catalog, 100)
    assert view.tool("fs_read") == ("fs", "read_file") and view.tool("fs_delete_file") is None
    assert view.fixed(PolicyKind.TOOLS, "fs_read") == {"root": "/srv"}
    assert view.fixed(PolicyKind.TOOLS, "fs_write_file") is None


def test_without_shaping_the_catalog_and_its_pages_are_unchanged() -> None:
    plain = merge([_discovery()], "_", {})
    assert merge([_discovery()], "_", {}, {"fs": (ToolShaping(), PromptShaping())}) == plain
    assert "fixed" not in plain["routes"] and "shaping" not in plain
    expected = dumps({"tools": [{**tool, "name": f"fs_{tool['name']}"} for tool in (READ, WRITE, DELETE)]})
    assert CatalogView(plain, 100).page("tools/list", None, 100) == expected


def _profiled(**profiles: dict[str, Any]) -> CatalogView:
    other = Discovery("git", "git", {"tools": {}}, tools=[{"name": "status", "inputSchema": {"type": "object"}}])
    compiled = compile_profiles({name: Profile.model_validate(p) for name, p in profiles.items()})
    return CatalogView(merge([_discovery(), other], "_", {}), 100, profiles=compiled)


def _names(view: CatalogView, profile: str | None) -> list[str]:
    return [t["name"] for t in loads(view.page("tools/list", None, 100, None, profile))["tools"]]


def test_a_profile_includes_by_backend_or_by_exposed_name_and_excludes_either() -> None:
    view = _profiled(coding={"include": ["git", "fs_read_*"]}, safe={"exclude": ["*delete*", "git"]})
    assert _names(view, "coding") == ["fs_read_file", "git_status"]
    assert _names(view, "safe") == ["fs_read_file", "fs_write_file"]
    assert _names(view, None) == ["fs_read_file", "fs_write_file", "fs_delete_file", "git_status"]
    assert view.admits("coding", "git", "git_status") and not view.admits("coding", "fs", "fs_write_file")
    assert not view.admits("nope", "git", "git_status")
    assert view.page("tools/list", None, 100, None, "coding") is view.page("tools/list", None, 100, None, "coding")
    # What a profile's endpoint reaches of each backend (logging/setLevel is sent to those only)
    assert {"git", "fs"} <= view.reachable_backends("coding", None)
    assert "git" not in view.reachable_backends("safe", None) and "fs" in view.reachable_backends("safe", None)
    git_only = compile_profiles({"g": Profile.model_validate({"include": ["git"]})})
    assert "fs" not in CatalogView(view.catalog, 100, profiles=git_only).reachable_backends("g", None)


def test_roles_that_pin_profiles_choose_the_endpoints_profile() -> None:
    assert choose_profile(None, frozenset()) is None
    assert choose_profile("coding", frozenset()) == "coding"
    assert choose_profile(None, frozenset({"support"})) == "support"
    assert choose_profile("support", frozenset({"support", "coding"})) == "support"
    with pytest.raises(ProfileRefused, match="connect to /mcp/support"):
        choose_profile("coding", frozenset({"support"}))
    with pytest.raises(ProfileRefused, match="several profiles"):
        choose_profile(None, frozenset({"support", "coding"}))


def test_a_fixed_argument_sent_by_the_client_is_refused_naming_it() -> None:
    assert _with_fixed({"path": "a"}, {"root": "/srv"}, "tool 'fs_read'") == {"path": "a", "root": "/srv"}
    assert _with_fixed(None, {"root": "/srv"}, "tool 'fs_read'") == {"root": "/srv"}
    with pytest.raises(JsonRpcError) as refused:
        _with_fixed({"path": "a", "root": "/etc"}, {"root": "/srv"}, "tool 'fs_read'")
    assert refused.value.code == -32602 and "'root'" in refused.value.message
    assert refused.value.data == {"fixed": ["root"]}


def _backend(**extra: Any) -> dict[str, Any]:
    return {"name": "fs", "transport": "stdio", "command": "server", **extra}


def test_changing_only_shaping_does_not_make_a_backend_a_changed_one() -> None:
    plain = Settings.model_validate({"backends": [_backend()]}).backends[0]
    shaped = Settings.model_validate({"backends": [_backend(tools={"deny": ["x"]})]}).backends[0]
    moved = Settings.model_validate({"backends": [_backend(args=["--other"])]}).backends[0]
    assert plain == shaped and plain != moved


def test_profiles_and_pins_are_checked_when_the_config_loads() -> None:
    with pytest.raises(ValidationError, match="pins profile 'support', which profiles does not define"):
        Settings.model_validate({"rbac": {"roles": {"agent": {"allow": ["tools:*"], "profile": "support"}}}})
    with pytest.raises(ValidationError, match="not usable in a URL path"):
        Settings.model_validate({"profiles": {"a/b": {}}})
    with pytest.raises(ValidationError, match="empty or contains whitespace"):
        Settings.model_validate({"backends": [_backend(tools={"allow": ["read file"]})]})


def test_a_session_seals_its_endpoints_profile_and_tokens_for_mcp_keep_their_form() -> None:
    sealer = SessionSealer(b"s" * 32, 60)
    token, _ = sealer.new("2025-06-18", {}, {}, None, "coding")
    assert sealer.open(token).catalog_profile == "coding"
    plain, _ = sealer.new("2025-06-18", {}, {}, None)
    assert sealer.open(plain).catalog_profile is None
    assert len(plain) < len(token)  # no seventh field for /mcp


def test_a_completion_of_a_prompt_with_fixed_arguments() -> None:
    fixed = {"tone": "warm"}
    params = {"ref": {"type": "ref/prompt", "name": "fs_hello"}, "argument": {"name": "name", "value": "A"},
              "context": {"arguments": {"x": "1"}}}
    completed = Dispatcher._fixed_completion(params, fixed, "fs_hello")
    assert completed["context"] == {"arguments": {"x": "1", "tone": "warm"}}
    with pytest.raises(JsonRpcError, match="argument 'tone' is fixed"):
        Dispatcher._fixed_completion({**params, "argument": {"name": "tone", "value": ""}}, fixed, "fs_hello")
