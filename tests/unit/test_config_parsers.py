"""Position tracking in the three parsers."""

from __future__ import annotations

import pytest

from only1mcp.config.document import ConfigErrors, Position
from only1mcp.config.parsers import parse_json, parse_toml, parse_yaml


def test_yaml_positions() -> None:
    doc = parse_yaml("server:\n  port: 1\nbackends:\n  - name: a\n", "f.yaml")
    assert doc.keys[("server", "port")] == Position(2, 3)
    assert doc.values[("server", "port")] == Position(2, 9)
    assert doc.values[("backends", 0)] == Position(4, 5)
    assert doc.data == {"server": {"port": 1}, "backends": [{"name": "a"}]}


def test_json_accepts_comments_and_trailing_commas() -> None:
    text = '{\n  // a comment\n  "a": [1, 2,], /* block */\n  "b": {"c": "d",},\n}\n'
    doc = parse_json(text, "f.json")
    assert doc.data == {"a": [1, 2], "b": {"c": "d"}}
    assert doc.keys[("b", "c")] == Position(4, 9)
    assert doc.values[("a", 1)] == Position(3, 12)


@pytest.mark.parametrize(("text", "position", "message"), [
    ('{"a": 1, "a": 2}', Position(1, 10), "duplicate key 'a'"),
    ("{'a': 1}", Position(1, 2), "expected a double-quoted key"),
    ('{"a": tru}', Position(1, 7), "unexpected character 't'"),
    ('{"a": 1} x', Position(1, 10), "unexpected text after the end"),
    ('{"a": "x\n"}', Position(1, 9), "bad string"),
])
def test_json_errors(text: str, position: Position, message: str) -> None:
    with pytest.raises(ConfigErrors) as caught:
        parse_json(text, "f.json")
    problem = caught.value.problems[0]
    assert problem.position == position and message in problem.message


def test_toml_positions_for_tables_and_array_tables() -> None:
    text = '[server]\nport = 1\n\n[[backends]]\nname = "a"\n\n[[backends]]\nname = "b"\n[backends.timeouts]\ncall = 2\n'
    doc = parse_toml(text, "f.toml")
    assert doc.keys[("server", "port")] == Position(2, 1)
    assert doc.keys[("backends", 1, "name")] == Position(8, 1)
    assert doc.keys[("backends", 1, "timeouts", "call")] == Position(10, 1)
    assert doc.values[("backends", 1, "timeouts", "call")] == Position(10, 8)
