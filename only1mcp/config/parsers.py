"""Parse YAML, TOML and JSON (with comments and trailing commas) into position-annotated Documents."""

from __future__ import annotations

import bisect
import json
import re
import tomllib
from json.decoder import scanstring
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from .document import ConfigError, Document, Path_, Position

__all__ = ["parse_json", "parse_text", "parse_toml", "parse_yaml"]


def parse_text(text: str, source: str) -> Document:
    """Parse by file extension; an unknown extension is sniffed (``{`` starts JSON, else YAML)."""
    lower = source.lower()
    if lower.endswith(".toml"):
        return parse_toml(text, source)
    sniffed_json = not lower.endswith((".yaml", ".yml")) and text.lstrip()[:1] == "{"
    if lower.endswith((".json", ".jsonc")) or sniffed_json:
        return parse_json(text, source)
    return parse_yaml(text, source)


# ---------------------------------------------------------------- YAML


def parse_yaml(text: str, source: str) -> Document:
    yaml = YAML(typ="rt")
    try:
        tree = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        position = Position(mark.line + 1, mark.column + 1) if mark is not None else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        message = f"invalid YAML: {problem}; check the indentation and quoting here"
        raise ConfigError(source, message, position) from None
    except YAMLError as exc:
        raise ConfigError(source, f"invalid YAML: {exc}", Position(1, 1)) from None
    doc = Document(source, None)
    doc.data = _plain_yaml(tree, (), doc)
    return doc


def _plain_yaml(node: Any, path: Path_, doc: Document) -> Any:
    if isinstance(node, CommentedMap):
        out: dict[str, Any] = {}
        for key in node:
            child = (*path, str(key))
            kl, kc = node.lc.key(key)
            vl, vc = node.lc.value(key)
            doc.keys[child] = Position(kl + 1, kc + 1)
            doc.values[child] = Position(vl + 1, vc + 1)
            out[str(key)] = _plain_yaml(node[key], child, doc)
        return out
    if isinstance(node, CommentedSeq):
        items = []
        for index, item in enumerate(node):
            line, col = node.lc.item(index)
            doc.values[(*path, index)] = Position(line + 1, col + 1)
            items.append(_plain_yaml(item, (*path, index), doc))
        return items
    if isinstance(node, str):
        return str(node)  # ruamel's scalar string subclasses carry formatting we do not want
    return node


# ---------------------------------------------------------------- TOML

_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")
_TOML_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_TOML_PART = r"(?:[A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')"
_TOML_KEY = re.compile(rf"^\s*({_TOML_PART}(?:\s*\.\s*{_TOML_PART})*)\s*=")


def parse_toml(text: str, source: str) -> Document:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        found = _TOML_POS.search(message)
        position = Position(int(found.group(1)), int(found.group(2))) if found else Position(1, 1)
        reason = _TOML_POS.sub("", message).strip()
        message = f"invalid TOML: {reason}; see https://toml.io for the syntax"
        raise ConfigError(source, message, position) from None
    doc = Document(source, data)
    _index_toml(text, doc)
    return doc


def _toml_key_parts(raw: str) -> list[str]:
    parts = re.findall(r"\"[^\"]*\"|'[^']*'|[A-Za-z0-9_-]+", raw)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


def _index_toml(text: str, doc: Document) -> None:
    """Locate table headers and ``key =`` lines; inline tables and arrays resolve to their key."""
    table: Path_ = ()
    array_counts: dict[Path_, int] = {}
    in_multiline: str | None = None
    for number, line in enumerate(text.splitlines(), start=1):
        if in_multiline is not None:
            if in_multiline in line:
                in_multiline = None
            continue
        header = _TOML_HEADER.match(line)
        if header:
            parts = tuple(_toml_key_parts(header.group(2)))
            col = line.index(header.group(1)) + 1
            if header.group(1) == "[[":
                index = array_counts.get(parts, 0)
                array_counts[parts] = index + 1
                table = (*parts, index)
                doc.keys.setdefault(parts, Position(number, col))
                doc.values[table] = Position(number, col)
            else:
                table = _resolve_arrays(parts, array_counts)
                doc.keys[table] = Position(number, col)
            continue
        key = _TOML_KEY.match(line)
        if key:
            path = (*table, *_toml_key_parts(key.group(1)))
            col = len(line) - len(line.lstrip()) + 1
            doc.keys[path] = Position(number, col)
            value_col = key.end() + len(line[key.end():]) - len(line[key.end():].lstrip()) + 1
            doc.values[path] = Position(number, value_col)
            rest = line[key.end():]
            for quote in ('"""', "'''"):
                if rest.count(quote) == 1:
                    in_multiline = quote


