"""Masking of argument values whose key names match the configured globs (credentials handed to a tool)."""

from __future__ import annotations

import fnmatch
import re
from typing import Any

from only1mcp.redact import MASK

__all__ = ["Redactor"]

_KEYS_KEPT = 4096  # decisions remembered per key name; argument keys repeat from call to call


class Redactor:
    """``mask(value)``: a copy of ``value`` in which the value of every object member whose key matches one of
    the patterns (case-insensitive, at any depth, inside lists too) is ``***``."""

    __slots__ = ("_decided", "_regex")

    def __init__(self, patterns: list[str]) -> None:
        # One regex for all patterns: one match call per key, whatever the number of patterns.
        joined = "|".join(f"(?:{fnmatch.translate(p)})" for p in patterns)
        self._regex = re.compile(joined, re.IGNORECASE) if patterns else None
        self._decided: dict[str, bool] = {}

    def secret(self, key: str) -> bool:
        decided = self._decided.get(key)
        if decided is None:
            decided = self._regex is not None and self._regex.match(key) is not None
            if len(self._decided) >= _KEYS_KEPT:
                self._decided.clear()  # a client inventing keys cannot grow this without bound
            self._decided[key] = decided
        return decided

    def mask(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: MASK if isinstance(key, str) and self.secret(key) else self.mask(item)
                    for key, item in value.items()}
        if isinstance(value, list):
            return [self.mask(item) for item in value]
        return value
