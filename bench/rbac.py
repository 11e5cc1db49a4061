"""What rbac costs a worker: the check on every call, the lookup of a caller's list page, and the work done
once per config (compiling the roles) or once per role set and catalog version (its permissions, its pages).

    python -m bench.rbac [--repeat 5] [--tools 1000]

In process, with the classes a worker uses (Policy, Permissions, CatalogView) on a policy of 6 roles with
inheritance and a catalog of ``--tools`` tools; every figure is the median of ``--repeat`` timeit runs.
"""

from __future__ import annotations

import argparse
import statistics
import time
import timeit
from collections.abc import Callable
from typing import Any

from only1mcp.auth.principal import AuthMethod, Principal
from only1mcp.catalog.merge import Discovery, merge
from only1mcp.catalog.view import CatalogView
from only1mcp.config.rbac import RbacSettings
from only1mcp.policy.policy import Policy

from .stats import save

RBAC: dict[str, Any] = {
    "default_roles": ["guest"],
    "roles": {
        "guest": {"allow": ["prompts:docs_*", "resources:file:///public/*"]},
        "reader": {"inherits": ["guest"], "allow": [f"tools:b{i}_get_*" for i in range(10)]
                   + [f"tools:b{i}_list_*" for i in range(10)] + ["resources:file:///docs/*"]},
        "writer": {"inherits": ["reader"], "allow": [f"tools:b{i}_*" for i in range(10)],
                   "deny": [f"tools:b{i}_delete_*" for i in range(10)] + ["tools:*_admin_*"]},
        "ops": {"allow": ["tools:b9_*", "admin:status"], "deny": ["resources:file:///secret/*"]},
        "auditor": {"allow": ["admin:*", "resources:*"], "deny": ["resources:*/keys/*"]},
        "admin": {"inherits": ["writer", "ops", "auditor"]},
    },
}
VERBS = ("get", "list", "create", "update", "delete")


def _catalog(tools: int) -> dict[str, Any]:
    per = max(1, tools // 10)
    discoveries = [Discovery(f"b{b}", f"b{b}", capabilities={"tools": {}},
                             tools=[{"name": f"{VERBS[i % 5]}_item_{i}", "inputSchema": {"type": "object"}}
                                    for i in range(per)]) for b in range(10)]
    return merge(discoveries, "_", {})


def _per_call(statement: Callable[[], Any], repeat: int, number: int = 200_000) -> float:
    """Median nanoseconds per call of ``statement``, less the cost of calling an empty lambda."""
    empty = min(timeit.repeat(lambda: None, number=number, repeat=3)) / number
    runs = timeit.repeat(statement, number=number, repeat=repeat)
    return (statistics.median(runs) / number - empty) * 1e9


def _once(action: Callable[[Any], Any], repeat: int, setup: Callable[[], Any] = lambda: None) -> float:
    """Median milliseconds of one ``action(setup())``, the setup not counted."""
    times = []
    for _ in range(repeat):
        prepared = setup()
        start = time.perf_counter()
        action(prepared)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tools", type=int, default=1000)
    args = parser.parse_args()
    settings = RbacSettings.model_validate(RBAC)
    policy = Policy(settings)
    writer = Principal("alice", AuthMethod.JWT, frozenset({"writer", "ops"}))
    permissions = policy.permissions(writer)
    view = CatalogView(_catalog(args.tools), 100)
    view.page("tools/list", None, 100, permissions)  # prepared once per role set and catalog version
    uri = "file:///docs/" + "/".join(f"section{i}" for i in range(20)) + "/page.md"
    figures = {
        "check_tool_allowed_ns": _per_call(lambda: policy.permissions(writer).allows_tool("b3_get_item_7"),
                                           args.repeat),
        "check_tool_denied_ns": _per_call(lambda: policy.permissions(writer).allows_tool("b3_delete_item_9"),
                                          args.repeat),
        "check_resource_200_chars_ns": _per_call(lambda: policy.permissions(writer).allows_resource(uri), args.repeat),
        "check_rbac_off_ns": _per_call(lambda: policy.permissions(None).allows_tool("b3_get_item_7"), args.repeat),
        "list_page_filtered_ns": _per_call(lambda: view.page("tools/list", None, 100, permissions), args.repeat),
        "list_page_whole_ns": _per_call(lambda: view.page("tools/list", None, 100, None), args.repeat),
        "compile_policy_ms": _once(lambda _: Policy(settings), args.repeat),
        "first_use_of_a_role_set_ms": _once(lambda fresh: fresh.permissions(writer), args.repeat,
                                            lambda: Policy(settings)),
        "filtered_tool_pages_of_a_role_set_ms": _once(
            lambda fresh: fresh.page("tools/list", None, 100, permissions), args.repeat,
            lambda: CatalogView(_catalog(args.tools), 100)),
    }
    for name, value in figures.items():
        print(f"{name:36} {value:10.3f}")
    path = save("rbac", {"tools": args.tools, "repeat": args.repeat, "figures": figures})
    print(f"saved {path}")


if __name__ == "__main__":
    main()
