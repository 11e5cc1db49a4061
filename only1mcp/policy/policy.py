"""The compiled rbac policy of one config: which Permissions a request's caller has."""

from __future__ import annotations

import logging

from ..auth.principal import Principal
from ..config.rbac import RbacSettings
from .permissions import Permissions, Rules
from .roles import flatten, union

__all__ = ["Policy"]

log = logging.getLogger("only1mcp.policy")

# Distinct role sets remembered (each with its Permissions and, in the catalog view, its list pages);
# past it the oldest is forgotten and rebuilt if it comes back.
_MAX_ROLE_SETS = 1024


class Policy:
    """Built by the worker's Gateway from each new config (never per request): roles flattened once, and
    one ``Permissions`` per distinct set of roles, made on first use and shared from then on.

    With no role configured rbac is off: everyone may use everything. A request with no authenticated
    caller (authentication off) is not filtered either."""

    __slots__ = ("_by_effective", "_by_roles", "_default", "_pins", "_roles", "enabled", "everything")

    def __init__(self, settings: RbacSettings) -> None:
        self._roles: dict[str, Rules] = flatten(settings)
        self._pins = {name: role.profile for name, role in settings.roles.items() if role.profile is not None}
        self._default = frozenset(settings.default_roles)
        self.enabled = bool(self._roles)
        self.everything = Permissions(frozenset(), None)
        # The credential's roles -> Permissions; and the roles that count (the configured ones, or the
        # defaults) -> Permissions, so role sets that differ only in unknown roles share one (and its pages).
        self._by_roles: dict[frozenset[str], Permissions] = {}
        self._by_effective: dict[frozenset[str], Permissions] = {}

    def permissions(self, caller: Principal | None) -> Permissions:
        """What ``caller`` may use (a dictionary lookup once its role set has been seen)."""
        if caller is None or not self.enabled:
            return self.everything
        found = self._by_roles.get(caller.roles)
        return found if found is not None else self._build(caller.roles)

    def _build(self, roles: frozenset[str]) -> Permissions:
        known = frozenset(name for name in roles if name in self._roles)
        if known != roles:
            log.info("roles %s are not defined in rbac.roles; they grant nothing", ", ".join(sorted(roles - known)))
        effective = known or self._default
        permissions = self._by_effective.get(effective)
        if permissions is None:
            permissions = Permissions(effective, union([self._roles[name] for name in effective]),
                                      frozenset(self._pins[name] for name in effective if name in self._pins))
            _remember(self._by_effective, effective, permissions)
        _remember(self._by_roles, roles, permissions)
        return permissions


def _remember(cache: dict[frozenset[str], Permissions], key: frozenset[str], value: Permissions) -> None:
    if len(cache) >= _MAX_ROLE_SETS:
        del cache[next(iter(cache))]  # the oldest: a dict keeps insertion order
    cache[key] = value
