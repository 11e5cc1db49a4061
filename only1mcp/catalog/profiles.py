"""Profiles as a worker uses them: compiled once per config, and the rule that picks a request's profile.

A profile (config `profiles.<name>`) is a per-view filter like rbac: it decides which tools, prompts and
resources one endpoint (`/mcp/<name>`, `/sse/<name>`, `/ws/<name>`) shows and serves. A role may pin
profiles (`rbac.roles.<role>.profile`); a principal with pins is served a pinned profile only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from only1mcp.config.shaping import Profile
from only1mcp.policy.patterns import glob_regex
from only1mcp.protocol.jsonrpc import Code, JsonRpcError

__all__ = ["CompiledProfile", "ProfileRefused", "choose_profile", "compile_profiles"]


def _regex(globs: list[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(f"(?:{glob_regex(g)})" for g in globs), re.DOTALL) if globs else None


class CompiledProfile:
    """One profile's include and exclude globs as two regexes; ``admits`` is the whole per-item test."""

    __slots__ = ("_exclude", "_include", "name", "tools_mode")

    def __init__(self, name: str, profile: Profile) -> None:
        self.name = name
        self.tools_mode = profile.tools_mode  # None: proxy.tools_mode
        self._include = _regex(profile.include)
        self._exclude = _regex(profile.exclude)

    def admits(self, backend: str, target: str) -> bool:
        """Whether an item of ``backend`` exposed as ``target`` (a name or URI) is in the profile: a glob
        names either the backend or the item."""
        include, exclude = self._include, self._exclude
        if include is not None and include.match(backend) is None and include.match(target) is None:
            return False
        return exclude is None or (exclude.match(backend) is None and exclude.match(target) is None)

    def __repr__(self) -> str:
        return f"CompiledProfile({self.name!r})"


def compile_profiles(profiles: Mapping[str, Profile]) -> dict[str, CompiledProfile]:
    return {name: CompiledProfile(name, profile) for name, profile in profiles.items()}


class ProfileRefused(JsonRpcError):
    """The caller's roles pin other profiles than the endpoint it uses (HTTP 403 where a status is sent)."""

    def __init__(self, message: str) -> None:
        super().__init__(Code.UNAUTHORIZED, message)


def choose_profile(requested: str | None, pins: frozenset[str]) -> str | None:
    """The profile a request is served: the endpoint's (``requested``, None for `/mcp`), unless the caller's
    roles pin profiles. Then `/mcp` means the one pinned profile, and any other endpoint is refused."""
    if not pins:
        return requested
    if requested in pins:
        return requested
    names = ", ".join(f"/mcp/{name}" for name in sorted(pins))
    if requested is None:
        if len(pins) == 1:
            return next(iter(pins))
        raise ProfileRefused(f"your roles pin several profiles; connect to one of {names}")
    raise ProfileRefused(f"your roles do not allow profile '{requested}'; connect to {names}")
