"""The official Python SDK client through `lazy` mode with `proxy.lazy.rerank: semantic` (2 workers): the search
still finds the tool for a task, every worker that searched holds WordLlama's model, and a gateway without the
switch loads nothing of wordllama in any worker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.interop.test_lazy_mode import _backends, _search, connect, web  # noqa: F401  (web: a fixture)
from tests.support.gateway import Gateway, running_gateway
from tests.support.processes import FixtureServer
from tests.support.waiting import eventually

pytestmark = pytest.mark.timeout(300)


def _wordllama_mapped(pid: int) -> bool:
    """Whether the process has loaded wordllama (its compiled modules are mapped once it is imported)."""
    return "/wordllama/" in Path(f"/proc/{pid}/maps").read_text()


def _gateway(folder: Path, web: FixtureServer, lazy: str) -> Iterator[Gateway]:  # noqa: F811
    config = folder / "only1mcp.yaml"
    config.write_text(f"server: {{port: 0, workers: 2}}\nproxy: {{tools_mode: lazy, lazy: {lazy}}}\n" + _backends(web))
    with running_gateway("--config", str(config), cwd=folder) as gateway:
        gateway.wait_backends_up("local", "web")
        yield gateway


@pytest.fixture(scope="module")
def reranking(tmp_path_factory: pytest.TempPathFactory, web: FixtureServer) -> Iterator[Gateway]:  # noqa: F811
    yield from _gateway(tmp_path_factory.mktemp("rerank"), web, "{rerank: semantic}")


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory, web: FixtureServer) -> Iterator[Gateway]:  # noqa: F811
    yield from _gateway(tmp_path_factory.mktemp("plain"), web, "{rerank: none}")


async def test_a_reranked_search_finds_the_tool_and_every_worker_holds_the_model(reranking: Gateway) -> None:
    async with connect(reranking.url + "/mcp") as session:
        for _ in range(4):  # fresh connections each call: both workers answer
            found = [tool["name"] for tool in await _search(session, "ask the language model to write something", 3)]
            assert {"local_ask_llm", "web_ask_llm"} & set(found[:3]), found
    pids = await reranking.fetch_worker_pids()
    assert len(pids) == 2
    # the whole catalog's index (and so the model) is built with each worker's view, before any search
    await eventually(lambda: all(_wordllama_mapped(pid) for pid in pids), 30, "wordllama loaded in every worker")


async def test_without_the_switch_no_worker_loads_wordllama(plain: Gateway) -> None:
    async with connect(plain.url + "/mcp") as session:
        found = [tool["name"] for tool in await _search(session, "ask the language model to write something", 3)]
    assert {"local_ask_llm", "web_ask_llm"} & set(found), found
    pids = await plain.fetch_worker_pids()
    assert pids and not any(_wordllama_mapped(pid) for pid in pids)
