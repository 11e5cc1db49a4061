"""Task ids through the gateway (2025-11-25 tasks, passed through to the backend that owns them).

A backend's task id is shown to clients as ``<backend>:<id>``; backend names cannot contain ``:``, so the
first colon always splits it back, on any worker.
"""

from __future__ import annotations

from typing import Any

from only1mcp.protocol.jsonrpc import Code, JsonRpcError

__all__ = ["RELATED_TASK", "expose_result", "expose_task", "route"]

RELATED_TASK = "io.modelcontextprotocol/related-task"


def expose_task(backend: str, task: dict[str, Any]) -> dict[str, Any]:
    if "taskId" not in task:
        return task
    return {**task, "taskId": f"{backend}:{task['taskId']}"}


def route(task_id: str) -> tuple[str, str]:
    backend, colon, original = task_id.partition(":")
    if not colon or not backend:
        raise JsonRpcError(Code.INVALID_PARAMS, f"unknown task '{task_id}'; task ids from this gateway look "
                           "like '<backend>:<id>'")
    return backend, original


def expose_result(backend: str, result: Any) -> Any:
    """A Task (tasks/get, tasks/cancel) or a task's final result (tasks/result) as the client sees it."""
    if not isinstance(result, dict):
        return result
    if "taskId" in result:
        result = expose_task(backend, result)
    meta = result.get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get(RELATED_TASK), dict):
        result = {**result, "_meta": {**meta, RELATED_TASK: expose_task(backend, meta[RELATED_TASK])}}
    return result
