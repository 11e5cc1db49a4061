"""Resource URIs through the gateway.

URIs pass through unchanged, so clients read ``file:///x`` or ``test://static`` exactly as the backend
named them. When two backends list the same URI (or template), the first in config order keeps it and
later ones are exposed as ``only1mcp://<backend>/<original>`` (the original appended as it is, so a
renamed template still expands). That explicit form is accepted for any backend at any time. Other URIs
are routed by the backends' URI templates; failing that, to the only backend that serves resources, if
there is exactly one.
"""

from __future__ import annotations

import re

__all__ = ["EXPLICIT_SCHEME", "explicit_uri", "parse_explicit", "template_regex"]

EXPLICIT_SCHEME = "only1mcp://"


def explicit_uri(backend: str, uri: str) -> str:
    return f"{EXPLICIT_SCHEME}{backend}/{uri}"


def parse_explicit(uri: str) -> tuple[str, str] | None:
    if not uri.startswith(EXPLICIT_SCHEME):
        return None
    backend, slash, rest = uri[len(EXPLICIT_SCHEME):].partition("/")
    if not slash or not backend:
        return None
    return backend, rest


_EXPRESSION = re.compile(r"\{([+#./;?&]?)([^}]*)\}")


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching the URIs an RFC 6570 template can produce (levels 1-4, simple matching)."""
    parts: list[str] = []
    position = 0
    for match in _EXPRESSION.finditer(template):
        parts.append(re.escape(template[position:match.start()]))
        operator = match.group(1)
        if operator in ("+", "#"):
            parts.append(r"(?:#)?.*" if operator == "#" else r".*")
        elif operator in ("?", "&"):
            parts.append(r"(?:[?&][^#]*)?")
        else:
            parts.append(r"[^/?#]*" if operator == "" else r"[^?#]*")
        position = match.end()
    parts.append(re.escape(template[position:]))
    return re.compile("".join(parts) + r"\Z")
