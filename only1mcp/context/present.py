"""How a catalog view shows its tools in each mode: the hook every view (the gateway's, a profile's) calls."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from only1mcp.config.context import CompactSettings, LazySettings, ToolsMode

from .compact import compact_tool, compact_tools
from .lazy import META_TOOLS

if TYPE_CHECKING:
    from .rerank import RerankedIndex
    from .search import ToolIndex
    from .semantic import SemanticModel

__all__ = ["Presentation"]


class Presentation:
    """The tool mode of one view and its options; pure: the same tools in give the same tools out."""

    __slots__ = ("compact", "lazy", "mode", "semantic")

    def __init__(self, mode: ToolsMode = "full", compact: CompactSettings | None = None,
                 lazy: LazySettings | None = None, semantic: SemanticModel | None = None) -> None:
        """``semantic``: the process's embedding model, for ``lazy.rerank: semantic`` (one is made on first
        need without it); loaded only when such an index is built."""
        self.mode = mode
        self.compact = compact or CompactSettings()
        self.lazy = lazy or LazySettings()
        self.semantic = semantic

    def listed(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """What tools/list holds for these tools (already filtered for the caller): in ``full`` the very
        objects the catalog holds, so their bytes do not change."""
        if self.mode == "compact":
            return compact_tools(tools, self.compact.shortening)
        if self.mode == "lazy":
            return list(META_TOOLS)
        return tools

    def exposed(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Found tools added to a lazy session's list (``expose_found``): whole, as ``compact`` shows them,
        so a client calling them directly has their output schemas and annotations too."""
        return compact_tools(tools, self.compact.shortening)

    def index(self, tools: list[dict[str, Any]], backends: list[str]) -> ToolIndex | RerankedIndex:
        """The search over these tools (every field of the catalog's own, untrimmed descriptions), re-ranked
        when ``lazy.rerank`` says so; ``backends`` names each tool's backend, in the same order."""
        # Imported here: bm25s brings numpy, 0.12 s of every worker's boot, needed only by a lazy view; the
        # re-ranker and its model only with the switch on.
        if self.lazy.rerank == "semantic":
            from .rerank import RerankedIndex  # noqa: PLC0415
            from .semantic import SemanticModel  # noqa: PLC0415

            if self.semantic is None:
                self.semantic = SemanticModel()
            return RerankedIndex(tools, self.semantic, groups=backends)
        from .search import ToolIndex  # noqa: PLC0415

        return ToolIndex(tools, groups=backends)

    def found(self, tool: dict[str, Any]) -> dict[str, Any]:
        """A tool as a search returns it: name, description and input schema, compacted."""
        shown = compact_tool({k: tool[k] for k in ("name", "description", "inputSchema") if k in tool},
                             self.compact.shortening)
        return shown
