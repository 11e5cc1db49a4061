"""Settings of what a client's model is sent of the catalog: the tool mode and its options."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from only1mcp.context.describe import Shortening, Trim

from .fields import _hint, _Strict

__all__ = ["CompactSettings", "Descriptions", "LazySettings", "MaxChars", "Rerank", "ToolsMode"]

ToolsMode = Literal["full", "compact", "lazy"]
Rerank = Literal["none", "semantic"]


class MaxChars(_Strict):
    """Descriptions cut at a word boundary to at most this many characters (an ellipsis marks the cut)."""

    max_chars: int = Field(
        ge=16, le=100_000, description="Characters a description may keep, the ellipsis included.",
        json_schema_extra=_hint("write a whole number of characters from 16, e.g. 120"))
    first_sentence: bool = Field(
        False, description="Keep only the first sentence first, then cut it to `max_chars` if still longer.")


Descriptions = Literal["full", "first_sentence"] | MaxChars


def _trim(policy: Descriptions) -> Trim:
    if isinstance(policy, MaxChars):
        return Trim(policy.first_sentence, policy.max_chars)
    return Trim(first_sentence=policy == "first_sentence")


class CompactSettings(_Strict):
    """``compact`` mode (and the tools ``lazy`` search returns)."""

    descriptions: Descriptions = Field(
        "full",
        description="Tool descriptions, and argument descriptions unless `arguments` says otherwise: `full` "
        "keeps them whole, `first_sentence` keeps the first sentence, `{max_chars: N}` at most N characters "
        "(`{max_chars: N, first_sentence: true}`: the first sentence, then at most N). Schemas stay lossless "
        "whatever this says.",
        json_schema_extra=_hint("write full, first_sentence, {max_chars: 120} or {max_chars: 120, "
                                "first_sentence: true}"))
    arguments: Literal["same"] | Descriptions = Field(
        "same",
        description="Argument descriptions (at any depth of the input schema): `same` as `descriptions`, or "
        "any value `descriptions` takes. When they are shortened at all, one whose every word is already in "
        "the tool's name, the tool's description as shown or the argument's own name is left out.",
        json_schema_extra=_hint("write same, full, first_sentence, {max_chars: 40} or {max_chars: 40, "
                                "first_sentence: true}"))

    @property
    def shortening(self) -> Shortening:
        """What ``context.compact`` takes."""
        tools = _trim(self.descriptions)
        return Shortening(tools, tools if self.arguments == "same" else _trim(self.arguments))


class LazySettings(_Strict):
    """``lazy`` mode: tools/list holds `search_tools` and `call_tool` only."""

    expose_found: bool = Field(
        False, description="Add the tools a session's searches found to that session's tools/list (announced "
        "with notifications/tools/list_changed), for clients that call tools directly.")
    default_limit: Annotated[int, Field(ge=1, le=50)] = Field(
        5, description="Tools a search returns when its call gives no `limit` (a call may ask for 1 to 50).",
        json_schema_extra=_hint("write a whole number from 1 to 50, e.g. 5"))
    rerank: Rerank = Field(
        "none", description="`semantic` re-orders the search's 20 best BM25 candidates by reciprocal-rank fusion "
        "with the cosine similarity of WordLlama's bundled model (the optional `semantic` extra; nothing is "
        "downloaded). Measured no better than BM25 alone on the project's query sets, hence off by default "
        "(docs/architecture.md, Context economy).",
        json_schema_extra=_hint("write none or semantic (semantic needs `pip install 'only1mcp[semantic]'`)"))

    @field_validator("rerank")
    @classmethod
    def _model_installed(cls, value: Rerank) -> Rerank:
        # Imported here: the check only looks the package up, and only when the switch is on.
        from only1mcp.context.semantic import INSTALL, MODULE, installed  # noqa: PLC0415

        if value == "semantic" and not installed():
            raise ValueError(f"rerank: semantic needs the {MODULE} package, which is not installed: run "
                             f"`{INSTALL}`, or set rerank: none")
        return value
