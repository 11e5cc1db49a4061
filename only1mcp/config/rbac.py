"""The `rbac` section: what each role may list, call, read and administer.

Checked as a whole when the config loads: every pattern parses, every role named in `inherits` and
`default_roles` is defined, and no role inherits itself through others. Each problem is reported at the
entry that causes it (file:line:col), all of them at once.
"""

from __future__ import annotations

import difflib
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from ..policy.patterns import PatternError, parse_pattern
from .fields import LIVE, _hint, _Strict

__all__ = ["RBAC_ERRORS", "RbacSettings", "Role"]

# Error types whose message already names the offending value (the loader does not append "got …").
RBAC_ERRORS = ("rbac_pattern", "rbac_unknown_role", "rbac_cycle")


def _check_pattern(text: str) -> str:
    try:
        parse_pattern(text)
    except PatternError as exc:
        raise PydanticCustomError("rbac_pattern", "{reason}", {"reason": str(exc)}) from None
    return text


Pattern = Annotated[str, AfterValidator(_check_pattern)]
_PATTERN_HINT = _hint("write <kind>:<glob>, kind one of tools, prompts, resources, admin; e.g. 'tools:github_*'")


class Role(_Strict):
    """One role: its own allow and deny patterns plus every rule of the roles it inherits."""

    inherits: list[str] = Field(
        default_factory=list,
        description="Roles whose allow and deny patterns this role has too (transitively).",
        json_schema_extra=_hint("name roles defined under rbac.roles"),
    )
    allow: list[Pattern] = Field(
        default_factory=list,
        description="What the role may use: `tools:<glob>`, `prompts:<glob>`, `resources:<glob>` (over URIs, and "
        "a template's uriTemplate), `admin:<glob>` (over the admin actions: status, wait, backends, workers, "
        "catalog, config, reloads, reload, drain, undrain, reset, restart). Globs match the exposed names clients "
        "see (with their namespace prefix): `*` any run of characters, `?` one.",
        json_schema_extra=_PATTERN_HINT,
    )
    deny: list[Pattern] = Field(
        default_factory=list,
        description="Patterns as in `allow` that this role may not use even where an allow matches; a deny in any "
        "role of a principal wins over the allows of all its roles.",
        json_schema_extra=_PATTERN_HINT,
    )
    profile: str | None = Field(
        None,
        description="A profile (under `profiles`) this role pins: a principal with such a role is served that "
        "profile's catalog at `/mcp` and may not use another profile's endpoint. Not inherited. With roles that "
        "pin several profiles, the principal may use each of them and must name one (`/mcp/<name>`).",
        json_schema_extra=_hint("name a profile defined under profiles"),
    )


class RbacSettings(_Strict):
    """Role-based access to tools, prompts, resources and admin routes. Env: ``ONLY1MCP_RBAC__<KEY>``."""

    roles: Annotated[dict[str, Role], LIVE] = Field(
        default_factory=dict,
        description="Roles by name: `{inherits: [...], allow: [...], deny: [...]}`. With no role configured rbac "
        "is off and every principal may use everything. With roles, a principal may use what the union of its "
        "roles allows, minus what any of them denies; a list shows only that, and calling, reading, "
        "subscribing to or completing anything else is answered as if it did not exist. A principal's roles "
        "come from its credential; roles not defined here are ignored.",
        examples=[{"reader": {"allow": ["tools:*_read*", "resources:*"]}}],
        json_schema_extra=_hint("map role names to {inherits, allow, deny}, e.g. reader: {allow: ['tools:*']}"),
    )
    default_roles: Annotated[list[str], LIVE] = Field(
        default_factory=list,
        description="Roles of a principal whose credential carries none of the roles defined in `roles` "
        "(empty: such a principal may use nothing while rbac is on).",
        examples=[["reader"]],
        json_schema_extra=_hint("name roles defined under rbac.roles"),
    )

    @model_validator(mode="after")
    def _roles_exist_and_do_not_loop(self) -> RbacSettings:
        problems = self._unknown_roles() + self._cycles()
        if problems:
            # Raised as one ValidationError so every problem is reported, each at its own entry: pydantic
            # prefixes these locations with the section's own.
            raise ValidationError.from_exception_data("RbacSettings", problems)
        return self

    def _unknown_roles(self) -> list[InitErrorDetails]:
        defined = sorted(self.roles)
        places = [(("roles", name, "inherits", i), parent, f"role '{name}' inherits")
                  for name, role in self.roles.items() for i, parent in enumerate(role.inherits)]
        places += [(("default_roles", i), name, "default_roles names") for i, name in enumerate(self.default_roles)]
        return [_unknown(loc, name, what, defined) for loc, name, what in places if name not in self.roles]

    def _cycles(self) -> list[InitErrorDetails]:
        """One problem per cycle of inheritance, at the `inherits` entry that closes it."""
        found: list[InitErrorDetails] = []
        seen: set[frozenset[str]] = set()
        for start in self.roles:
            cycle = self._cycle_from(start)
            if cycle is None or frozenset(cycle) in seen:
                continue
            seen.add(frozenset(cycle))
            last, first = cycle[-2], cycle[-1]
            index = self.roles[last].inherits.index(first)
            found.append(InitErrorDetails(
                type=PydanticCustomError("rbac_cycle", "roles inherit each other in a cycle: {cycle}; remove one of "
                                         "these inherits", {"cycle": " -> ".join(cycle)}),
                loc=("roles", last, "inherits", index), input=first))
        return found

    def _cycle_from(self, start: str) -> list[str] | None:
        """A path start -> … -> start through `inherits`, or None. Depth-first over known roles, each visited
        once: a role explored without leading back to ``start`` never will."""
        path = [start]
        visited = {start}
        stack = [iter(self.roles[start].inherits)]
        while stack:
            parent = next(stack[-1], None)
            if parent is None:
                stack.pop()
                path.pop()
            elif parent == start:
                return [*path, start]
            elif parent in self.roles and parent not in visited:
                visited.add(parent)
                path.append(parent)
                stack.append(iter(self.roles[parent].inherits))
        return None


def _unknown(loc: tuple[str | int, ...], name: str, what: str, defined: list[str]) -> InitErrorDetails:
    close = difflib.get_close_matches(name, defined, n=1, cutoff=0.6)
    suggestion = f"; did you mean '{close[0]}'?" if close else ""
    listing = f" (defined: {', '.join(defined)})" if defined else " (no role is defined)"
    return InitErrorDetails(
        type=PydanticCustomError("rbac_unknown_role", "{what} '{name}', which is not a role under rbac.roles"
                                 "{suggestion}{listing}",
                                 {"what": what, "name": name, "suggestion": suggestion, "listing": listing}),
        loc=loc, input=name)
