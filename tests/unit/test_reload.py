"""Honest reload: every setting is either applied by a reload or reported as needing a restart, decided by
its mark in the models (walked here field by field)."""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Any, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from only1mcp.config.auth import JwtSettings
from only1mcp.config.models import Reload, Settings
from only1mcp.config.reload import reload_mark, sections, split_reload

# A valid value of each optional nested section (its required fields filled in), for the walk below.
_EXAMPLES: dict[type[BaseModel], dict[str, Any]] = {JwtSettings: {"issuer": "https://idp.example.test"}}

FIELDS = [(section, name, field) for section, model in sections().items()
          for name, field in model.model_fields.items()]


def _candidates(field: FieldInfo) -> list[Any]:
    """Values of the field's type that differ from its default, most likely valid first."""
    default = field.get_default(call_default_factory=True)
    annotation = field.annotation
    args = [a for a in get_args(annotation) if a is not type(None)]
    literals = [a for a in (annotation, *args) if get_origin(a) is typing.Literal]
    example = next((arg for arg in args if arg in _EXAMPLES), None)
    if field.examples:
        return list(field.examples)
    if literals:
        return [value for value in get_args(literals[0]) if value != default]
    if annotation is bool:
        return [not default]
    if annotation in (int, float):
        return [default + 1, default * 2, default - 1, 1, 2]
    if get_origin(annotation) is list:
        return [["http://example.test"], [{"name": "holder", "sha256": "0" * 64}]]
    if Path in args or annotation is Path:
        return [Path("/tmp/only1mcp-reload-test")]
    if str in args or annotation is str:
        return ["x" * 40, "127.0.0.2"]
    if example is not None:
        return [example.model_validate(_EXAMPLES[example])]
    raise AssertionError(f"no alternative value for {annotation}")


def _other_value(model: type[BaseModel], name: str, field: FieldInfo) -> Any:
    """A valid value of the field that differs from its default."""
    # A field whose valid values depend on its neighbours (rbac.default_roles names roles) gives examples,
    # valid together with the examples of the other fields.
    context = {other: f.examples[0] for other, f in model.model_fields.items() if f.examples and other != name}
    for candidate in _candidates(field):
        try:
            return getattr(model.model_validate({**context, name: candidate}), name)  # as the model holds it
        except ValidationError:
            continue
    raise AssertionError(f"no valid alternative value for {model.__name__}.{name}")


@pytest.mark.parametrize(("section", "name", "field"), FIELDS, ids=[f"{s}.{n}" for s, n, _ in FIELDS])
def test_every_setting_is_marked_live_or_restart(section: str, name: str, field: FieldInfo) -> None:
    assert reload_mark(field) in (Reload.LIVE, Reload.RESTART), f"{section}.{name} has no Reload mark"


@pytest.mark.parametrize(("section", "name", "field"), FIELDS, ids=[f"{s}.{n}" for s, n, _ in FIELDS])
def test_a_reload_applies_live_settings_and_reports_the_others(section: str, name: str, field: FieldInfo) -> None:
    running = Settings()
    model = sections()[section]
    value = _other_value(model, name, field)
    changed = running.model_copy(update={section: getattr(running, section).model_copy(update={name: value})})
    published, pending = split_reload(running, changed)
    if reload_mark(field) is Reload.RESTART:
        assert [p.path for p in pending] == [f"{section}.{name}"]
        assert getattr(getattr(published, section), name) == getattr(getattr(running, section), name)
    else:
        assert pending == []
        assert getattr(getattr(published, section), name) == value


def test_backends_reload_as_a_whole_and_secrets_are_never_shown() -> None:
    assert reload_mark(Settings.model_fields["backends"]) is Reload.LIVE
    running = Settings.model_validate({"sessions": {"secret": "a" * 40}})
    changed = Settings.model_validate({"sessions": {"secret": "b" * 40}})
    _, pending = split_reload(running, changed)
    assert [(p.path, p.running, p.wanted) for p in pending] == [("sessions.secret", "***", "***")]
