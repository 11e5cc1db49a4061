"""Roles as configured, flattened: each role's rules with those of every role it inherits."""

from __future__ import annotations

from ..config.rbac import RbacSettings, Role
from .patterns import PolicyKind, parse_pattern
from .permissions import Rules

__all__ = ["flatten", "union"]


def _own_rules(role: Role) -> Rules:
    allow: dict[PolicyKind, set[str]] = {kind: set() for kind in PolicyKind}
    deny: dict[PolicyKind, set[str]] = {kind: set() for kind in PolicyKind}
    for patterns, into in ((role.allow, allow), (role.deny, deny)):
        for pattern in patterns:
            kind, glob = parse_pattern(pattern)
            into[kind].add(glob)
    return {kind: (frozenset(allow[kind]), frozenset(deny[kind])) for kind in PolicyKind}


def union(parts: list[Rules]) -> Rules:
    """The rules of several roles together: every allow of any, every deny of any (so a deny wins)."""
    return {kind: (frozenset().union(*(part[kind][0] for part in parts)),
                   frozenset().union(*(part[kind][1] for part in parts))) for kind in PolicyKind}


def flatten(settings: RbacSettings) -> dict[str, Rules]:
    """Every role's rules including everything it inherits, transitively. The settings were validated, so
    every inherited role exists and there is no cycle."""
    flat: dict[str, Rules] = {}

    def resolve(name: str) -> Rules:
        if name not in flat:
            role = settings.roles[name]
            flat[name] = union([_own_rules(role), *(resolve(parent) for parent in role.inherits)])
        return flat[name]

    for name in settings.roles:
        resolve(name)
    return flat
