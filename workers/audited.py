"""What the audit line of a request needs from the worker's state: the backend its target routes to.

Looked up again from the catalog view rather than carried out of the handlers: a dictionary lookup, paid
only while the trail is on, and no handler has to know about auditing.
"""

from __future__ import annotations

from typing import Any, Protocol

from only1mcp.audit.outcome import Outcome
from only1mcp.catalog.view import CatalogView

__all__ = ["Client", "backend_of", "outcome_of"]

_BY_NAME = {"tools/call": CatalogView.tool, "prompts/get": CatalogView.prompt}
_BY_URI = ("resources/read", "resources/subscribe", "resources/unsubscribe")
_TASKS = ("tasks/get", "tasks/result", "tasks/cancel")


class Client(Protocol):
    """Whoever sent a request, as the trail names it: asked only while the trail is on."""

    def peer(self) -> str:
        """The client's IP address ('' when unknown)."""


def backend_of(view: CatalogView | None, method: str, params: Any) -> str | None:
    """The backend a request for one named thing goes to; None for the rest (lists, ping, fan-outs) and for
    names no backend serves."""
    if view is None or not isinstance(params, dict):
        return None
    route: tuple[str, Any] | None = None
    lookup = _BY_NAME.get(method)
    if lookup is not None:
        name = params.get("name")
        route = lookup(view, name) if isinstance(name, str) else None
    elif method in _BY_URI:
        uri = params.get("uri")
        route = view.resource(uri) if isinstance(uri, str) else None
    elif method == "completion/complete":
        route = _completion_route(view, params.get("ref"))
    elif method in _TASKS:
        task_id = params.get("taskId")
        # Task ids are shown as <backend>:<replica>:<id>; the backend is what precedes the first colon.
        backend = task_id.partition(":")[0] if isinstance(task_id, str) else ""
        return backend if backend in view.backends else None
    return route[0] if route is not None else None


def _completion_route(view: CatalogView, ref: Any) -> tuple[str, Any] | None:
    if not isinstance(ref, dict):
        return None
    name, uri = ref.get("name"), ref.get("uri")
    if ref.get("type") == "ref/prompt" and isinstance(name, str):
        return view.prompt(name)
    if ref.get("type") == "ref/resource" and isinstance(uri, str):
        return view.template(uri) or view.resource(uri)
    return None


def outcome_of(result: Any) -> Outcome:
    """A result is ``ok`` unless it is a tool result flagged isError: the call failed, as the tool says."""
    return Outcome.ERROR if isinstance(result, dict) and result.get("isError") is True else Outcome.OK
