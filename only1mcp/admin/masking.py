"""The running settings as the admin API shows them: every secret masked.

A field marked ``Sensitive`` shows ``***`` (for a mapping such as a stdio backend's ``env``, each value, so
the names stay visible); URLs keep scheme, host, port, path and parameter names (``redact.mask_url``), since
a backend URL may carry a credential in its user info or query.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from only1mcp.config.fields import Sensitive
from only1mcp.redact import MASK, mask_url

__all__ = ["masked_settings"]


def masked_settings(model: BaseModel) -> dict[str, Any]:
    """``model.model_dump(mode="json")`` with secrets masked."""
    return _masked(model, model.model_dump(mode="json"))


def _masked(model: BaseModel, dumped: dict[str, Any]) -> dict[str, Any]:
    fields = type(model).model_fields
    out: dict[str, Any] = {}
    for name, value in dumped.items():
        field = fields.get(name)
        if field is not None and any(isinstance(item, Sensitive) for item in field.metadata):
            out[name] = _hidden(value)
        else:
            out[name] = _walk(getattr(model, name, None), value)
    return out


def _hidden(value: Any) -> Any:
    if value is None or value == "":
        return value  # unset: nothing to hide, and showing it unset helps
    if isinstance(value, dict):
        return {key: MASK for key in value}
    return MASK


def _walk(source: Any, value: Any) -> Any:
    if isinstance(source, BaseModel) and isinstance(value, dict):
        return _masked(source, value)
    if isinstance(value, list):
        sources = source if isinstance(source, (list, tuple)) and len(source) == len(value) else [None] * len(value)
        return [_walk(s, v) for s, v in zip(sources, value, strict=True)]
    if isinstance(value, dict):
        return {key: _walk(None, item) for key, item in value.items()}
    if isinstance(value, str) and "://" in value:
        return mask_url(value)
    return value
