"""The patterns of rbac rules, ``<kind>:<glob>``, and the regex a glob compiles to.

Kept free of config and policy imports: the config models check patterns with ``parse_pattern`` while
they load, and the compiled policy builds its regexes with ``glob_regex``.
"""

from __future__ import annotations

import difflib
import re
from enum import StrEnum

__all__ = ["ADMIN_ACTIONS", "PatternError", "PolicyKind", "glob_regex", "parse_pattern"]


class PolicyKind(StrEnum):
    """What a pattern's glob is matched against: the exposed (namespaced) names and URIs a client sees."""

    TOOLS = "tools"  # tool names
    PROMPTS = "prompts"  # prompt names
    RESOURCES = "resources"  # resource URIs, and the uriTemplate of resource templates
    ADMIN = "admin"  # admin actions (ADMIN_ACTIONS)


# The admin routes, by the action an `admin:` pattern names (/api/v1/admin/<action>). /health is not one:
# it stays open and says nothing beyond liveness.
ADMIN_ACTIONS = ("metrics", "status", "wait", "backends", "workers", "catalog", "config", "reloads", "reload", "drain",
                 "undrain", "reset", "restart")

_KINDS = ", ".join(kind.value for kind in PolicyKind)
_NOUN = {PolicyKind.TOOLS: "tool", PolicyKind.PROMPTS: "prompt", PolicyKind.RESOURCES: "resource URI",
         PolicyKind.ADMIN: "admin action"}


class PatternError(ValueError):
    """A pattern that cannot be used; the message says what to write instead."""


def parse_pattern(text: str) -> tuple[PolicyKind, str]:
    """(kind, glob) of ``<kind>:<glob>``; PatternError naming the fault and the fix otherwise."""
    name, colon, glob = text.partition(":")
    if not colon:
        raise PatternError(f"pattern '{text}' has no kind; write <kind>:<glob> with kind one of {_KINDS}, "
                           f"e.g. 'tools:{text}'")
    try:
        kind = PolicyKind(name)
    except ValueError:
        close = difflib.get_close_matches(name, [k.value for k in PolicyKind], n=1, cutoff=0.6)
        suggestion = f"; did you mean '{close[0]}:{glob}'?" if close else f"; write one of {_KINDS}"
        raise PatternError(f"pattern '{text}' has an unknown kind '{name}'{suggestion}") from None
    if not glob:
        raise PatternError(f"pattern '{text}' has nothing after '{name}:'; write a glob, e.g. '{name}:*' for "
                           f"every {_NOUN[kind]}")
    if any(c.isspace() for c in glob):
        raise PatternError(f"pattern '{text}' contains whitespace, which no {_NOUN[kind]} has; remove it "
                           f"(e.g. '{name}:{''.join(glob.split())}')")
    if kind is PolicyKind.ADMIN:
        regex = re.compile(glob_regex(glob), re.DOTALL)
        if not any(regex.match(action) for action in ADMIN_ACTIONS):
            raise PatternError(f"pattern '{text}' matches no admin action; the actions are "
                               f"{', '.join(ADMIN_ACTIONS)} (or write 'admin:*' for all)")
    return kind, glob


def glob_regex(glob: str) -> str:
    """Regex source (for ``re.match`` with DOTALL) that matches exactly the whole strings ``glob`` matches:
    ``*`` any run of characters (``/`` included), ``?`` one character, anything else itself.

    Each run between two stars is taken at its earliest place and kept (an atomic group), which is exact
    for globs of ``*`` and ``?`` and keeps matching linear in the string: a translation with plain ``.*``
    backtracks polynomially, and a client chooses the URI it asks for."""
    parts = ["".join("." if c == "?" else re.escape(c) for c in part) for part in glob.split("*")]
    if len(parts) == 1:
        return parts[0] + r"\Z"
    middle = "".join(f"(?>.*?{part})" for part in parts[1:-1] if part)
    return f"{parts[0]}{middle}.*{parts[-1]}\\Z"
