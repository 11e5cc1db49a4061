"""What ``only1mcp top`` and ``only1mcp status`` show: rich tables of workers, backends and reloads, and the
same numbers as a plain document for ``status --json``."""

from __future__ import annotations

import time
from typing import Any

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from .client import Reading

__all__ = ["document", "render"]

_BREAKER_STYLE = {"closed": "green", "half_open": "yellow", "open": "bold red"}
_STATE_STYLE = {"ok": "green", "failed": "bold red"}


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _megabytes(value: int | None) -> str:
    return "-" if value is None else f"{value / 1048576:,.1f}"


def render(reading: Reading, rates: dict[str, dict[str, float | None]], url: str) -> Group:
    """Everything on one screen; ``rates`` from ``client.rates`` (rates are '-' until a second reading)."""
    return Group(_header(reading, url), _workers(reading), _backends(reading, rates), _reloads(reading))


def _header(reading: Reading, url: str) -> Text:
    workers = reading.workers["workers"]
    ready = sum(1 for w in workers if w["ready"])
    reloads = reading.reloads
    text = Text()
    text.append("Only1MCP ", style="bold")
    text.append(f"{url}  workers {ready}/{len(workers)}  config v{reloads['version']}  "
                f"{time.strftime('%H:%M:%S')}  (q quits)")
    return text


def _workers(reading: Reading) -> Table:
    table = Table(title="Workers", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("slot", "pid", "ready", "RSS MB", "in flight", "requests", "restarts"):
        table.add_column(column, justify="right" if column not in ("ready",) else "center")
    for w in reading.workers["workers"]:
        table.add_row(str(w["slot"]), str(w["pid"] or "-"), "yes" if w["ready"] else "no", _megabytes(w["rss_bytes"]),
                      str(w["in_flight"]), f"{w['requests']:,}", str(w["restarts"]))
    host = reading.workers.get("stdio_host")
    if host is not None:
        table.add_row("stdio", str(host["pid"] or "-"), "yes" if host["ready"] else "no",
                      _megabytes(host["rss_bytes"]), "-", "-", str(host["restarts"]))
    return table


def _backends(reading: Reading, rates: dict[str, dict[str, float | None]]) -> Table:
    table = Table(title="Backends (latency in ms)", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for column in ("backend", "state", "breaker", "req/s", "err/s", "p50", "p99", "requests", "errors", "tools"):
        table.add_column(column, justify="left" if column in ("backend", "state", "breaker") else "right",
                         no_wrap=True)
    for b in reading.backends["backends"]:
        rate = rates.get(b["name"], {})
        traffic = b["traffic"]
        state = "drained" if b["drained"] else b["state"]
        breakers = Text(" ".join(r["breaker"] for r in b["replicas"]) or "-")
        worst = next((s for s in ("open", "half_open") if any(r["breaker"] == s for r in b["replicas"])), "closed")
        breakers.stylize(_BREAKER_STYLE[worst])
        table.add_row(b["name"], Text(state, style=_STATE_STYLE.get(state, "yellow")), breakers,
                      _number(rate.get("rps")), _number(rate.get("eps")),
                      _number(rate.get("p50_ms") if rate.get("p50_ms") is not None else traffic["p50_ms"], 2),
                      _number(rate.get("p99_ms") if rate.get("p99_ms") is not None else traffic["p99_ms"], 2),
                      f"{traffic['requests']:,}", f"{traffic['errors']:,}", str(b["tools"]))
    return table


def _reloads(reading: Reading) -> Text:
    reloads = reading.reloads
    text = Text(f"Reloads: {reloads['ok']} ok, {reloads['failed']} failed")
    history = reloads.get("history") or []
    if history:
        last = history[-1]
        when = time.strftime("%H:%M:%S", time.localtime(last["at"]))
        outcome = f"v{last['version']}" if last["ok"] else f"failed: {last.get('error', '').splitlines()[0][:80]}"
        text.append(f"; last {when} by {last['trigger']}: {outcome}")
    if reloads.get("needs_restart"):
        text.append(f"; waiting for a restart: {', '.join(reloads['needs_restart'])}", style="yellow")
    return text


def document(reading: Reading, rates: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """``status --json``: the readings as the admin API gave them, with the rates between two readings."""
    return {"backends": [{**b, "rates": rates.get(b["name"], {})} for b in reading.backends["backends"]],
            "workers": reading.workers, "reloads": reading.reloads}
