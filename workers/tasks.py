"""Task ids through the gateway (2025-11-25 tasks, passed through to the backend that owns them).

A backend's task id is shown to clients as ``<backend>:<replica>:<tag>:<id>``: a task lives on the replica
that created it, and belongs to the session that created it. Every client's calls to a backend share the
gateway's session with it, so the backend cannot tell them apart: the ``tag``, a MAC of the session and the
task (``SessionSealer.tag``), binds the id to its session, and any other session presenting it is answered
as for a task that does not exist (2025-11-25 asks a receiver to bind tasks to the context that made them).
Backend names cannot contain ``:`` and tags are base64url, so the first three colons always split it back,
on any worker.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

from only1mcp.protocol.jsonrpc import Code, JsonRpcError

__all__ = ["RELATED_TASK", "Tagger", "expose_result", "expose_task", "route", "unknown_task"]

RELATED_TASK = "io.modelcontextprotocol/related-task"

Tagger = Callable[[str], str]  # SessionSealer.tag


def _tag(tag: Tagger, sid: str, backend: str, replica: int, original: str) -> str:
    return tag(f"{sid}\0{backend}\0{replica}\0{original}")


def expose_task(backend: str, replica: int, task: dict[str, Any], sid: str, tag: Tagger) -> dict[str, Any]:
    """``task`` as session ``sid`` is shown it: its id namespaced and bound to that session."""
    if "taskId" not in task:
        return task
    original = str(task["taskId"])
    return {**task, "taskId": f"{backend}:{replica}:{_tag(tag, sid, backend, replica, original)}:{original}"}


def unknown_task(task_id: str) -> JsonRpcError:
    """The one answer for an id no task of this session has (not issued here, or another session's)."""
    return JsonRpcError(Code.INVALID_PARAMS, f"unknown task '{task_id}'; task ids come from tools/call or "
                        "tasks/list of this session")


def route(task_id: str, sid: str, tag: Tagger) -> tuple[str, int, str]:
    """(backend, replica, the backend's id) of a task id session ``sid`` was given; -32602 otherwise."""
    backend, _, rest = task_id.partition(":")
    replica, _, rest = rest.partition(":")
    given, colon, original = rest.partition(":")
    if not colon or not backend or not replica.isdigit():
        raise JsonRpcError(Code.INVALID_PARAMS, f"unknown task '{task_id}'; task ids from this gateway look "
                           "like '<backend>:<replica>:<tag>:<id>'")
    if not hmac.compare_digest(given, _tag(tag, sid, backend, int(replica), original)):
        raise unknown_task(task_id)
    return backend, int(replica), original


def expose_result(backend: str, replica: int, result: Any, sid: str, tag: Tagger) -> Any:
    """A Task (tasks/get, tasks/cancel) or a task's final result (tasks/result) as session ``sid`` sees it."""
    if not isinstance(result, dict):
        return result
    if "taskId" in result:
        result = expose_task(backend, replica, result, sid, tag)
    meta = result.get("_meta")
    if isinstance(meta, dict) and isinstance(meta.get(RELATED_TASK), dict):
        related = expose_task(backend, replica, meta[RELATED_TASK], sid, tag)
        result = {**result, "_meta": {**meta, RELATED_TASK: related}}
    return result
