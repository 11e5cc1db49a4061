"""What the admin API's read endpoints answer, built from the supervisor's status (over the bus) and the
serving worker's state replica. Pure functions: the worker's handlers fetch, these shape.

Breaker and health per replica are the serving worker's (what it routes by, as published); the rest of
a replica's story (last error, retry time, calls) is the supervisor's. Request counts and latency per
backend come from ``traffic`` (see ``only1mcp.admin.traffic``): counters since start, so a viewer derives
rates from two readings.
"""

from __future__ import annotations

from typing import Any

from only1mcp.bus.state import State

__all__ = ["backends_view", "catalog_view", "reloads_view", "workers_view"]


def backends_view(status: dict[str, Any], state: State, traffic: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per configured backend, in config order."""
    settings = state.config.settings if state.config is not None else {}
    catalog = state.catalog.catalog if state.catalog is not None else {}
    discovery = catalog.get("backends") or {}
    tools = _tools_per_backend(catalog)
    children = _children(status)
    out = []
    for raw in settings.get("backends", []):
        name = raw["name"]
        if not raw.get("enabled", True):
            continue
        found = discovery.get(name) or {}
        orders = state.operator.get(name)
        out.append({
            "name": name,
            "transport": raw.get("transport", ""),
            "state": found.get("state", "starting"),
            "error": found.get("error", ""),
            "tools": tools.get(name, 0),
            "drained": bool(orders and orders.drained),
            "restarts_ordered": orders.restarts if orders else 0,
            "replicas": _replicas(name, status, state),
            "children": children.get(name, []),
            "traffic": traffic.get(name, _NO_TRAFFIC),
        })
    return out


_NO_TRAFFIC: dict[str, Any] = {"requests": 0, "errors": 0, "p50_ms": None, "p99_ms": None}


def _replicas(name: str, status: dict[str, Any], state: State) -> list[dict[str, Any]]:
    judged = (status.get("routes") or {}).get(name) or []
    routes = state.routes.get(name)
    seen = routes.replicas if routes is not None else ()
    out = []
    for index, supervisor in enumerate(judged):
        here = seen[index] if index < len(seen) else None
        out.append({
            "replica": index,
            "health": here.health.value if here is not None else supervisor["health"],
            "breaker": here.breaker.value if here is not None else supervisor["breaker"],
            "reason": supervisor.get("reason", ""),
            "retry_at": supervisor.get("retry_at"),
            "last_error": supervisor.get("last_error", ""),
            "calls": supervisor.get("calls", 0),
        })
    return out


def _children(status: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Stdio children by backend: the stdio host's (shared), and each worker's own (per_worker)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for child in status.get("stdio") or []:
        out.setdefault(child["backend"], []).append(
            {"replica": child["replica"], "pid": child["pid"], "state": child["state"],
             "restarts": child["restarts"], "last_error": child["last_error"], "worker": None})
    for worker in status.get("workers") or []:
        for key, child in (worker.get("children") or {}).items():
            backend, _, replica = key.rpartition("#")
            out.setdefault(backend, []).append(
                {"replica": int(replica or 0), "pid": child.get("pid"), "state": child.get("state", ""),
                 "restarts": child.get("recent_exits", 0), "last_error": "", "worker": worker.get("slot")})
    return out


def _tools_per_backend(catalog: dict[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for backend, _original in ((catalog.get("routes") or {}).get("tools") or {}).values():
        counts[backend] = counts.get(backend, 0) + 1
    return counts


def workers_view(status: dict[str, Any]) -> dict[str, Any]:
    """Every worker slot, the standbys, the stdio host and the supervisor, as the supervisor keeps them."""
    workers = [{
        "slot": w["slot"], "pid": w["pid"], "ready": w["ready"], "rss_bytes": w.get("rss_bytes"),
        "in_flight": w["in_flight"], "requests": w["requests"], "restarts": w["restarts"],
        "started_at": w["started_at"], "heartbeat_age": w["heartbeat_age"], "config_version": w["config_version"],
        "seq": w["seq"],
    } for w in status.get("workers") or []]
    host = status.get("stdio_host")
    return {
        "workers": workers,
        "standby": status.get("standby") or [],
        "stdio_host": None if host is None else {key: host.get(key) for key in
                                                 ("pid", "ready", "rss_bytes", "restarts", "started_at")},
        "supervisor": status.get("supervisor") or {},
    }


def catalog_view(state: State) -> dict[str, Any]:
    """Tools, prompts, resources and templates per backend, and the names renamed on a collision."""
    catalog = state.catalog.catalog if state.catalog is not None else {}
    routes = catalog.get("routes") or {}
    per: dict[str, dict[str, list[str]]] = {}

    def add(backend: str, kind: str, exposed: str) -> None:
        entry = per.setdefault(backend, {"tools": [], "prompts": [], "resources": [], "templates": []})
        entry[kind].append(exposed)

    for kind in ("tools", "prompts", "resources"):
        for exposed, (backend, _original) in (routes.get(kind) or {}).items():
            add(backend, kind, exposed)
    for exposed, backend, _original in routes.get("templates") or []:
        add(backend, "templates", exposed)
    return {
        "version": state.catalog_version,
        "backends": [{"name": name, **lists} for name, lists in per.items()],
        "collisions": catalog.get("collisions") or [],
    }


def reloads_view(status: dict[str, Any]) -> dict[str, Any]:
    config = status.get("config") or {}
    reloads = config.get("reloads") or {}
    return {
        "version": config.get("version", 0),
        "loaded_at": config.get("loaded_at"),
        "source": config.get("source", ""),
        "ok": reloads.get("ok", 0),
        "failed": reloads.get("failed", 0),
        "last_apply_ms": reloads.get("last_apply_ms"),
        "needs_restart": config.get("needs_restart") or [],
        "history": config.get("history") or [],
    }
