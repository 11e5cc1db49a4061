"""What one set of roles may use: one regex per kind, a deny in any role winning over every allow."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from .patterns import PolicyKind, glob_regex

__all__ = ["Permissions", "Rules"]

# A compiled regex's bound ``match``, or one of the two constants below: not None means allowed.
Matcher = Callable[[str], object]

# (kind, allow globs, deny globs) of one role or a union of roles
Rules = dict[PolicyKind, tuple[frozenset[str], frozenset[str]]]


def _never(_target: str) -> None:
    return None


def _always(_target: str) -> bool:
    return True


def _matcher(allow: Iterable[str], deny: Iterable[str]) -> Matcher:
    """One compiled regex for a kind: ``(?!deny…)allow…``. Globs are sorted so the same rules compile to
    the same regex whatever order the config listed them in."""
    allowed = sorted(set(allow))
    if not allowed:
        return _never
    denied = sorted(set(deny))
    if allowed == ["*"] and not denied:
        return _always
    source = "(?:" + "|".join(glob_regex(g) for g in allowed) + ")"
    if denied:
        source = "(?!(?:" + "|".join(glob_regex(g) for g in denied) + "))" + source
    return re.compile(source, re.DOTALL).match


class Permissions:
    """What a principal with ``roles`` may list, call, read, subscribe to, complete and administer.

    Built once per distinct role set by ``Policy`` and shared by every request of that set; list pages are
    prepared per Permissions object (it hashes by identity). ``unrestricted`` marks the one that allows
    everything (rbac off, or no authenticated caller), so lists skip filtering altogether."""

    __slots__ = ("_admin", "_by_kind", "_prompts", "_resources", "_tools", "profiles", "roles", "unrestricted")

    def __init__(self, roles: frozenset[str], rules: Rules | None, profiles: frozenset[str] = frozenset()) -> None:
        self.roles = roles
        self.profiles = profiles  # the profiles these roles pin (rbac.roles.<role>.profile); empty: any
        self.unrestricted = rules is None
        matchers = {kind: _always if rules is None else _matcher(*rules.get(kind, ((), ())))
                    for kind in PolicyKind}
        self._tools = matchers[PolicyKind.TOOLS]
        self._prompts = matchers[PolicyKind.PROMPTS]
        self._resources = matchers[PolicyKind.RESOURCES]
        self._admin = matchers[PolicyKind.ADMIN]
        self._by_kind = matchers

    def allows_tool(self, name: str) -> bool:
        return self._tools(name) is not None

    def allows_prompt(self, name: str) -> bool:
        return self._prompts(name) is not None

    def allows_resource(self, uri: str) -> bool:
        """A resource URI, or a resource template's uriTemplate (as lists show it)."""
        return self._resources(uri) is not None

    def allows_admin(self, action: str) -> bool:
        """One of patterns.ADMIN_ACTIONS."""
        return self._admin(action) is not None

    def allows(self, kind: PolicyKind, target: str) -> bool:
        return self._by_kind[kind](target) is not None

    def __repr__(self) -> str:
        return "Permissions(everything)" if self.unrestricted else f"Permissions(roles={sorted(self.roles)})"
