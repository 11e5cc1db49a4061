"""Load a config from its file, the environment and command-line overrides into one Settings object."""

from __future__ import annotations

import difflib
import itertools
import os
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError, create_model
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from .document import ConfigError, ConfigErrors, Document, Path_, Position, Problem, dotted
from .fields import Sensitive
from .models import TRANSPORTS, Settings
from .normalize import normalize
from .parsers import parse_text
from .rbac import RBAC_ERRORS

__all__ = ["build_settings", "default_document", "load_settings", "read_document"]


def read_document(path: str | os.PathLike[str], environ: Mapping[str, str]) -> tuple[Document, list[Problem]]:
    """Read, parse and normalize one config file: the native Document and the problems found so far.

    Unreadable files and syntax errors raise ConfigErrors at once (nothing else can be checked)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(source, "no such file; check the path (or omit --config to run the built-in demo)",
                          _start()) from None
    except IsADirectoryError:
        raise ConfigError(source, "is a directory; pass the config file itself", _start()) from None
    except PermissionError:
        raise ConfigError(source, "cannot read the file: permission denied; make it readable by this user "
                          "(chmod u+r)", _start()) from None
    except UnicodeDecodeError as exc:
        raise ConfigError(source, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8", _start()) from None
    except OSError as exc:
        raise ConfigError(source, f"cannot read the file: {exc.strerror}", _start()) from None
    return normalize(parse_text(text, source), environ)


def default_document() -> Document:
    """The embedded default: one demo backend shipped in the package, run over stdio."""
    data = {
        "backends": [
            {
                "name": "demo",
                "transport": "stdio",
                "command": sys.executable,
                "args": ["-m", "only1mcp.demo_server"],
            }
        ]
    }
    return Document("<built-in default>", data)


def _start() -> Position:
    return Position(1, 1)


class _DocumentSource(PydanticBaseSettingsSource):
    """The config file as a pydantic-settings source, below the environment."""

    def __init__(self, settings_cls: type[BaseSettings], data: dict[str, Any]) -> None:
        super().__init__(settings_cls)
        self._data = data

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


# The same fields as Settings, as a pydantic-settings class so ONLY1MCP_* variables are parsed into them.
_SettingsSources = create_model(
    "_SettingsSources",
    __base__=BaseSettings,
    __config__=None,
    **{name: (field.annotation, field) for name, field in Settings.model_fields.items()},  # type: ignore[call-overload]
)
_SettingsSources.model_config = SettingsConfigDict(env_prefix="ONLY1MCP_", env_nested_delimiter="__",
                                                   extra="forbid", frozen=True)
_SettingsSources.model_rebuild(force=True)


class _EnvSource(EnvSettingsSource):
    """``ONLY1MCP_*`` variables read from the mapping handed to ``load_settings``, not the process."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def load_settings(
    config: str | os.PathLike[str] | None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> tuple[Settings, Document]:
    """Defaults < file < ``ONLY1MCP_*`` environment < ``overrides`` (nested dicts from CLI flags)."""
    env = dict(os.environ if environ is None else environ)
    doc, problems = (default_document(), []) if config is None else read_document(config, env)
    return build_settings(doc, problems, env, overrides or {}), doc