def _resolve_arrays(parts: tuple[str, ...], array_counts: dict[Path_, int]) -> Path_:
    """``[a.b]`` after ``[[a]]`` names a key inside the last element of array ``a``."""
    out: list[str | int] = []
    for part in parts:
        out.append(part)
        count = array_counts.get(tuple(p for p in out if isinstance(p, str)))
        if count:
            out.append(count - 1)
    return tuple(out)


# ---------------------------------------------------------------- JSON / JSONC

_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class _JsonSyntax(Exception):
    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


class _JsonReader:
    """A small recursive-descent JSON reader that records positions.

    It accepts what client config files contain in practice (VS Code's mcp.json is JSONC): ``//`` and
    ``/* */`` comments and trailing commas. Duplicate keys are errors, not silent overwrites.
    """

    def __init__(self, text: str, doc: Document) -> None:
        self.text = text
        self.doc = doc
        self.pos = 0
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self._line_starts, offset)
        return Position(line, offset - self._line_starts[line - 1] + 1)

    def skip(self) -> None:
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r\n\ufeff":
                self.pos += 1
            elif text.startswith("//", self.pos):
                end = text.find("\n", self.pos)
                self.pos = len(text) if end < 0 else end + 1
            elif text.startswith("/*", self.pos):
                end = text.find("*/", self.pos + 2)
                if end < 0:
                    raise _JsonSyntax("unterminated /* comment; close it with */", self.pos)
                self.pos = end + 2
            else:
                return

    def document(self) -> Any:
        self.skip()
        value = self.value(())
        self.skip()
        if self.pos != len(self.text):
            raise _JsonSyntax("unexpected text after the end of the JSON value; remove it", self.pos)
        return value

    def value(self, path: Path_) -> Any:
        self.skip()
        if self.pos >= len(self.text):
            raise _JsonSyntax("unexpected end of file; a value is missing", self.pos)
        self.doc.values[path] = self.position(self.pos)
        char = self.text[self.pos]
        if char == "{":
            return self.mapping(path)
        if char == "[":
            return self.sequence(path)
        if char == '"':
            return self.string()
        for word, literal in _LITERALS.items():
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return literal
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            raw = number.group()
            return float(raw) if any(c in raw for c in ".eE") else int(raw)
        if char == "'":
            raise _JsonSyntax("JSON strings use double quotes; write \"...\" instead of '...'", self.pos)
        raise _JsonSyntax(f"unexpected character {char!r}; expected a value", self.pos)

    def string(self) -> str:
        try:
            text, end = scanstring(self.text, self.pos + 1, True)
        except json.JSONDecodeError as exc:
            raise _JsonSyntax(f"bad string: {exc.msg}", exc.pos) from None
        self.pos = end
        return text

    def _separator(self, closer: str, what: str) -> bool:
        """After an item: True when the container ends (a trailing comma is allowed)."""
        self.skip()
        if self.text.startswith(closer, self.pos):
            self.pos += 1
            return True
        if not self.text.startswith(",", self.pos):
            raise _JsonSyntax(f"expected ',' or '{closer}' after {what}; a comma is probably missing", self.pos)
        self.pos += 1
        self.skip()
        if self.text.startswith(closer, self.pos):
            self.pos += 1
            return True
        return False

    def mapping(self, path: Path_) -> dict[str, Any]:
        self.pos += 1
        out: dict[str, Any] = {}
        self.skip()
        if self.text.startswith("}", self.pos):
            self.pos += 1
            return out
        while True:
            self.skip()
            if not self.text.startswith('"', self.pos):
                raise _JsonSyntax("expected a double-quoted key", self.pos)
            key_offset = self.pos
            key = self.string()
            if key in out:
                first = self.doc.keys[(*path, key)]
                raise _JsonSyntax(f"duplicate key '{key}' (first at line {first.line}); remove one", key_offset)
            self.doc.keys[(*path, key)] = self.position(key_offset)
            self.skip()
            if not self.text.startswith(":", self.pos):
                raise _JsonSyntax(f"expected ':' after key '{key}'", self.pos)
            self.pos += 1
            out[key] = self.value((*path, key))
            if self._separator("}", f"the value of '{key}'"):
                return out

    def sequence(self, path: Path_) -> list[Any]:
        self.pos += 1
        out: list[Any] = []
        self.skip()
        if self.text.startswith("]", self.pos):
            self.pos += 1
            return out
        while True:
            out.append(self.value((*path, len(out))))
            if self._separator("]", "an array item"):
                return out


def parse_json(text: str, source: str) -> Document:
    doc = Document(source, None)
    reader = _JsonReader(text, doc)
    try:
        doc.data = reader.document()
    except _JsonSyntax as exc:
        raise ConfigError(source, f"invalid JSON: {exc}", reader.position(exc.offset)) from None
    return doc

