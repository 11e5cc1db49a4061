"""rbac compiled: inheritance flattened, the union of a principal's roles, a deny that wins, default roles,
and globs that match exactly what they say (and no more) in time linear in the name."""

from __future__ import annotations

import fnmatch
import logging
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from only1mcp.auth.principal import AuthMethod, Principal
from only1mcp.config.rbac import RbacSettings
from only1mcp.policy.patterns import PatternError, PolicyKind, glob_regex, parse_pattern
from only1mcp.policy.policy import Policy

ROLES = {
    "reader": {"allow": ["tools:*_get_*", "tools:*_list", "prompts:summarize", "resources:file:///docs/*"]},
    "editor": {"inherits": ["reader"], "allow": ["tools:github_*"], "deny": ["tools:github_delete_*"]},
    "admin": {"inherits": ["editor"], "allow": ["admin:*"]},
    "auditor": {"allow": ["admin:status", "tools:*"], "deny": ["tools:*_list"]},
    "everything": {"allow": ["tools:*", "prompts:*", "resources:*", "admin:*"]},
}


def _policy(roles: dict | None = None, default_roles: list[str] | None = None) -> Policy:
    return Policy(RbacSettings.model_validate({"roles": ROLES if roles is None else roles,
                                               "default_roles": default_roles or []}))


def _caller(*roles: str) -> Principal:
    return Principal("someone", AuthMethod.JWT, frozenset(roles))


def test_a_role_allows_only_its_patterns() -> None:
    reader = _policy().permissions(_caller("reader"))
    assert reader.allows_tool("github_get_issue") and reader.allows_tool("jira_list")
    assert not reader.allows_tool("github_create_issue")
    assert not reader.allows_tool("jira_list_all")  # the glob matches the whole name
    assert reader.allows_prompt("summarize") and not reader.allows_prompt("summarize2")
    assert reader.allows_resource("file:///docs/a/b.md") and not reader.allows_resource("file:///etc/passwd")
    assert not reader.allows_admin("status")


def test_inheritance_gives_the_parents_allows_and_denies() -> None:
    editor = _policy().permissions(_caller("admin"))  # admin <- editor <- reader, transitively
    assert editor.allows_tool("jira_get_issue")  # from reader, two levels up
    assert editor.allows_tool("github_create_issue")  # from editor
    assert not editor.allows_tool("github_delete_repo")  # editor's deny reaches admin
    assert editor.allows_admin("wait")


def test_several_roles_get_the_union_of_their_allows() -> None:
    both = _policy().permissions(_caller("reader", "auditor"))
    assert both.allows_admin("status")  # auditor's
    assert both.allows_resource("file:///docs/x")  # reader's
    assert not both.allows_admin("wait")


def test_a_deny_in_any_role_wins_over_every_allow() -> None:
    policy = _policy()
    assert policy.permissions(_caller("reader")).allows_tool("jira_list")
    # auditor denies *_list; reader allowing it does not help, nor does another role allowing tools:*
    assert not policy.permissions(_caller("reader", "auditor")).allows_tool("jira_list")
    assert not policy.permissions(_caller("everything", "auditor")).allows_tool("jira_list")
    assert policy.permissions(_caller("everything", "auditor")).allows_tool("jira_get_x")


def test_default_roles_apply_to_a_principal_without_a_configured_role(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="only1mcp.policy")
    policy = _policy(default_roles=["reader"])
    nobody, strangers = policy.permissions(_caller()), policy.permissions(_caller("offline_access"))
    assert nobody.allows_tool("jira_get_issue") and not nobody.allows_tool("github_create_issue")
    assert strangers is nobody  # unknown roles grant nothing: the same permissions, so the same list pages
    assert "offline_access are not defined in rbac.roles; they grant nothing" in caplog.text
    # a configured role replaces the defaults rather than adding to them
    assert not policy.permissions(_caller("auditor", "offline_access")).allows_resource("file:///docs/x")


def test_without_default_roles_a_principal_without_a_role_may_use_nothing() -> None:
    nothing = _policy().permissions(_caller("unknown"))
    assert not any((nothing.allows_tool("x"), nothing.allows_prompt("x"), nothing.allows_resource("x"),
                    nothing.allows_admin("status")))