def build_settings(
    doc: Document, problems: list[Problem], environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> Settings:
    """Validate a normalized Document under the environment and overrides; raises every problem at once."""
    file_data = doc.data if isinstance(doc.data, dict) else {}
    cli = dict(overrides)
    problems = list(problems)

    class _Bound(_SettingsSources):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return init_settings, _EnvSource(settings_cls, environ), _DocumentSource(settings_cls, file_data)

    bound: BaseSettings | None = None
    try:
        bound = _Bound(**cli)
    except ValidationError as exc:
        scopes = [p.scope for p in problems if p.scope]
        for err in exc.errors():
            path = _error_path(err)
            if not any(path[: len(scope)] == scope for scope in scopes):
                problems.append(_problem(err, doc, environ, cli))
    far = Position(1 << 30, 0)
    if problems or bound is None:
        raise ConfigErrors(sorted(problems, key=lambda p: ((p.position or far).line, (p.position or far).col)))
    try:
        return Settings.model_validate(bound.model_dump())
    except ValidationError as exc:  # checks across sections (e.g. an open address without auth)
        raise ConfigErrors(sorted((_problem(err, doc, environ, cli) for err in exc.errors()),
                                  key=lambda p: ((p.position or far).line, (p.position or far).col))) from None


# ---------------------------------------------------------------- error mapping


def _problem(err: Any, doc: Document, env: Mapping[str, str], cli: Mapping[str, Any]) -> Problem:
    path = _error_path(err)
    label = dotted(path, doc.data)
    message = _message(err, path)
    if _nested(cli, path):
        return Problem("command line", message, None, label)
    env_name = _env_source(path, env)
    if env_name is not None:
        return Problem(f"environment variable {env_name}", message, None, label)
    position = doc.locate(path, prefer_key=err["type"] in ("extra_forbidden", "missing"))
    return Problem(doc.source, message, position, label)


def _env_source(path: Path_, env: Mapping[str, str]) -> str | None:
    """The ``ONLY1MCP_*`` variable that supplied the value at ``path``: the one named by the longest leading
    run of its keys (``ONLY1MCP_RBAC__DEFAULT_ROLES`` supplies every entry of rbac.default_roles)."""
    keys = list(itertools.takewhile(lambda part: isinstance(part, str), path))
    for end in range(len(keys), 0, -1):
        name = "ONLY1MCP_" + "__".join(str(key).upper() for key in keys[:end])
        if name in env:
            return name
    return None


def _error_path(err: Any) -> Path_:
    loc: tuple[Any, ...] = tuple(err["loc"])
    ctx = err.get("ctx") or {}
    if "at" in ctx:  # a check across sections names the setting to change
        return tuple(int(part) if part.isdigit() else part for part in str(ctx["at"]).split("."))
    if "index" in ctx:  # a list-level check that knows which item is wrong
        loc = (*loc, ctx["index"], "name")
    return _tree_path(loc)


def _tree_path(loc: tuple[Any, ...]) -> Path_:
    """Drop the discriminator tags and function names pydantic inserts into error locations."""
    out: list[str | int] = []
    for part in loc:
        tag = isinstance(part, str) and (part in TRANSPORTS or part.startswith("function-"))
        if tag and len(out) >= 2 and out[-2] == "backends":
            continue
        out.append(part)
    return tuple(out)


def _nested(mapping: Mapping[str, Any], path: Path_) -> bool:
    node: Any = mapping
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return bool(path)


# Error types whose message already names the offending value: no ", got …" is appended.
_SELF_EXPLAINED = frozenset({"duplicate_name", "missing_url", "url_and_replicas", "url_scheme", "timeout_order",
                             "oauth_url", "oauth_resource", *RBAC_ERRORS})


def _message(err: Any, path: Path_) -> str:
    kind = err["type"]
    field = path[-1] if path else ""
    if kind == "extra_forbidden":
        allowed = _allowed_keys(path[:-1], err)
        close = difflib.get_close_matches(str(field), allowed, n=1, cutoff=0.6)
        suggestion = f"; did you mean '{close[0]}'?" if close else ""
        listing = f" (allowed here: {', '.join(allowed)})" if allowed else ""
        return f"unknown key '{field}'{suggestion}{listing}"
    if kind == "missing":
        return f"missing required key '{field}'"
    if kind == "union_tag_invalid":
        return "unknown transport; write one of stdio, http, sse, websocket"
    message = err["msg"]
    if message.startswith("Value error, "):
        message = message[len("Value error, "):]
    hint = _field_hint(path)
    if "input" in err and kind not in _SELF_EXPLAINED:
        message = f"{message[0].lower()}{message[1:]}"
        if _quotable(err, path):
            message += f", got {err['input']!r}"
    return f"{message}; {hint}" if hint else message


def _quotable(err: Any, path: Path_) -> bool:
    """Whether the refused value may be quoted: not a secret (a field marked Sensitive, or anything inside
    one, such as a header's value), and not a whole section or list (a check of a whole backend would quote
    its headers, environment and client secret)."""
    if isinstance(err["input"], (Mapping, list, tuple)):
        return False
    transport = next((p for p in err["loc"] if isinstance(p, str) and p in TRANSPORTS), None)
    model: type[BaseModel] | None = Settings
    for depth, part in enumerate(path):
        if model is None:
            return True
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part)
        if field is None:
            return True
        if any(isinstance(item, Sensitive) for item in field.metadata):
            return False
        model = _model_at(path[:depth + 1], transport)
    return True


def _model_at(path: Path_, transport: str | None) -> type[BaseModel] | None:
    """The model class that owns keys at ``path`` (used for unknown-key suggestions and hints)."""
    model: type[BaseModel] = Settings
    keyed = False  # the previous field maps names to models (rbac.roles): this part is a name, not a field
    for part in path:
        if isinstance(part, int) or keyed:
            keyed = False
            continue
        field = model.model_fields.get(part)
        if field is None:
            return None
        candidates = [c for c in _model_classes(field.annotation)]
        if not candidates:
            return None
        if len(candidates) > 1:
            chosen = [c for c in candidates if transport and transport in _literal_values(c)]
            candidates = chosen or candidates[:1]
        model = candidates[0]
        keyed = typing.get_origin(field.annotation) is dict
    return model


def _model_classes(annotation: Any) -> list[type[BaseModel]]:
    origin = typing.get_origin(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if origin is dict:
        return _model_classes(typing.get_args(annotation)[1])
    if origin in (typing.Union, types.UnionType, list, typing.Annotated):
        found: list[type[BaseModel]] = []
        for arg in typing.get_args(annotation):
            found.extend(_model_classes(arg))
        return found
    return []


def _literal_values(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("transport")
    return typing.get_args(field.annotation) if field is not None else ()


def _allowed_keys(path: Path_, err: Any) -> list[str]:
    transport = next((p for p in err["loc"] if isinstance(p, str) and p in TRANSPORTS), None)
    model = _model_at(path, transport)
    return sorted(model.model_fields) if model is not None else []


def _field_hint(path: Path_) -> str:
    if not path or not isinstance(path[-1], str):
        return ""
    model = _model_at(path[:-1], None)
    if model is None:
        return ""
    field = model.model_fields.get(path[-1])
    extra = field.json_schema_extra if field is not None else None
    return str(extra.get("hint", "")) if isinstance(extra, dict) else ""
