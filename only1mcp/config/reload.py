"""What a config reload applies and what waits for a restart, decided by each setting's ``Reload`` mark.

Every field of the top-level sections (server, proxy, sessions) is marked LIVE or RESTART in
``models.py``; ``backends`` is LIVE as a whole (a changed backend is restarted, an unchanged one keeps
running). A reload publishes the new settings with every RESTART field kept at its running value, and
reports those fields as needing a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .fields import Reload, Sensitive
from .models import Settings

__all__ = ["Pending", "reload_mark", "sections", "split_reload"]


@dataclass(frozen=True, slots=True)
class Pending:
    """A changed setting that applies only after a restart."""

    path: str  # e.g. "server.port"
    running: Any  # as shown: a sensitive setting's values are masked
    wanted: Any


def reload_mark(field: FieldInfo) -> Reload | None:
    return next((item for item in field.metadata if isinstance(item, Reload)), None)


def sections() -> dict[str, type[BaseModel]]:
    """The top-level sections whose fields each carry a mark, by name."""
    return {name: field.annotation for name, field in Settings.model_fields.items()  # type: ignore[misc]
            if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel)}


def split_reload(running: Settings, new: Settings) -> tuple[Settings, list[Pending]]:
    """``new`` with every RESTART setting kept at its running value, and those that differ."""
    pending: list[Pending] = []
    updates: dict[str, BaseModel] = {}
    for section, model in sections().items():
        old_part, new_part = getattr(running, section), getattr(new, section)
        kept = {}
        for name, field in model.model_fields.items():
            if reload_mark(field) is Reload.RESTART and getattr(old_part, name) != getattr(new_part, name):
                hidden = any(isinstance(item, Sensitive) for item in field.metadata)
                shown = ("***", "***") if hidden else (getattr(old_part, name), getattr(new_part, name))
                pending.append(Pending(f"{section}.{name}", *shown))
                kept[name] = getattr(old_part, name)
        if kept:
            updates[section] = new_part.model_copy(update=kept)
    return (new.model_copy(update=updates) if updates else new), pending
