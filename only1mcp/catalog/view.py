"""A worker's read-only view of one catalog version: pre-serialized pages and route lookups."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from only1mcp.context.present import Presentation
from only1mcp.policy.patterns import PolicyKind
from only1mcp.policy.permissions import Permissions
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.jsonrpc import Code, JsonRpcError

from .cursors import decode_cursor, encode_cursor
from .uris import parse_explicit, template_regex

if TYPE_CHECKING:
    from only1mcp.context.search import ToolIndex

__all__ = ["LIST_KEYS", "CatalogView"]

# list method -> (catalog key, result key)
LIST_KEYS = {
    "tools/list": ("tools", "tools"),
    "prompts/list": ("prompts", "prompts"),
    "resources/list": ("resources", "resources"),
    "resources/templates/list": ("templates", "resourceTemplates"),
}
# list method -> (what rbac patterns it falls under, the item's key they match)
_GUARDED_BY = {
    "tools/list": (PolicyKind.TOOLS, "name"),
    "prompts/list": (PolicyKind.PROMPTS, "name"),
    "resources/list": (PolicyKind.RESOURCES, "uri"),
    "resources/templates/list": (PolicyKind.RESOURCES, "uriTemplate"),
}
# Permission sets whose filtered pages one view keeps (the policy keeps as many role sets); past it the
# oldest set's pages are dropped and rebuilt on its next list.
_MAX_FILTERED = 1024


class CatalogView:
    """Built once per catalog version; every list page is serialized here, not per request."""

    __slots__ = ("_exposed", "_filtered", "_index", "_page_size", "_pages", "_prompt_routes", "_resource_routes",
                 "_templates", "_tool_routes", "backends", "capabilities", "catalog", "instructions", "presentation",
                 "resource_backends", "tools")

    def __init__(self, catalog: dict[str, Any], page_size: int, presentation: Presentation | None = None) -> None:
        self.catalog = catalog
        self.presentation = presentation or Presentation()
        self.capabilities: dict[str, Any] = catalog.get("capabilities", {})
        self.instructions: str = catalog.get("instructions", "")
        self.backends: dict[str, Any] = catalog.get("backends", {})
        self.tools: dict[str, dict[str, Any]] = {t["name"]: t for t in catalog.get("tools", [])}
        routes = catalog.get("routes", {})
        self._tool_routes: dict[str, tuple[str, str]] = {k: tuple(v) for k, v in routes.get("tools", {}).items()}
        self._prompt_routes: dict[str, tuple[str, str]] = {
            k: tuple(v) for k, v in routes.get("prompts", {}).items()}
        self._resource_routes: dict[str, tuple[str, str]] = {
            k: tuple(v) for k, v in routes.get("resources", {}).items()}
        self._exposed = {route: exposed for exposed, route in self._resource_routes.items()}
        self._templates = [(template_regex(exposed), backend, original, exposed)
                           for exposed, backend, original in routes.get("templates", [])]
        self.resource_backends = sorted({b for b, _ in self._resource_routes.values()}
                                        | {t[1] for t in self._templates})
        self._page_size = page_size
        # lazy mode's search, built here: once per catalog version and view, never per request
        self._index: ToolIndex | None = None
        if self.presentation.mode == "lazy":
            tools = catalog.get("tools", [])
            backends = [self._tool_routes.get(str(tool.get("name")), ("", ""))[0] for tool in tools]
            self._index = self.presentation.index(tools, backends)
        self._pages = {method: self._list_pages(method, None) for method in LIST_KEYS}
        # A caller's permissions -> its own pages of each list, prepared on its first request of that list:
        # once per permission set and catalog version (a view lives for one catalog version)
        self._filtered: dict[Permissions, dict[str, list[bytes]]] = {}

    def _list_pages(self, method: str, permissions: Permissions | None) -> list[bytes]:
        """The pages of one list, with only what ``permissions`` allow (everything with None)."""
        key, result_key = LIST_KEYS[method]
        items = self.catalog.get(key, [])
        if permissions is not None:
            kind, field = _GUARDED_BY[method]
            items = [item for item in items if permissions.allows(kind, str(item.get(field, "")))]
        if method == "tools/list":
            items = self.presentation.listed(items)
        return self._paginate(method, items, result_key, self._page_size)

    def _pages_for(self, method: str, permissions: Permissions) -> list[bytes]:
        if permissions.unrestricted:
            return self._pages[method]
        lists = self._filtered.get(permissions)
        if lists is None:
            if len(self._filtered) >= _MAX_FILTERED:
                del self._filtered[next(iter(self._filtered))]  # the oldest set's pages
            lists = self._filtered[permissions] = {}
        pages = lists.get(method)
        if pages is None:
            pages = lists[method] = self._list_pages(method, permissions)
        return pages

    @staticmethod
    def _paginate(method: str, items: list[Any], result_key: str, size: int) -> list[bytes]:
        pages: list[bytes] = []
        for offset in range(0, max(1, len(items)), size):
            result: dict[str, Any] = {result_key: items[offset:offset + size]}
            if offset + size < len(items):
                result["nextCursor"] = encode_cursor(method, offset + size)
            pages.append(dumps(result))
        return pages

    def page(self, method: str, params: dict[str, Any] | None, page_size: int,
             permissions: Permissions | None = None) -> bytes:
        """The pre-serialized result for a list request, holding only what ``permissions`` allow (everything
        with None); cursors count within that filtered list. An unknown cursor is -32602."""
        pages = self._pages[method] if permissions is None else self._pages_for(method, permissions)
        cursor = (params or {}).get("cursor")
        if cursor is None:
            return pages[0]
        offset = decode_cursor(method, cursor)
        if offset is None or offset % page_size:
            raise JsonRpcError(Code.INVALID_PARAMS, f"invalid cursor {cursor!r} for {method}; pass the "
                               "nextCursor of a previous page, or no cursor for the first page")
        index = offset // page_size
        if index >= len(pages):  # the list shrank since that page: the rest is empty
            return pages[-1] if not pages else dumps({LIST_KEYS[method][1]: []})
        return pages[index]

    def tool(self, name: str) -> tuple[str, str] | None:
        return self._tool_routes.get(name)

    @property
    def lazy(self) -> bool:
        """Whether this view serves lazy mode (its tools/list holds the meta-tools)."""
        return self._index is not None

    def lazy_list(self, found: list[str], permissions: Permissions) -> bytes:
        """A lazy session's own tools/list (``expose_found``): the meta-tools, then the tools its searches
        found that still exist and the caller may use, as ``compact`` shows them. One page, built per request:
        only such sessions pay for it."""
        shown = [self.tools[name] for name in found
                 if name in self.tools and permissions.allows(PolicyKind.TOOLS, name)]
        return dumps({"tools": self.presentation.listed([]) + self.presentation.exposed(shown)})

    def search(self, query: str, limit: int, permissions: Permissions | None) -> list[dict[str, Any]]:
        """Lazy mode's search: the best ``limit`` tools the caller may use, best first, shown as the
        presentation shows found tools. Empty when this view is not lazy."""
        if self._index is None:
            return []
        allowed = (lambda _name: True) if permissions is None else (
            lambda name: permissions.allows(PolicyKind.TOOLS, name))
        return [self.presentation.found(self.tools[hit.name]) for hit in self._index.search(query, limit, allowed)]

    def prompt(self, name: str) -> tuple[str, str] | None:
        return self._prompt_routes.get(name)

    def exposed_uri(self, backend: str, uri: str) -> str:
        """The uri clients know for a backend's own uri (they differ only after a collision)."""
        return self._exposed.get((backend, uri), uri)

    def template(self, exposed: str) -> tuple[str, str] | None:
        """(backend, the backend's own template) for an exposed uri template."""
        for _, backend, original, candidate in self._templates:
            if candidate == exposed:
                return backend, original
        return None

    def resource(self, uri: str) -> tuple[str, str] | None:
        """(backend, the backend's own uri) for an exposed uri, per the rules in catalog.uris."""
        route = self._resource_routes.get(uri)
        if route is not None:
            return route
        explicit = parse_explicit(uri)
        if explicit is not None and explicit[0] in self.backends:
            return explicit
        for regex, backend, _, exposed in self._templates:
            if not exposed.startswith("only1mcp://") and regex.match(uri):
                return backend, uri
        if len(self.resource_backends) == 1:
            return self.resource_backends[0], uri
        return None

