"""A worker's read-only view of one catalog version: pre-serialized pages and route lookups."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from only1mcp.context.present import Presentation
from only1mcp.policy.patterns import PolicyKind
from only1mcp.policy.permissions import Permissions
from only1mcp.protocol.codec import dumps
from only1mcp.protocol.jsonrpc import Code, JsonRpcError

from .cursors import decode_cursor, encode_cursor
from .profiles import CompiledProfile
from .uris import parse_explicit, template_regex

if TYPE_CHECKING:
    from only1mcp.context.rerank import RerankedIndex
    from only1mcp.context.search import ToolIndex

__all__ = ["LIST_KEYS", "CatalogView", "Lens", "present"]

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
# (profile, permission set) pairs whose filtered pages one view keeps (the policy keeps as many role sets);
# past it the oldest pair's pages are dropped and rebuilt on its next list.
_MAX_FILTERED = 1024

_FULL = Presentation()


@dataclass(frozen=True, slots=True)
class Lens:
    """What one prepared set of pages is for: the profile of the endpoint (None: the whole catalog), what the
    caller may use (None: everything), and how that profile shows its tools (its tools mode)."""

    profile: CompiledProfile | None
    permissions: Permissions | None
    presentation: Presentation = _FULL


def present(method: str, items: list[dict[str, Any]], owners: list[str], lens: Lens) -> list[dict[str, Any]]:
    """The items of one list as ``lens`` shows them: the one per-view pipeline (profile, then permissions,
    then the tools mode), run when a view prepares a lens's pages. ``owners`` holds each item's backend."""
    kind, field = _GUARDED_BY[method]
    profile, permissions = lens.profile, lens.permissions
    if profile is not None or permissions is not None:
        items = [item for item, backend in zip(items, owners, strict=True)
                 if (profile is None or profile.admits(backend, str(item.get(field, ""))))
                 and (permissions is None or permissions.allows(kind, str(item.get(field, ""))))]
    if method == "tools/list":
        items = lens.presentation.listed(items)  # pure, run once per view and lens, never per request
    return items


class CatalogView:
    """Built once per catalog version; every list page is serialized here, not per request."""

    __slots__ = ("_exposed", "_filtered", "_fixed", "_indexes", "_page_size", "_pages", "_presentations",
                 "_prompt_routes", "_resource_routes", "_templates", "_tool_routes", "backends", "capabilities",
                 "catalog", "instructions", "presentation", "profiles", "resource_backends", "tools")

    def __init__(self, catalog: dict[str, Any], page_size: int, presentation: Presentation | None = None,
                 profiles: dict[str, CompiledProfile] | None = None) -> None:
        self.catalog = catalog
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
        fixed = routes.get("fixed", {})
        self._fixed: dict[PolicyKind, dict[str, dict[str, Any]]] = {
            PolicyKind.TOOLS: fixed.get("tools", {}), PolicyKind.PROMPTS: fixed.get("prompts", {})}
        self.profiles = profiles or {}
        # proxy.tools_mode and its options: the whole catalog's, and a profile's unless it names its own mode
        self.presentation = shown = presentation or _FULL
        self._presentations = {name: shown if profile.tools_mode in (None, shown.mode) else Presentation(
            profile.tools_mode, shown.compact, shown.lazy, shown.semantic) for name, profile in self.profiles.items()}
        self._page_size = page_size
        self._pages = {method: self._list_pages(method, Lens(None, None, shown)) for method in LIST_KEYS}
        # lazy mode's search per profile (None: the whole catalog): built once per catalog version, the whole
        # catalog's here, a profile's on its first search
        self._indexes: dict[str | None, ToolIndex | RerankedIndex] = {}
        if shown.mode == "lazy":
            self._index(None)
        # (profile, a caller's permissions) -> its own pages of each list, prepared on its first request of
        # that list: once per pair and catalog version (a view lives for one catalog version and config)
        self._filtered: dict[tuple[str | None, Permissions | None], dict[str, list[bytes]]] = {}

    def _owners(self, method: str, items: list[dict[str, Any]]) -> list[str]:
        """The backend of each item of a list, as ``present`` takes them."""
        if method == "tools/list":
            return [self._tool_routes.get(str(i.get("name")), ("", ""))[0] for i in items]
        if method == "prompts/list":
            return [self._prompt_routes.get(str(i.get("name")), ("", ""))[0] for i in items]
        if method == "resources/list":
            return [self._resource_routes.get(str(i.get("uri")), ("", ""))[0] for i in items]
        owner = {exposed: backend for _, backend, _, exposed in self._templates}
        return [owner.get(str(i.get("uriTemplate")), "") for i in items]

    def _list_pages(self, method: str, lens: Lens) -> list[bytes]:
        """The pages of one list as ``lens`` shows it."""
        key, result_key = LIST_KEYS[method]
        items = self.catalog.get(key, [])
        return self._paginate(method, present(method, items, self._owners(method, items), lens), result_key,
                              self._page_size)

    def _pages_for(self, method: str, permissions: Permissions | None, profile: str | None) -> list[bytes]:
        if profile is None and (permissions is None or permissions.unrestricted):
            return self._pages[method]
        key = (profile, None if permissions is None or permissions.unrestricted else permissions)
        lists = self._filtered.get(key)
        if lists is None:
            if len(self._filtered) >= _MAX_FILTERED:
                del self._filtered[next(iter(self._filtered))]  # the oldest pair's pages
            lists = self._filtered[key] = {}
        pages = lists.get(method)
        if pages is None:
            compiled = self.profiles.get(profile) if profile is not None else None
            pages = lists[method] = self._list_pages(method, Lens(compiled, key[1], self.presentation_for(profile)))
        return pages

    def presentation_for(self, profile: str | None) -> Presentation:
        """How the endpoint of ``profile`` (None: /mcp) shows tools."""
        return self.presentation if profile is None else self._presentations.get(profile, self.presentation)

    def lazy(self, profile: str | None = None) -> bool:
        """Whether the endpoint of ``profile`` serves lazy mode (its tools/list holds the meta-tools)."""
        return self.presentation_for(profile).mode == "lazy"

    def _index(self, profile: str | None) -> ToolIndex | RerankedIndex:
        index = self._indexes.get(profile)
        if index is None:
            tools = self.catalog.get("tools", [])
            owners = self._owners("tools/list", tools)
            if profile is not None:
                admitted = [(tool, owner) for tool, owner in zip(tools, owners, strict=True)
                            if self.admits(profile, owner, str(tool.get("name", "")))]
                tools, owners = [tool for tool, _ in admitted], [owner for _, owner in admitted]
            index = self._indexes[profile] = self.presentation_for(profile).index(tools, owners)
        return index

    def search(self, query: str, limit: int, permissions: Permissions | None,
               profile: str | None = None) -> list[dict[str, Any]]:
        """Lazy mode's search: the best ``limit`` tools the profile shows and the caller may use, best first,
        shown as the presentation shows found tools. Empty when that endpoint is not lazy."""
        shown = self.presentation_for(profile)
        if shown.mode != "lazy":
            return []
        allowed = (lambda _name: True) if permissions is None else (
            lambda name: permissions.allows(PolicyKind.TOOLS, name))
        return [shown.found(self.tools[hit.name]) for hit in self._index(profile).search(query, limit, allowed)]

    def lazy_list(self, found: list[str], permissions: Permissions, profile: str | None = None) -> bytes:
        """A lazy session's own tools/list (``expose_found``): the meta-tools, then the tools its searches
        found that still exist, the profile shows and the caller may use, as ``compact`` shows them. One page,
        built per request: only such sessions pay for it."""
        shown = self.presentation_for(profile)
        tools = [self.tools[name] for name in found
                 if name in self.tools and permissions.allows(PolicyKind.TOOLS, name)
                 and self.admits(profile, self._tool_routes.get(name, ("", ""))[0], name)]
        return dumps({"tools": shown.listed([]) + shown.exposed(tools)})

    def admits(self, profile: str | None, backend: str, target: str) -> bool:
        """Whether ``profile``'s endpoint serves the item of ``backend`` exposed as ``target``."""
        if profile is None:
            return True
        compiled = self.profiles.get(profile)
        return compiled is not None and compiled.admits(backend, target)

    def reachable_backends(self, profile: str | None, permissions: Permissions | None) -> set[str]:
        """The backends of which the endpoint of ``profile`` shows something (a tool, prompt, resource or
        template) that ``permissions`` (None: anything) lets the caller use."""
        if profile is None and (permissions is None or permissions.unrestricted):
            return set(self.backends)
        items = [*((PolicyKind.TOOLS, name, route[0]) for name, route in self._tool_routes.items()),
                 *((PolicyKind.PROMPTS, name, route[0]) for name, route in self._prompt_routes.items()),
                 *((PolicyKind.RESOURCES, uri, route[0]) for uri, route in self._resource_routes.items()),
                 *((PolicyKind.RESOURCES, exposed, owner) for _, owner, _, exposed in self._templates)]
        return {owner for kind, target, owner in items if self.admits(profile, owner, target)
                and (permissions is None or permissions.allows(kind, target))}

    def fixed(self, kind: PolicyKind, name: str) -> dict[str, Any] | None:
        """The arguments the gateway sends with the exposed tool or prompt ``name`` (None: it fixes none)."""
        return self._fixed[kind].get(name)

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
             permissions: Permissions | None = None, profile: str | None = None) -> bytes:
        """The pre-serialized result for a list request, holding only what ``profile`` shows and ``permissions``
        allow (everything with None); cursors count within that filtered list. An unknown cursor is -32602."""
        pages = self._pages[method] if permissions is None and profile is None else self._pages_for(
            method, permissions, profile)
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