def test_no_role_configured_means_rbac_is_off() -> None:
    policy = _policy(roles={})
    assert not policy.enabled
    everything = policy.permissions(_caller("anything"))
    assert everything.unrestricted and everything.allows_tool("x") and everything.allows_admin("status")


def test_no_caller_means_nothing_is_filtered() -> None:
    assert _policy().permissions(None).unrestricted  # authentication is off


def test_one_permissions_object_per_role_set_whatever_the_order_or_the_principal() -> None:
    policy = _policy()
    first = policy.permissions(Principal("a", AuthMethod.JWT, frozenset(["reader", "auditor"])))
    again = policy.permissions(Principal("b", AuthMethod.API_KEY, frozenset(["auditor", "reader"])))
    assert first is again
    assert policy.permissions(_caller("reader")) is not first


def test_role_sets_are_remembered_up_to_a_bound() -> None:
    policy = _policy(roles={f"r{i}": {"allow": [f"tools:t{i}"]} for i in range(1100)})
    first = policy.permissions(_caller("r0"))
    for i in range(1, 1100):
        policy.permissions(_caller(f"r{i}"))
    rebuilt = policy.permissions(_caller("r0"))
    assert rebuilt is not first and rebuilt.allows_tool("t0") and not rebuilt.allows_tool("t1")


@pytest.mark.parametrize(("pattern", "kind", "glob"), [
    ("tools:github_*", PolicyKind.TOOLS, "github_*"),
    ("resources:file:///docs/*", PolicyKind.RESOURCES, "file:///docs/*"),  # only the first colon separates
    ("admin:*", PolicyKind.ADMIN, "*"),
])
def test_patterns_name_a_kind_and_a_glob(pattern: str, kind: PolicyKind, glob: str) -> None:
    assert parse_pattern(pattern) == (kind, glob)


@pytest.mark.parametrize(("pattern", "message"), [
    ("github_*", "pattern 'github_*' has no kind; write <kind>:<glob>"),
    ("tool:x", "unknown kind 'tool'; did you mean 'tools:x'?"),
    ("widgets:x", "unknown kind 'widgets'; write one of tools, prompts, resources, admin"),
    ("prompts:", "has nothing after 'prompts:'; write a glob, e.g. 'prompts:*'"),
    ("tools: github_*", "contains whitespace, which no tool has; remove it (e.g. 'tools:github_*')"),
    ("admin:shutdown", "matches no admin action; the actions are metrics, status, wait, backends, workers, catalog, "
                       "config, reloads, reload, drain, undrain, reset, restart"),
])
def test_malformed_patterns_say_what_to_write(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=re.escape(message)):
        parse_pattern(pattern)


_GLOB_CHARS = st.text(alphabet="ab*?/.", max_size=8)
_NAMES = st.text(alphabet="ab/.\n", max_size=12)


@given(glob=_GLOB_CHARS, name=_NAMES)
def test_a_glob_matches_what_fnmatch_matches(glob: str, name: str) -> None:
    """Same meaning as the shell's ``*`` and ``?`` (no [...] classes): compared on short strings."""
    ours = re.compile(glob_regex(glob), re.DOTALL).match(name) is not None
    assert ours == fnmatch.fnmatchcase(name, glob)


def test_glob_metacharacters_are_literal() -> None:
    permissions = _policy(roles={"r": {"allow": ["tools:a.b", "resources:x://[::1]/(*)"]}}).permissions(_caller("r"))
    assert permissions.allows_tool("a.b") and not permissions.allows_tool("axb")
    assert permissions.allows_resource("x://[::1]/(anything)") and not permissions.allows_resource("x://1/(a)")


def test_a_long_uri_against_a_glob_of_many_stars_is_answered() -> None:
    """A translation with plain ``.*`` backtracks polynomially: against this URI it would not finish
    (the test would time out); the glob's regex keeps matching linear in the URI's length."""
    permissions = _policy(roles={"r": {"allow": ["resources:*a*a*a*a*a*b"], "deny": ["resources:*a*a*a*a*c"]}}
                          ).permissions(_caller("r"))
    uri = "a" * 20_000
    assert not permissions.allows_resource(uri)
    assert permissions.allows_resource(uri + "b")
