"""A parsed config file: plain data plus where each key and value stood in the text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConfigError", "ConfigErrors", "Document", "Path_", "Position", "Problem", "dotted"]

Path_ = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Position:
    """1-based line and column in the source text."""

    line: int
    col: int


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a config, located as precisely as the source allows."""

    source: str  # a file path, "environment variable X" or "command line"
    message: str
    position: Position | None = None
    key: str = ""  # dotted path of the offending setting, for context
    scope: Path_ = ()  # native path this problem explains; later errors under it are not repeated

    def render(self) -> str:
        where = self.source if self.position is None else f"{self.source}:{self.position.line}:{self.position.col}"
        subject = f"{self.key}: " if self.key else ""
        return f"{where}: error: {subject}{self.message}"


class ConfigErrors(Exception):
    """Raised with every problem found in a config; ``str()`` is one line per problem."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(p.render() for p in problems))
        self.problems = problems


def ConfigError(source: str, message: str, position: Position | None = None, key: str = "") -> ConfigErrors:
    """A ConfigErrors holding a single problem."""
    return ConfigErrors([Problem(source, message, position, key)])


@dataclass(slots=True)
class Document:
    """Parsed data with positions: ``keys[path]`` is where a mapping key stands, ``values[path]`` its value."""

    source: str
    data: Any
    keys: dict[Path_, Position] = field(default_factory=dict)
    values: dict[Path_, Position] = field(default_factory=dict)

    def locate(self, path: Path_, prefer_key: bool = False) -> Position | None:
        """The position of ``path``, or of its nearest located ancestor."""
        for end in range(len(path), -1, -1):
            sub = path[:end]
            first, second = (self.keys, self.values) if prefer_key else (self.values, self.keys)
            if sub in first:
                return first[sub]
            if sub in second:
                return second[sub]
        return None


def dotted(path: Path_, data: Any) -> str:
    """``backends.1.url`` as ``backends.github.url``: entries are named by their name where it is known."""
    parts: list[str] = []
    node = data
    for part in path:
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            node = node[part]
            name = node.get("name") if isinstance(node, dict) else None
            parts.append(str(name) if isinstance(name, str) and name else f"#{part + 1}")
            continue
        parts.append(str(part))
        node = node.get(part) if isinstance(node, dict) else None
    return ".".join(parts)
