"""Typed payloads and their wire form.

Every message that crosses a process boundary carries a frozen dataclass declared with ``@payload``. On
the wire a payload is the list of its field values in declaration order (nested payloads as lists, enums
as their values), so frames carry no field names. Decoding checks every field against its annotation: a
frame from a peer of another version, or a corrupted one, is refused with a message that names the
field, never half-applied.

Each class gets an encoder and a decoder generated for its fields (as ``dataclasses`` does for
``__init__``): some of these messages are on the data path (the stdio host's links carry every call to
a shared stdio backend), and a generic loop over fields cost three times as much. The decoder's checks
also come without the object (``field_handler``): building a frozen dataclass costs more than checking
its fields, and the link's data path hands the checked values straight to their handler.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, dataclass_transform, get_args, get_origin, get_type_hints

__all__ = ["Payload", "WireError", "field_types", "payload"]

P = TypeVar("P", bound="Payload")


class WireError(ValueError):
    """A value that does not fit the payload it claims to be."""


class Payload:
    """Base of every payload class; see ``payload``."""

    __slots__ = ()
    _encode: ClassVar[Callable[[Any], list[Any]] | None] = None
    _decode: ClassVar[Callable[[Any], Any] | None] = None
    _handle: ClassVar[Callable[[Any, Callable[..., Any]], Any] | None] = None

    def to_wire(self) -> list[Any]:
        encode = type(self).__dict__.get("_encode") or type(self)._compile()[0]
        return encode(self)

    @classmethod
    def from_wire(cls: type[P], raw: Any) -> P:
        decode = cls.__dict__.get("_decode") or cls._compile()[1]
        return decode(raw)  # type: ignore[no-any-return]

    @classmethod
    def field_handler(cls) -> Callable[[Any, Callable[..., Any]], Any]:
        """A function ``(raw, handler)`` that checks a wire list as ``from_wire`` does, then calls
        ``handler`` with the field values (decoded as the payload would hold them) in declaration order
        instead of building a payload; WireError as ``from_wire``."""
        return cls.__dict__.get("_handle") or cls._compile()[2]

    @classmethod
    def _compile(cls) -> tuple[Callable[[Any], list[Any]], Callable[[Any], Any], Callable[[Any, Any], Any]]:
        # Compiled on first use: annotations are strings until every class they name exists.
        hints = get_type_hints(cls)
        fields = [(f.name, hints[f.name]) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        encode, decode, handle = _compile_class(cls, fields)
        cls._encode, cls._decode, cls._handle = encode, decode, handle
        return encode, decode, handle


@dataclass_transform(frozen_default=True)
def payload(cls: type[P]) -> type[P]:
    """Make ``cls`` (a Payload subclass) a frozen, slotted dataclass with a checked wire form."""
    if not issubclass(cls, Payload):
        raise TypeError(f"{cls.__name__} must subclass Payload")
    return dataclasses.dataclass(frozen=True, slots=True)(cls)


def field_types(cls: type[Payload]) -> list[tuple[str, str]]:
    """(name, readable type) of each field, for the message catalogue."""
    hints = get_type_hints(cls)
    return [(f.name, _readable(hints[f.name])) for f in dataclasses.fields(cls)]  # type: ignore[arg-type]


# ---------------------------------------------------------------- code generation

_SIMPLE_CHECKS = {int: "type({v}) is int", str: "type({v}) is str", bytes: "type({v}) is bytes",
                  bool: "type({v}) is bool", type(None): "{v} is None", dict: "type({v}) is dict"}
_SIMPLE_NAMES = {int: "an integer", str: "a string", bytes: "bytes", bool: "a boolean", type(None): "nil",
                 dict: "a map", float: "a number"}


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'…' if len(text) > 60 else ''}"


def _fail(owner: str, what: str, value: Any) -> WireError:
    return WireError(f"{owner}: expected {what}, got {_describe(value)}")


def _compile_class(cls: type, fields: list[tuple[str, Any]]) -> tuple[Callable[..., Any], Callable[..., Any],
                                                                       Callable[..., Any]]:
    scope: dict[str, Any] = {"cls": cls, "WireError": WireError, "_fail": _fail, "_describe": _describe}
    encode_items: list[str] = []
    decode_lines: list[str] = []
    for index, (name, annotation) in enumerate(fields):
        owner = f"{cls.__name__}.{name}"
        encode_items.append(_encode_expr(annotation, f"o.{name}", scope, index))
        decode_lines += _decode_lines(annotation, f"x{index}", owner, scope, index)
    names = [f"x{i}" for i in range(len(fields))]
    count = len(fields)
    checks = (
        f"    if type(raw) is not list or len(raw) != {count}:\n"
        f"        raise WireError(f'{cls.__name__}: expected {count} fields, got {{_describe(raw)}}')\n"
        + (f"    {', '.join(names)}{',' if count == 1 else ''} = raw\n" if count else "")
        + "".join(f"    {line}\n" for line in decode_lines)
    )
    source = (
        f"def encode(o):\n    return [{', '.join(encode_items)}]\n"
        f"def decode(raw):\n{checks}    return cls({', '.join(names)})\n"
        f"def handle(raw, handler):\n{checks}    return handler({', '.join(names)})\n"
    )
    exec(source, scope)  # generated from the dataclass's own annotations, as dataclasses does
    return scope["encode"], scope["decode"], scope["handle"]


def _encode_expr(annotation: Any, value: str, scope: dict[str, Any], index: int) -> str:
    """An expression turning ``value`` into its wire form."""
    if _is_payload(annotation):
        return f"{value}.to_wire()"
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        if any(_needs_encoding(m) for m in members):
            if len(members) != 1:
                raise TypeError(f"unsupported payload field type {annotation!r}")
            inner = _encode_expr(members[0], value, scope, index)
            return f"(None if {value} is None else {inner})"
        return value
    if origin is tuple:
        item = get_args(annotation)[0]
        if _needs_encoding(item):
            return f"[{_encode_expr(item, 'i', scope, index)} for i in {value}]"
        return f"list({value})"
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum) and not issubclass(annotation, int | str):
        return f"{value}.value"
    return value  # int, str, bytes, float, bool, dict, Any, IntEnum and StrEnum pack as they are


def _needs_encoding(annotation: Any) -> bool:
    return _is_payload(annotation) or get_origin(annotation) is tuple or (
        isinstance(annotation, type) and issubclass(annotation, enum.Enum) and not issubclass(annotation, int | str))


def _is_payload(annotation: Any) -> bool:
    return isinstance(annotation, type) and hasattr(annotation, "from_wire")


def _decode_lines(annotation: Any, var: str, owner: str, scope: dict[str, Any], index: int) -> list[str]:
    """Statements that check ``var`` and replace it with its decoded value."""
    if annotation is Any:
        return []
    optional = False
    origin = get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        members = [m for m in get_args(annotation) if m is not type(None)]
        optional = len(members) < len(get_args(annotation))
        if all(m in _SIMPLE_CHECKS for m in members):
            check = " or ".join(_SIMPLE_CHECKS[m].format(v=var) for m in members)
            if optional:
                check = f"{var} is None or {check}"
            what = " or ".join(_SIMPLE_NAMES[m] for m in members) + (" or nil" if optional else "")
            return [f"if not ({check}): raise _fail({owner!r}, {what!r}, {var})"]
        if len(members) != 1:
            raise TypeError(f"unsupported payload field type {annotation!r}")
        annotation = members[0]
        origin = get_origin(annotation)
    lines = _decode_one(annotation, origin, var, owner, scope, index)
    if optional:
        return [f"if {var} is not None:", *(f"    {line}" for line in lines)]
    return lines


def _decode_one(annotation: Any, origin: Any, var: str, owner: str, scope: dict[str, Any], index: int) -> list[str]:
    if annotation in _SIMPLE_CHECKS:
        return [f"if not ({_SIMPLE_CHECKS[annotation].format(v=var)}): "
                f"raise _fail({owner!r}, {_SIMPLE_NAMES[annotation]!r}, {var})"]
    if annotation is float:
        return [f"if type({var}) is int: {var} = float({var})",
                f"elif type({var}) is not float: raise _fail({owner!r}, 'a number', {var})"]
    if origin is dict:
        if get_args(annotation) != (str, Any):
            raise TypeError(f"unsupported payload field type {annotation!r}: use dict[str, Any]")
        return [f"if type({var}) is not dict: raise _fail({owner!r}, 'a map', {var})"]
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        table = f"_members{index}"
        scope[table] = {member.value: member for member in annotation}
        return [f"try: {var} = {table}[{var}]",
                f"except (KeyError, TypeError): raise _fail({owner!r}, "
                f"{'one of ' + annotation.__name__!r}, {var}) from None"]
    if _is_payload(annotation):
        name = f"_payload{index}"
        scope[name] = annotation
        return [f"try: {var} = {name}.from_wire({var})",
                f"except WireError as exc: raise WireError(f'{owner}: {{exc}}') from None"]
    if origin is tuple:
        args = get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise TypeError(f"unsupported tuple type {annotation!r}: use tuple[X, ...]")
        item = args[0]
        item_lines = _decode_lines(item, "i", f"{owner}[]", scope, index + 1000)
        helper = f"_item{index}"
        scope[helper] = _function(f"def {helper}(i):\n" + "".join(f"    {line}\n" for line in item_lines)
                                  + "    return i\n", helper, scope)
        return [f"if type({var}) is not list: raise _fail({owner!r}, 'an array', {var})",
                f"{var} = tuple(map({helper}, {var}))"]
    raise TypeError(f"unsupported payload field type {annotation!r}")


def _function(source: str, name: str, scope: dict[str, Any]) -> Callable[..., Any]:
    exec(source, scope)  # see _compile_class
    return scope[name]  # type: ignore[no-any-return]


def _readable(annotation: Any) -> str:
    if annotation is Any:
        return "any"
    if annotation is type(None):
        return "nil"
    if isinstance(annotation, type):
        return annotation.__name__
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_readable(a) for a in args)  # not "|": the catalogue is a markdown table
    if origin is tuple:
        return f"[{_readable(args[0])}, …]"
    if origin is dict:
        return "map"
    return str(annotation)
