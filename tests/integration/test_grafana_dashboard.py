"""deploy/grafana/only1mcp.json asks only for metrics a real gateway exports: every metric name in every
PromQL expression of the dashboard is in /metrics of a gateway that has served some calls."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from tests.support.metrics import scrape
from tests.support.rawhttp import INITIALIZE, connect, rpc

pytestmark = pytest.mark.timeout(120)

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "only1mcp.json"
CONFIG = """
server: {{port: 0, workers: 2}}
backends:
  - name: demo
    command: {python}
    args: ["-m", "only1mcp.demo_server"]
"""
# PromQL's functions, aggregations and keywords: every other bare identifier in an expression is a metric
_NOT_METRICS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless",
                "offset", "inf", "nan"}


def _expressions(node: object) -> list[str]:
    """Every ``expr`` of every panel target, and the templating queries, wherever they sit in the JSON."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "expr" and isinstance(value, str):
                found.append(value)
            elif key == "query" and isinstance(value, dict) and isinstance(value.get("query"), str):
                found.append(value["query"])
            else:
                found += _expressions(value)
    elif isinstance(node, list):
        for item in node:
            found += _expressions(item)
    return found


def metric_names(expression: str) -> set[str]:
    """The metric names an expression reads: label matchers, strings, ranges and grouping lists removed, then
    the identifiers that are not called (functions) nor PromQL keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)  # strings (label values, legend-like templates)
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges, $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        following = text[match.end():].lstrip()
        if following.startswith("(") or match.group() in _NOT_METRICS:
            continue
        names.add(match.group())
    return names


def test_names_are_read_from_expressions() -> None:
    assert metric_names('histogram_quantile(0.99, sum by (le, backend) (rate(a_bucket{x="y(z)"}[5m])))') == {"a_bucket"}
    assert metric_names("time() - b_seconds") == {"b_seconds"}
    assert metric_names('label_values(c_total, backend)') == {"c_total", "backend"}  # backend: a label, flagged


async def test_every_metric_the_dashboard_reads_is_exported(launch_gateway, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "only1mcp.yaml"
    config.write_text(CONFIG.format(python=sys.executable))
    gateway = await launch_gateway("--config", str(config))
    async with connect(gateway.url) as connection:
        await connection.send(connection.post_bytes(INITIALIZE))
        session = (await connection.response()).headers["mcp-session-id"]
        for n in range(10):
            body = rpc(n, "tools/call", {"name": "demo_echo", "arguments": {"text": "hi"}})
            await connection.send(connection.post_bytes(body, session=session))
            assert (await connection.response()).status == 200
    exported = (await scrape(gateway)).names()
    expressions = _expressions(json.loads(DASHBOARD.read_text()))
    used = set().union(*(metric_names(e) for e in expressions)) - {"backend"}  # label_values' label argument
    assert len(used) >= 15, used  # the dashboard covers the metrics, and the parser found them
    assert not {name for name in used if not name.startswith("only1mcp_")}, used
    missing = sorted(used - exported)
    assert not missing, f"the dashboard reads metrics no gateway exports: {missing}"
