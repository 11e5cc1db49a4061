"""W3C Trace Context (https://www.w3.org/TR/trace-context/): reading a client's ``traceparent`` and
``tracestate``, from its HTTP headers or from ``params._meta`` (MCP's carrier for them, SEP-414), and
writing the continued context into the ``_meta`` of a request to a backend."""

from __future__ import annotations

import re
from typing import Any

__all__ = ["SAMPLED", "TraceParent", "from_meta", "header_value", "parse", "with_meta"]

_FORMAT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16
# Printable ASCII up to the 512 characters a vendor must propagate at least; anything else is not passed on.
_STATE = re.compile(r"[\x20-\x7e]{1,512}")
SAMPLED = 0x01


class TraceParent:
    """A valid incoming context: the trace, the caller's span (the parent of ours), its flags and the
    vendors' ``tracestate`` passed on unchanged."""

    __slots__ = ("flags", "parent_id", "state", "trace_id")

    def __init__(self, trace_id: str, parent_id: str, flags: int, state: str | None) -> None:
        self.trace_id = trace_id
        self.parent_id = parent_id
        self.flags = flags
        self.state = state

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def parse(value: Any, state: Any = None) -> TraceParent | None:
    """The context a ``traceparent`` value carries, or None when it is not one (then the request is served
    as untraced: a malformed header never fails a request). A version above 00 is read as 00 when its
    first four fields are, as the specification asks; version ff is invalid."""
    if not isinstance(value, str) or len(value) < 55:
        return None
    if len(value) > 55 and (value[:2] == "00" or value[55] != "-"):
        return None
    found = _FORMAT.fullmatch(value[:55])
    if found is None:
        return None
    version, trace_id, parent_id, flags = found.groups()
    if version == "ff" or trace_id == _ZERO_TRACE or parent_id == _ZERO_SPAN:
        return None
    passed = state if isinstance(state, str) and _STATE.fullmatch(state) is not None else None
    return TraceParent(trace_id, parent_id, int(flags, 16), passed)


def from_meta(params: Any) -> TraceParent | None:
    """The context a client put in ``params._meta`` (SEP-414), when it sent no ``traceparent`` header."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    if not isinstance(meta, dict):
        return None
    return parse(meta.get("traceparent"), meta.get("tracestate"))


def header_value(trace_id: str, span_id: str, flags: int) -> str:
    return f"00-{trace_id}-{span_id}-{flags:02x}"


def with_meta(params: dict[str, Any] | None, traceparent: str, state: str | None) -> dict[str, Any]:
    """``params`` (not changed) with ``_meta.traceparent`` (and ``tracestate``) set to the continued context;
    every other key of the client's own ``_meta`` is kept as it was."""
    params = params or {}
    meta = params.get("_meta")
    carried = {**meta} if isinstance(meta, dict) else {}
    carried["traceparent"] = traceparent
    if state is not None:
        carried["tracestate"] = state
    else:
        carried.pop("tracestate", None)  # it belonged to a context we did not continue
    return {**params, "_meta": carried}
