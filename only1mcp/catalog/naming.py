"""Namespaced names for tools and prompts, with deterministic collision handling."""

from __future__ import annotations

import hashlib
import re

__all__ = ["MAX_NAME", "Namer"]

MAX_NAME = 128  # MCP tool names: 1-128 chars of [A-Za-z0-9_.-]
_INVALID = re.compile(r"[^A-Za-z0-9_.-]")


def _fit(name: str) -> str:
    """Replace characters MCP names forbid and shorten with a stable hash when too long."""
    name = _INVALID.sub("_", name) or "_"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[: MAX_NAME - 9]}_{digest}"


class Namer:
    """Hands out exposed names in backend config order; a later backend never takes an earlier one's name.

    ``<prefix><sep><name>``, or the bare name when the prefix is empty. On a collision the later entry
    becomes ``<name><sep><backend>`` and then ``<name><sep><backend><sep>2``, ``…3``; every collision is
    recorded so the supervisor can report it.
    """

    __slots__ = ("_separator", "_taken", "collisions")

    def __init__(self, separator: str) -> None:
        self._separator = separator
        self._taken: dict[str, str] = {}  # exposed name -> backend that holds it
        self.collisions: list[dict[str, str]] = []

    def assign(self, backend: str, prefix: str, name: str) -> str:
        wanted = _fit(f"{prefix}{self._separator}{name}" if prefix else name)
        exposed = wanted
        if exposed in self._taken:
            exposed = _fit(f"{wanted}{self._separator}{backend}")
            counter = 2
            while exposed in self._taken:
                exposed = _fit(f"{wanted}{self._separator}{backend}{self._separator}{counter}")
                counter += 1
            self.collisions.append({"name": wanted, "kept_by": self._taken[wanted], "backend": backend,
                                    "renamed_to": exposed})
        self._taken[exposed] = backend
        return exposed
