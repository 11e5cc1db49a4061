"""Task ids through the gateway (2025-11-25 tasks, passed through to the backend that owns them).

A backend's task id is shown to clients as ``<backend>:<replica>:<id>``: a task lives on the replica that
created it. Backend names cannot contain ``:``, so the first two colons always split it back, on any
worker.
"""

from __future__ import annotations

from typing import Any

from only1mcp.protocol.jsonrpc import Code, JsonRpcError

__all__ = ["RELATED_TASK", "expose_result", "expose_task", "route"]

RELATED_TASK = "io.modelcontextprotocol/related-task"


def expose_task(backend: str, replica: int, task: dict[str, Any]) -> dict[str, Any]:
    if "taskId" not in task:
        return task
    return {**task, "taskId": f"{backend}:{replica}:{task['taskId']}"}


def route(task_id: str) -> tuple[str, int, str]:
    backend, _, rest = task_id.partition(":")
    replica, colon, original = rest.partition(":")
    if not colon or not backend or not replica.isdigit():
        raise JsonRpcError(Code.INVALID_PARAMS, f"unknown task '{task_id}'; task ids from this gateway look "
                           "like '<backend>:<replica>:<id>'")
    return backend, int(replica), original


def expose_result(backend: str, replica: int, result: Any) -> Any:
    """A Task (tasks/get, tasks/cancel) or a task's final result (tasks/result) as the client sees it."""
    if not isinstance(result, dict):
        return result
    if "taskId" in result:
        result = expose_task(backend, replica, result)
    meta = result.get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get(RELATED_TASK), dict):
        result = {**result, "_meta": {**meta, RELATED_TASK: expose_task(backend, replica, meta[RELATED_TASK])}}
    return result
