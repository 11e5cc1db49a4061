"""lazy.rerank: the re-ranker's pure parts, the bundled model read without a download, the switch refused
without the package, and no trace of wordllama in a process that does not re-rank."""

from __future__ import annotations

import sys
from typing import Any

import numpy as np
import pytest

from only1mcp.config.context import LazySettings
from only1mcp.context.present import Presentation
from only1mcp.context.rerank import RerankedIndex, fuse, ranks, tool_text
from only1mcp.context.search import ToolIndex
from only1mcp.context.semantic import SemanticModel
from tests.support.imports import loaded_after


class Table:
    """An encoder from a fixed table of vectors: the fusion is tested apart from any model's opinion."""

    def __init__(self, vectors: dict[str, list[float]]) -> None:
        self.vectors = vectors
        self.calls: list[list[str]] = []

    def encode(self, texts: list[str]) -> np.ndarray:
        self.calls.append(texts)
        return np.array([self.vectors[text] for text in texts], dtype=np.float32)


def _tool(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "description": description, "inputSchema": {"type": "object"}}


TOOLS = [_tool("read_file", "Read a file from disk"), _tool("read_page", "Read a web page"),
         _tool("read_mail", "Read the mail")]


def test_a_tools_text_is_its_name_in_words_then_its_description() -> None:
    assert tool_text(_tool("get_PRFiles", "List the files.")) == "get pr files. List the files."
    assert tool_text({"name": "listIssues"}) == "list issues"


def test_ranks_count_from_the_highest_and_ties_keep_their_order() -> None:
    assert ranks(np.array([0.1, 0.9, 0.5, 0.9])).tolist() == [3, 0, 2, 1]


def test_the_fusion_keeps_bm25s_order_when_the_cosines_agree_and_weighs_them_when_they_do_not() -> None:
    assert np.argsort(-fuse(np.array([0.9, 0.5, 0.1]))).tolist() == [0, 1, 2]
    # at the served weight and k, the cosine's favourite at BM25's last place does not jump two places...
    assert np.argsort(-fuse(np.array([0.1, 0.2, 0.9]), 0.2, 60.0), kind="stable").tolist() == [0, 1, 2]
    # ...while a heavier weight with a small k puts it first
    assert np.argsort(-fuse(np.array([0.1, 0.2, 0.9]), 0.6, 1.0), kind="stable").tolist() == [2, 0, 1]
    assert np.allclose(fuse(np.array([0.3, 0.9]), 0.0), [1 / 60, 1 / 61])  # weight 0: BM25 alone


def test_the_reranker_reorders_bm25s_candidates_and_embeds_tools_once() -> None:
    table = Table({tool_text(t): v for t, v in zip(TOOLS, ([1, 0], [0, 1], [0.6, 0.8]), strict=True)}
                  | {"read the mail": [0, 1]})
    index = RerankedIndex(TOOLS, table, weight=1.0, k=1.0)
    bm25 = [hit.name for hit in ToolIndex(TOOLS).search("read the mail", 3)]
    reranked = [hit.name for hit in index.search("read the mail", 3)]
    assert bm25[0] == "read_mail" and reranked == ["read_page", "read_mail", "read_file"]
    assert [hit.name for hit in index.search("read the mail", 3, lambda name: name != "read_page")] == [
        "read_mail", "read_file"]  # rbac filters the candidates before they are re-ordered
    assert table.calls[0] == [tool_text(t) for t in TOOLS] and table.calls[1:] == [["read the mail"]] * 2
    assert index.search("nothing matches", 3) == []  # no shared word: nothing, as with BM25


def test_the_bundled_model_is_read_without_a_download(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket  # noqa: PLC0415

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("the model tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    vectors = SemanticModel().encode(["open a ticket", "create an issue", "what time is it"])
    assert vectors.shape == (3, 256)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]


def test_a_lazy_presentation_with_the_switch_builds_a_reranked_index() -> None:
    shown = Presentation("lazy", lazy=LazySettings(rerank="semantic"))
    assert isinstance(shown.index(TOOLS, ["a"] * 3), RerankedIndex)
    assert isinstance(Presentation("lazy").index(TOOLS, ["a"] * 3), ToolIndex)


def test_the_switch_without_the_package_is_refused_with_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "wordllama", None)  # what Python's import reads as "not installed"
    with pytest.raises(ValueError, match=r"pip install 'only1mcp\[semantic\]'"):
        LazySettings(rerank="semantic")
    assert LazySettings(rerank="none").rerank == "none"
    with pytest.raises(ValueError, match="'none' or 'semantic'"):
        LazySettings(rerank="neural")


def test_no_wordllama_module_is_loaded_without_the_switch() -> None:
    code = ("import workers.gateway\n"
            "from only1mcp.context.present import Presentation\n"
            "from only1mcp.config.context import LazySettings\n"
            "Presentation('lazy', lazy=LazySettings()).index([{'name': 'read_file'}], ['a'])\n")
    assert loaded_after(code, ("wordllama", "safetensors", "tokenizers")) == []
